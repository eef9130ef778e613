//! (filled in by the oracles work)
