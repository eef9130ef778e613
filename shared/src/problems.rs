//! Every problem type a node or the hub answers: the stable `type` of an
//! `application/problem+json` body (`/problems/<slug>`), one enum so the
//! server names them, clients match them, and tests check each is documented.
//! The TypeScript SDK mirrors [`ProblemType::ALL`] (`clients/js/problem-types.json`).

use std::fmt;

/// The prefix of every problem `type`.
pub const TYPE_PREFIX: &str = "/problems/";

/// Defines the enum, its slugs and [`ProblemType::ALL`] from one list, so
/// none can be left out of the others.
macro_rules! problem_types {
    ($($(#[$doc:meta])* $variant:ident => $slug:literal,)+) => {
        /// A problem type, by its stable slug (`not-found`, `rate-limited`, …).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProblemType {
            $($(#[$doc])* $variant,)+
        }

        impl ProblemType {
            /// Every problem type, in the order of docs/api.md ("Errors").
            pub const ALL: &'static [ProblemType] = &[$(ProblemType::$variant,)+];

            /// The slug: the problem `type` without [`TYPE_PREFIX`].
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => $slug,)+
                }
            }
        }
    };
}

problem_types! {
    /// The body is not JSON, or repeats a key in one object.
    MalformedJson => "malformed-json",
    /// JSON of the wrong shape, bad query parameters, a signed body that is
    /// not what the route takes.
    InvalidRequest => "invalid-request",
    /// No token or signature, or one that does not check out.
    Unauthorized => "unauthorized",
    InvalidCredentials => "invalid-credentials",
    InvalidRefreshToken => "invalid-refresh-token",
    /// The caller's role may not do this.
    Forbidden => "forbidden",
    /// No such resource, or not the caller's to see (the same answer).
    NotFound => "not-found",
    UnknownVersion => "unknown-version",
    TestFailed => "test-failed",
    MalformedSyncMessage => "malformed-sync-message",
    MalformedDocument => "malformed-document",
    Conflict => "conflict",
    TransferRefused => "transfer-refused",
    /// Synced changes the sender's role may not make.
    ChangeForbidden => "change-forbidden",
    /// A change to the roster or consent record by someone not of the home.
    HomeAuthority => "home-authority",
    PayloadTooLarge => "payload-too-large",
    DocumentTooLarge => "document-too-large",
    MessageTooLarge => "message-too-large",
    SyncStateTooLarge => "sync-state-too-large",
    PlanQuota => "plan-quota",
    RequestTimeout => "request-timeout",
    /// Over a rate limit; `Retry-After` says when to retry.
    RateLimited => "rate-limited",
    UnsupportedMediaType => "unsupported-media-type",
    InvalidOp => "invalid-op",
    UnsupportedOp => "unsupported-op",
    SchemaViolation => "schema-violation",
    NoSuchItem => "no-such-item",
    InvalidItemId => "invalid-item-id",
    UnsafeText => "unsafe-text",
    InvalidPhone => "invalid-phone",
    /// (hub) A body that is not a report.
    InvalidReport => "invalid-report",
    /// (hub) A report that breaks the report rules.
    ReportRefused => "report-refused",
    /// (hub) Implausible: a period before reporting began.
    ReportPeriodTooEarly => "report-period-too-early",
    /// (hub) Implausible: a period not over yet.
    ReportPeriodInFuture => "report-period-in-future",
    /// (hub) Implausible: more youth than the node's ceiling.
    ReportOverCeiling => "report-over-ceiling",
    /// (hub) Implausible: a part larger than its whole.
    ReportPartOverWhole => "report-part-over-whole",
    /// (hub) Implausible: flexible funds paid to no youth.
    ReportAmountWithoutYouth => "report-amount-without-youth",
    /// (hub) A node revising one period too fast; `Retry-After`.
    ReportRevisionsLimited => "report-revisions-limited",
    PrivacyBudgetSpent => "privacy-budget-spent",
    /// The database did not answer in time (`/readyz`).
    NotReady => "not-ready",
    /// Too many bodies being read; retry in a second.
    Busy => "busy",
    /// Other processes kept changing the plan; retry.
    Contended => "contended",
    /// The server failed; the cause is in its log, never in the answer.
    Internal => "internal",
}

impl ProblemType {
    /// The type a slug names; `None` for one this build does not know (a
    /// newer server's), which a client treats by its status alone.
    pub fn parse(slug: &str) -> Option<ProblemType> {
        ProblemType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == slug)
    }

    /// The type of a problem body's `type` (`/problems/<slug>`).
    pub fn from_type(kind: &str) -> Option<ProblemType> {
        kind.strip_prefix(TYPE_PREFIX).and_then(ProblemType::parse)
    }

    /// The problem body's `type`: `/problems/<slug>`.
    pub fn type_uri(self) -> String {
        format!("{TYPE_PREFIX}{}", self.as_str())
    }
}

impl fmt::Display for ProblemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slug_parses_back_to_its_type_and_is_unique() {
        for &t in ProblemType::ALL {
            assert_eq!(ProblemType::parse(t.as_str()), Some(t));
            assert_eq!(ProblemType::from_type(&t.type_uri()), Some(t));
        }
        let mut slugs: Vec<&str> = ProblemType::ALL.iter().map(|t| t.as_str()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
    }

    #[test]
    fn an_unknown_slug_is_none_not_an_error() {
        assert_eq!(ProblemType::parse("from-a-newer-server"), None);
        assert_eq!(ProblemType::from_type("about:blank"), None);
        assert_eq!(ProblemType::from_type("not-found"), None);
    }

    /// The TypeScript SDK's `PROBLEM_TYPES` is checked against this file
    /// by its own test; rewrite it with `WRAPSYNC_WRITE_PROBLEM_TYPES=1`.
    #[test]
    fn the_typescript_sdk_list_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../clients/js/problem-types.json"
        );
        let slugs: Vec<&str> = ProblemType::ALL.iter().map(|t| t.as_str()).collect();
        let expected = format!(
            "{}\n",
            serde_json::to_string_pretty(&slugs).unwrap_or_default()
        );
        if std::env::var_os("WRAPSYNC_WRITE_PROBLEM_TYPES").is_some() {
            std::fs::write(path, &expected).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            committed, expected,
            "{path} is not ProblemType::ALL: run this test with WRAPSYNC_WRITE_PROBLEM_TYPES=1"
        );
    }
}
