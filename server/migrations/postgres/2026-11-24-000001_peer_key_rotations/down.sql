DROP TABLE peer_key_rotations;
