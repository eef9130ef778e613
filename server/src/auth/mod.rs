//! Who is calling: token checks, password hashes, login sessions.

pub mod passwords;
pub mod secrets;
pub mod tokens;
