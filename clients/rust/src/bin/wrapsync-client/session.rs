//! The CLI's login session on disk: which node, who, the device id and the
//! tokens. Tokens are credentials, so the file is written owner-only and
//! never shown in debug output.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use wrapsync_client::{Client, ClientError};

const SESSION_FILE: &str = "session.json";

/// One user's session with one node, as the last login or refresh left it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub url: String,
    pub username: String,
    pub device_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(SESSION_FILE)
    }

    /// The session kept in `dir`, if someone logged in there.
    pub fn load(dir: &Path) -> io::Result<Option<Session>> {
        match fs::read(Self::path(dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the session file atomically (temp file, fsync, rename): a
    /// refresh token the node has just rotated must never be lost.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        let path = Self::path(dir);
        let tmp = dir.join(format!("{SESSION_FILE}.tmp"));
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// A client holding this session's tokens.
    pub fn client(&self) -> Result<Client, ClientError> {
        let mut client = Client::new(&self.url)?;
        client.set_access_token(Some(self.access_token.clone()));
        client.set_refresh_token(Some(self.refresh_token.clone()));
        Ok(client)
    }

    /// Takes over the tokens a refresh left in `client`.
    pub fn keep_tokens(&mut self, client: &Client) {
        if let Some(token) = client.access_token() {
            self.access_token = token.to_string();
        }
        if let Some(token) = client.refresh_token() {
            self.refresh_token = token.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            url: "http://127.0.0.1:9".into(),
            username: "carla".into(),
            device_id: "cli-1".into(),
            access_token: "secret-access".into(),
            refresh_token: "secret-refresh".into(),
        }
    }

    #[test]
    fn a_session_round_trips_owner_only_and_hides_its_tokens() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        assert!(matches!(Session::load(dir.path()), Ok(None)));
        assert!(session().save(dir.path()).is_ok());
        assert!(matches!(Session::load(dir.path()), Ok(Some(s)) if s == session()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(Session::path(dir.path()))
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600));
        }
        let shown = format!("{:?}", session());
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn a_client_carries_the_session_tokens() {
        let client = session().client();
        assert!(
            client.is_ok_and(|c| c.access_token() == Some("secret-access")
                && c.refresh_token() == Some("secret-refresh"))
        );
    }
}
