//! (filled in by the quotas work)
