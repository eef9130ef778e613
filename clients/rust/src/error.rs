//! The client's one error type. Every call answers `Result<_, ClientError>`:
//! an HTTP error carries the node's problem document untouched, so callers
//! (and tests) match on its [`ProblemType`] instead of on prose.

use wrapsync_shared::api::Problem;
pub use wrapsync_shared::problems::ProblemType;

/// Why a call to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL cannot address a node (not http/https, or not a base).
    #[error("invalid base URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// `refresh` was called before any login handed out a refresh token.
    #[error("no refresh token: log in first")]
    NotLoggedIn,
    /// The node refused the request and said why in a problem document.
    #[error("HTTP {status} {}: {}", problem.kind, problem.detail.as_deref().unwrap_or(&problem.title))]
    Api { status: u16, problem: Problem },
    /// The node answered something the contract does not allow: an error
    /// without a problem document, a body of the wrong shape, a missing ETag.
    #[error("unexpected answer (HTTP {status}): {detail}")]
    UnexpectedResponse { status: u16, detail: String },
    /// No answer at all: connection refused, timeout, broken connection.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
}

impl ClientError {
    /// The HTTP status the node answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::UnexpectedResponse { status, .. } => {
                Some(*status)
            }
            ClientError::Transport(e) => e.status().map(|s| s.as_u16()),
            ClientError::InvalidUrl { .. } | ClientError::NotLoggedIn => None,
        }
    }

    /// The node's problem document, for an HTTP error that carried one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// What went wrong, for an HTTP error with a problem document of a type
    /// this build knows; `None` for any other (a newer node's type is told
    /// by [`ClientError::status`] and [`ClientError::code`]).
    pub fn problem_type(&self) -> Option<ProblemType> {
        self.problem().and_then(Problem::problem_type)
    }

    /// The problem code as the node sent it (`not-found`, `test-failed`, …):
    /// the problem `type` without its `/problems/` prefix, known or not.
    pub fn code(&self) -> Option<&str> {
        self.problem()
            .map(|p| p.kind.strip_prefix("/problems/").unwrap_or(&p.kind))
    }
}

/// Turns a finished exchange into the typed answer or the typed error. Kept
/// apart from I/O so the contract's error mapping is unit-tested offline.
pub(crate) fn interpret<T: serde::de::DeserializeOwned>(
    status: u16,
    body: &[u8],
) -> Result<T, ClientError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|e| ClientError::UnexpectedResponse {
            status,
            detail: format!("body is not the expected JSON ({e}): {}", excerpt(body)),
        });
    }
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => Err(ClientError::Api { status, problem }),
        Err(_) => Err(ClientError::UnexpectedResponse {
            status,
            detail: format!("error without a problem document: {}", excerpt(body)),
        }),
    }
}

/// The start of a body, for error messages that must stay one line.
fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn success_bodies_decode() {
        let v: Result<Value, _> = interpret(200, br#"{"status":"ok"}"#);
        assert!(matches!(v, Ok(v) if v["status"] == "ok"));
    }

    #[test]
    fn errors_carry_the_problem_document_and_its_code() {
        let body =
            br#"{"type":"/problems/test-failed","title":"Test failed","status":409,"op_index":1}"#;
        let err = match interpret::<Value>(409, body) {
            Err(e) => e,
            Ok(v) => panic!("decoded an error as {v}"),
        };
        assert_eq!(err.status(), Some(409));
        assert_eq!(err.code(), Some("test-failed"));
        assert_eq!(err.problem_type(), Some(ProblemType::TestFailed));
        assert_eq!(err.problem().and_then(|p| p.op_index), Some(1));
        assert!(err.to_string().contains("/problems/test-failed"));
    }

    #[test]
    fn a_problem_type_this_build_does_not_know_keeps_its_code() {
        let body = br#"{"type":"/problems/from-a-newer-node","title":"New","status":409}"#;
        let Err(err) = interpret::<Value>(409, body) else {
            panic!("decoded an error")
        };
        assert_eq!(err.problem_type(), None);
        assert_eq!(err.code(), Some("from-a-newer-node"));
        assert_eq!(err.status(), Some(409));
    }

    #[test]
    fn errors_without_a_problem_and_wrong_shapes_are_unexpected() {
        let err = interpret::<Value>(502, b"<html>bad gateway</html>");
        assert!(matches!(
            err,
            Err(ClientError::UnexpectedResponse { status: 502, ref detail }) if detail.contains("bad gateway")
        ));
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Health {
            status: String,
        }
        let err = interpret::<Health>(200, br#"{"nope":1}"#);
        assert!(matches!(
            err,
            Err(ClientError::UnexpectedResponse { status: 200, .. })
        ));
        assert_eq!(err.err().and_then(|e| e.code().map(str::to_string)), None);
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let body = "x".repeat(10_000);
        let err = interpret::<Value>(500, body.as_bytes());
        let Err(e) = err else { panic!("decoded") };
        assert!(e.to_string().len() < 400);
    }
}
