//! (filled in by the bodies work)
