//! The users every test node has, and their passwords.

use wrapsync_shared::roles::Role;

/// A user every test node has: a username, its node role and a password
/// derived from the username (see [`TestUser::password`]).
#[derive(Debug, Clone, Copy)]
pub struct TestUser {
    pub username: &'static str,
    pub role: Role,
    pub display_name: &'static str,
}

impl TestUser {
    /// The user's password: deterministic so tests can log anyone in.
    pub fn password(&self) -> String {
        password_of(self.username)
    }
}

/// The usernames of [`USERS`], by what tests use them for.
pub mod users {
    /// Node supervisor: sees every plan and the audit trail.
    pub const SUPERVISOR: &str = "sam";
    /// Creates most plans in the tests, so is on their rosters.
    pub const FACILITATOR: &str = "fran";
    /// A facilitator on no team unless a test puts them there.
    pub const FACILITATOR_2: &str = "felix";
    pub const FAMILY_ADVOCATE: &str = "ada";
    /// The caregiver tests put on rosters.
    pub const CAREGIVER: &str = "carla";
    /// A second caregiver, for "not linked to a member" cases.
    pub const CAREGIVER_2: &str = "cody";
    pub const YOUTH: &str = "yuri";
    pub const PROVIDER: &str = "pia";
    /// Sees a reduced plan (no CANS, status reports or consents).
    pub const NATURAL_SUPPORT: &str = "nell";
}

/// Every user added to every test node before it starts.
pub const USERS: &[TestUser] = &[
    TestUser {
        username: users::SUPERVISOR,
        role: Role::Supervisor,
        display_name: "Sam Supervisor",
    },
    TestUser {
        username: users::FACILITATOR,
        role: Role::Facilitator,
        display_name: "Fran Facilitator",
    },
    TestUser {
        username: users::FACILITATOR_2,
        role: Role::Facilitator,
        display_name: "Felix Facilitator",
    },
    TestUser {
        username: users::FAMILY_ADVOCATE,
        role: Role::FamilyAdvocate,
        display_name: "Ada Advocate",
    },
    TestUser {
        username: users::CAREGIVER,
        role: Role::Caregiver,
        display_name: "Carla Caregiver",
    },
    TestUser {
        username: users::CAREGIVER_2,
        role: Role::Caregiver,
        display_name: "Cody Caregiver",
    },
    TestUser {
        username: users::YOUTH,
        role: Role::Youth,
        display_name: "Yuri Youth",
    },
    TestUser {
        username: users::PROVIDER,
        role: Role::Provider,
        display_name: "Pia Provider",
    },
    TestUser {
        username: users::NATURAL_SUPPORT,
        role: Role::NaturalSupport,
        display_name: "Nell Neighbour",
    },
];

/// The password of a test user (any username gets one, so a test can also
/// try a user that does not exist).
pub fn password_of(username: &str) -> String {
    format!("{username}-correct-horse-battery")
}
