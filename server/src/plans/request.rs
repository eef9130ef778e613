//! Who acts: the person every audited plan action names.

use crate::audit::Principal;
use wrapsync_shared::roles::Role;

/// The person acting, as the token names them.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: String,
    pub username: String,
    pub role: Role,
}

impl From<&Actor> for Principal {
    fn from(actor: &Actor) -> Principal {
        Principal::user(&actor.user_id, &actor.username, actor.role)
    }
}
