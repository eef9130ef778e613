//! Who is calling: token checks, password hashes, login sessions, login
//! throttling.

pub mod passwords;
pub mod secrets;
pub mod sessions;
pub mod throttle;
pub mod tokens;
