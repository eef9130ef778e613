//! Who is calling: token checks, password hashes, login sessions.

pub mod passwords;
pub mod tokens;
