//! The audit trail's vocabulary (HIPAA §164.312(b)): who ([`Principal`])
//! did what ([`Action`]) to which plan, with what [`Outcome`], made into a
//! stored row ([`AuditRecord`], `store::audit`) by one builder, [`Audit`]:
//!
//! ```ignore
//! Audit::new(&actor, Action::PlanOps).plan(&id).detail(summary).at(&meta)
//! ```
//!
//! The strings a row stores are a contract (`GET /v1/audit`, the security
//! matrix's one row per refusal): each `as_str` gives exactly the string
//! the trail has always held.
//!
//! Who writes a request's row, so that each request has it once:
//! - What a request *does* is audited where it is done, by the domain
//!   (`plans`, `federation`), in the transaction of the write it records
//!   (`plan.create`, `plan.ops`, `plan.sync`, `plan.share`, ...), or by the
//!   handler for a read (`plan.read`, `plan.list`, `audit.read`).
//! - A refusal is audited by the code that decides it, with
//!   [`Audit::refused`]: the handler for what it checks (the plan not on
//!   the caller's team, an unreadable body, a role, and the answer of a
//!   domain call that does not audit its own refusals), the domain for the
//!   refusals it audits itself (`Plans::share`, `Plans::unshare`, a peer's
//!   sync round).
//! - `api::refusals` writes the row of every other answer of 4xx or 5xx (a
//!   bad token, a rate limit, an unknown route, an error nothing above
//!   named), as `<METHOD> <route pattern>` ([`Audit::route`]). It writes
//!   none for a request whose [`RefusalMark`] is set: [`Audit::at`] sets it
//!   for every row made in the request's name with an outcome other than
//!   [`Outcome::Ok`].
//!
//! Rows made outside any request (a node's report, a transfer the other
//! node acknowledged later) have no request to mark: [`Audit::at_ms`].

use crate::db::now_ms;
use crate::error::ApiError;
use crate::store::audit::AuditRecord;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wrapsync_shared::problems::ProblemType;
use wrapsync_shared::roles::Role;

/// What was done (or tried). Each variant's [`Action::as_str`] is the
/// `action` the trail stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    AuthLogin,
    AuthRefresh,
    AuditRead,
    ChangesRead,
    ChangesStream,
    PlanList,
    PlanCreate,
    PlanRead,
    PlanOps,
    PlanSync,
    PlanHistory,
    PlanShares,
    PlanShare,
    PlanUnshare,
    PlanTransfer,
    PeerList,
    PeerAdd,
    PeerRemove,
    PeerRequest,
    PeerKeyRotation,
    PeerSync,
    PeerReplicate,
    PeerTransfer,
    PeerRehome,
    /// The node read its plans for a report to the hub.
    ReportGenerate,
    /// (hub) A node's report refused; the hub's own trail (`hub::store`).
    ReportSubmit,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::AuthLogin,
        Action::AuthRefresh,
        Action::AuditRead,
        Action::ChangesRead,
        Action::ChangesStream,
        Action::PlanList,
        Action::PlanCreate,
        Action::PlanRead,
        Action::PlanOps,
        Action::PlanSync,
        Action::PlanHistory,
        Action::PlanShares,
        Action::PlanShare,
        Action::PlanUnshare,
        Action::PlanTransfer,
        Action::PeerList,
        Action::PeerAdd,
        Action::PeerRemove,
        Action::PeerRequest,
        Action::PeerKeyRotation,
        Action::PeerSync,
        Action::PeerReplicate,
        Action::PeerTransfer,
        Action::PeerRehome,
        Action::ReportGenerate,
        Action::ReportSubmit,
    ];

    /// The stored `action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::AuthLogin => "auth.login",
            Action::AuthRefresh => "auth.refresh",
            Action::AuditRead => "audit.read",
            Action::ChangesRead => "changes.read",
            Action::ChangesStream => "changes.stream",
            Action::PlanList => "plan.list",
            Action::PlanCreate => "plan.create",
            Action::PlanRead => "plan.read",
            Action::PlanOps => "plan.ops",
            Action::PlanSync => "plan.sync",
            Action::PlanHistory => "plan.history",
            Action::PlanShares => "plan.shares",
            Action::PlanShare => "plan.share",
            Action::PlanUnshare => "plan.unshare",
            Action::PlanTransfer => "plan.transfer",
            Action::PeerList => "peer.list",
            Action::PeerAdd => "peer.add",
            Action::PeerRemove => "peer.remove",
            Action::PeerRequest => "peer.request",
            Action::PeerKeyRotation => "peer.key-rotation",
            Action::PeerSync => "peer.sync",
            Action::PeerReplicate => "peer.replicate",
            Action::PeerTransfer => "peer.transfer",
            Action::PeerRehome => "peer.rehome",
            Action::ReportGenerate => "report.generate",
            Action::ReportSubmit => "report.submit",
        }
    }
}

/// How it went. Each variant's [`Outcome::as_str`] is the `outcome` the
/// trail stores; the refusals the writer counts (`store::audit::REFUSALS`)
/// are [`Outcome::Denied`], [`Outcome::Refused`], [`Outcome::NotFound`] and
/// [`Outcome::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Outcome {
    #[default]
    Ok,
    /// A peer's key rotation taken into force.
    Accepted,
    /// The caller is not who they say, or may not do this.
    Denied,
    /// Refused for what was asked (a bad body, a limit, a conflict).
    Refused,
    /// Not there, or not the caller's to see (the same answer).
    NotFound,
    /// The node failed, or could not do it now.
    Error,
    /// New plans from a peer past `rate_limit_peer_new_plans`.
    RateLimited,
}

impl Outcome {
    /// The stored `outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Accepted => "accepted",
            Outcome::Denied => "denied",
            Outcome::Refused => "refused",
            Outcome::NotFound => "not_found",
            Outcome::Error => "error",
            Outcome::RateLimited => "rate-limited",
        }
    }

    /// The outcome of a refusal answered with `problem`: the one mapping
    /// from problem types to the trail's outcomes.
    pub fn of(problem: ProblemType) -> Outcome {
        match problem {
            ProblemType::NotFound => Outcome::NotFound,
            ProblemType::Unauthorized
            | ProblemType::Forbidden
            | ProblemType::InvalidCredentials
            | ProblemType::InvalidRefreshToken
            | ProblemType::ChangeForbidden
            | ProblemType::HomeAuthority => Outcome::Denied,
            ProblemType::Internal
            | ProblemType::NotReady
            | ProblemType::Contended
            | ProblemType::Busy => Outcome::Error,
            _ => Outcome::Refused,
        }
    }
}

/// Who acted, as a row names them (`user_id`, `username`, `role`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person whose token or password checked out.
    User {
        id: String,
        username: String,
        role: String,
    },
    /// A peer node (`peer:<node id>`, role `peer`); `unverified` for a
    /// signature that did not check out.
    Peer(String),
    /// This node itself, reading its plans for a report (`node:<node id>`).
    Node(String),
    /// Someone not proven: the username a failed login tried, if any.
    Claimed(Option<String>),
    /// The owner of a session, known only by id (a reused refresh token).
    Owner(String),
    /// Nobody proved who they are.
    Nobody,
}

impl Principal {
    pub fn user(id: &str, username: &str, role: Role) -> Principal {
        Principal::User {
            id: id.to_string(),
            username: username.to_string(),
            role: role.to_string(),
        }
    }

    /// A peer node, by its id.
    pub fn peer(node: &str) -> Principal {
        Principal::Peer(node.to_string())
    }

    /// The signed-in user's id (none for anyone else).
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::User { id, .. } => Some(id),
            _ => None,
        }
    }

    /// `(user_id, username, role)` as stored.
    fn columns(&self) -> (Option<String>, Option<String>, Option<String>) {
        match self {
            Principal::User { id, username, role } => {
                (Some(id.clone()), Some(username.clone()), Some(role.clone()))
            }
            Principal::Peer(node) => (None, Some(format!("peer:{node}")), Some("peer".into())),
            Principal::Node(node) => (None, Some(format!("node:{node}")), Some("node".into())),
            Principal::Claimed(tried) => (None, tried.clone(), None),
            Principal::Owner(id) => (Some(id.clone()), None, None),
            Principal::Nobody => (None, None, None),
        }
    }
}

/// The context of the request an action is done in.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub remote: Option<String>,
    /// The request's mark, set by any refusal audited for it.
    pub refusal: RefusalMark,
}

/// Shared by a request and everything auditing for it: set once a row
/// other than `ok` is made for the request, so `api::refusals` (which
/// audits every refused request) does not write a second, vaguer one.
#[derive(Debug, Clone, Default)]
pub struct RefusalMark(Arc<AtomicBool>);

impl RefusalMark {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn note(&self, outcome: Outcome) {
        if outcome != Outcome::Ok {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// The one way an audit row is made (see the module's doc).
#[derive(Debug, Clone)]
#[must_use = "an audit row is made by `at` or `at_ms`"]
pub struct Audit {
    principal: Principal,
    action: String,
    plan: Option<String>,
    outcome: Outcome,
    detail: Option<String>,
}

impl Audit {
    /// `principal` did `action`; `ok` unless said otherwise.
    pub fn new(principal: impl Into<Principal>, action: Action) -> Audit {
        Audit::named(principal.into(), action.as_str().to_string())
    }

    /// A refused request nothing else audited, named by its route:
    /// `<METHOD> <pattern>` (`api::refusals`).
    pub fn route(principal: Principal, method: &str, pattern: &str) -> Audit {
        Audit::named(principal, format!("{method} {pattern}"))
    }

    fn named(principal: Principal, action: String) -> Audit {
        Audit {
            principal,
            action,
            plan: None,
            outcome: Outcome::Ok,
            detail: None,
        }
    }

    pub fn plan(mut self, id: &str) -> Audit {
        self.plan = Some(id.to_string());
        self
    }

    /// The plan, if the action was on one.
    pub fn plan_opt(mut self, id: Option<&str>) -> Audit {
        self.plan = id.map(str::to_string);
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Audit {
        self.outcome = outcome;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Audit {
        self.detail = Some(detail.into());
        self
    }

    /// Refused with `error`: its outcome, and its message as the detail.
    pub fn refused(self, error: &ApiError) -> Audit {
        self.outcome(Outcome::of(error.problem_type()))
            .detail(error.to_string())
    }

    /// The row, made now in the request `meta` (whose mark it sets unless
    /// the outcome is `ok`).
    pub fn at(self, meta: &RequestMeta) -> AuditRecord {
        meta.refusal.note(self.outcome);
        self.record(now_ms(), meta.remote.clone(), meta.request_id.clone())
    }

    /// The row of something done outside any request, at `at` (ms).
    pub fn at_ms(self, at: i64) -> AuditRecord {
        self.record(at, None, None)
    }

    fn record(self, at: i64, remote: Option<String>, request_id: Option<String>) -> AuditRecord {
        let (user_id, username, role) = self.principal.columns();
        AuditRecord {
            at,
            user_id,
            username,
            role,
            plan_id: self.plan,
            action: self.action,
            outcome: self.outcome.as_str().to_string(),
            detail: self.detail,
            remote,
            request_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_strings_are_the_trails() {
        let actions: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        let mut unique = actions.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), actions.len());
        assert!(actions.contains(&"plan.ops") && actions.contains(&"peer.key-rotation"));
        assert_eq!(Outcome::NotFound.as_str(), "not_found");
        assert_eq!(Outcome::RateLimited.as_str(), "rate-limited");
    }

    #[test]
    fn refusals_get_their_outcome_from_the_problem_type() {
        let cases = [
            (ApiError::NotFound, "not_found"),
            (ApiError::Unauthorized("x".into()), "denied"),
            (ApiError::Forbidden("x".into()), "denied"),
            (ApiError::InvalidCredentials, "denied"),
            (ApiError::InvalidRefreshToken, "denied"),
            (ApiError::HomeAuthority("x".into()), "denied"),
            (
                ApiError::RefusedChanges(wrapsync_shared::plan::PlanError::Forbidden("x".into())),
                "denied",
            ),
            (
                ApiError::Plan {
                    error: wrapsync_shared::plan::PlanError::Forbidden("x".into()),
                    op_index: Some(0),
                },
                "denied",
            ),
            (ApiError::Internal("x".into()), "error"),
            (ApiError::NotReady, "error"),
            (ApiError::Contended, "error"),
            (ApiError::Busy, "error"),
            (ApiError::RateLimited(1), "refused"),
            (ApiError::InvalidRequest("x".into()), "refused"),
            (ApiError::PlanQuota("x".into()), "refused"),
        ];
        for (error, outcome) in cases {
            assert_eq!(
                Outcome::of(error.problem_type()).as_str(),
                outcome,
                "{error:?}"
            );
        }
    }

    #[test]
    fn a_row_names_its_principal_and_marks_a_refused_request() {
        let meta = RequestMeta {
            request_id: Some("r1".into()),
            remote: Some("192.0.2.1".into()),
            refusal: RefusalMark::default(),
        };
        let row = Audit::new(Principal::Peer("b".into()), Action::PeerSync)
            .plan("p")
            .at(&meta);
        assert_eq!(
            (row.username.as_deref(), row.role.as_deref(), row.user_id),
            (Some("peer:b"), Some("peer"), None)
        );
        assert_eq!(
            (row.action.as_str(), row.outcome.as_str()),
            ("peer.sync", "ok")
        );
        assert_eq!(row.request_id.as_deref(), Some("r1"));
        assert!(!meta.refusal.is_set(), "an ok row is no refusal");
        let row = Audit::new(Principal::Claimed(Some("eve".into())), Action::AuthLogin)
            .refused(&ApiError::InvalidCredentials)
            .at(&meta);
        assert_eq!((row.username.as_deref(), row.role), (Some("eve"), None));
        assert_eq!(row.outcome, "denied");
        assert!(meta.refusal.is_set());
        let row = Audit::new(Principal::Node("a".into()), Action::ReportGenerate).at_ms(7);
        assert_eq!((row.at, row.username.as_deref()), (7, Some("node:a")));
    }
}
