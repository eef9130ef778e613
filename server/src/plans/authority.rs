//! Who may change what of a plan: the home's authority over the roster and
//! consents, the grants' authority over the consent record, and a replica's
//! team's over its content.

use super::{Actor, PlanView};
use crate::error::ApiError;
use wrapsync_shared::plan::PlanError;

/// Whether `actor`'s edits of `view` are held to the home's authority
/// ([`wrapsync_shared::roles::HOME_ONLY`]): on a replica (its team edits
/// content, the home the roster and consents), or as a person of another
/// node (`name@node`) at the home.
pub(crate) fn outside_home(view: &PlanView, actor: &Actor) -> bool {
    view.home.is_some() || actor.username.contains('@')
}

/// A change to a consent naming a node, refused (`422 home-authority`):
/// the consent record mirrors the grants, written only through the shares
/// API (`consent.rs`).
pub(crate) fn grant_record(error: PlanError) -> ApiError {
    match error {
        PlanError::Forbidden(path) => ApiError::HomeAuthority(format!(
            "{path}: a consent naming a node is the plan's record of the family's grant; it \
             changes only when consent is recorded or withdrawn (/v1/plans/{{id}}/shares)"
        )),
        other => ApiError::RefusedChanges(other),
    }
}

/// A roster or consent change by someone not of the plan's home, refused
/// (`422 home-authority`); other refusals as they are.
pub(crate) fn home_authority(error: PlanError) -> ApiError {
    match error {
        PlanError::Forbidden(path) => ApiError::HomeAuthority(format!(
            "{path}: the team's roster and the family's consent record are changed only at \
             the plan's home, by its own people"
        )),
        other => ApiError::RefusedChanges(other),
    }
}

/// A supervisor reading a replica may not edit it: only its team does.
pub(crate) fn replica_of_others() -> ApiError {
    ApiError::Forbidden("a plan homed at another node is edited by its team".into())
}
