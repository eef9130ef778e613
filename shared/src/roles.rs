//! Who may read and change which parts of a plan: the role table the README
//! documents, kept as data so the README, the server and the tests agree.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A person's role, on a family team (`facilitator` … `natural_support`) or on
/// the node (`supervisor`, who oversees every plan of the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Facilitator,
    FamilyAdvocate,
    Caregiver,
    Youth,
    Provider,
    NaturalSupport,
    Supervisor,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Facilitator,
        Role::FamilyAdvocate,
        Role::Caregiver,
        Role::Youth,
        Role::Provider,
        Role::NaturalSupport,
        Role::Supervisor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Facilitator => "facilitator",
            Role::FamilyAdvocate => "family_advocate",
            Role::Caregiver => "caregiver",
            Role::Youth => "youth",
            Role::Provider => "provider",
            Role::NaturalSupport => "natural_support",
            Role::Supervisor => "supervisor",
        }
    }

    /// Who may start a new plan.
    pub fn may_create_plans(self) -> bool {
        matches!(self, Role::Facilitator | Role::Supervisor)
    }

    /// Sections hidden from this role when it reads a plan.
    pub fn hidden_sections(self) -> &'static [&'static str] {
        match self {
            // Natural supports (a grandmother, a coach) see the plan they help
            // carry out, not clinical ratings, status reports or legal consents.
            Role::NaturalSupport => &["cans", "status", "consents"],
            _ => &[],
        }
    }

    /// May this role see what is at `path` (`/cans/01J…/ratings`, `/consents`,
    /// or a summary pattern such as `/status/*/living`)? The one rule the
    /// plan view, ops, history and share lists ask, so what a role cannot
    /// read it cannot probe through any of them either.
    pub fn sees(self, path: &str) -> bool {
        let section = path.strip_prefix('/').unwrap_or(path);
        let section = section.split('/').next().unwrap_or_default();
        !self.hidden_sections().contains(&section)
    }

    /// Removes from a rendered plan (`render`) the sections this role may
    /// not see.
    pub fn hide_sections(self, plan: &mut serde_json::Value) {
        if let Some(obj) = plan.as_object_mut() {
            obj.retain(|section, _| self.sees(section));
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

use Role::*;

/// Write rights, most specific pattern first; `*` is an item id. The first
/// rule whose pattern is a prefix of the written path decides. Supervisors may
/// write everything and are not listed.
pub const WRITE_RULES: &[(&str, &[Role])] = &[
    // Approving flexible funds is a supervisor's call.
    ("/strategies/*/flex/status", &[]),
    ("/strategies/*/flex/approved_by", &[]),
    ("/strategies/*/flex/paid_on", &[]),
    // Anyone may mark the action steps they are responsible for done (see
    // `OWN_STEP_FIELDS`); facilitators and advocates keep every step current.
    ("/strategies", &[Facilitator, FamilyAdvocate]),
    (
        "/outcomes/*/progress",
        &[Facilitator, FamilyAdvocate, Caregiver, Youth, Provider],
    ),
    ("/outcomes", &[Facilitator, FamilyAdvocate]),
    (
        "/strengths",
        &[
            Facilitator,
            FamilyAdvocate,
            Caregiver,
            Youth,
            Provider,
            NaturalSupport,
        ],
    ),
    ("/vision", &[Facilitator, FamilyAdvocate, Caregiver, Youth]),
    ("/mission", &[Facilitator, FamilyAdvocate]),
    ("/needs", &[Facilitator, FamilyAdvocate]),
    ("/crisis_plan", &[Facilitator, FamilyAdvocate]),
    ("/meetings", &[Facilitator, FamilyAdvocate]),
    ("/transition", &[Facilitator, FamilyAdvocate]),
    ("/cans", &[Facilitator, Provider]),
    ("/status", &[Facilitator, FamilyAdvocate, Provider]),
    ("/consents", &[Facilitator, Caregiver]),
    ("/team", &[Facilitator]),
    ("/enrollment", &[Facilitator]),
    ("/youth", &[Facilitator]),
    ("/title", &[Facilitator]),
];

/// Parts of a plan that only people of its home change, whatever their
/// role: who is on the team (with which role and status) and the family's
/// consent record. A replica's team and a peer's members edit the rest as
/// their role allows; the home, which holds the family's grants and checks
/// who may see the plan, is the one place these change.
pub const HOME_ONLY: &[&str] = &["/team", "/consents"];

/// Is `path` (or `pattern`) in a part of the plan only its home's people
/// change ([`HOME_ONLY`])?
pub fn home_only(path: &str) -> bool {
    HOME_ONLY
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// Fields of an action step that the member responsible for it may set,
/// whatever their role.
pub const OWN_STEP_FIELDS: &[&str] = &["done_on", "status"];

/// May `role` write the field or collection at `pattern` (ids as `*`)?
/// `own_step` is true when the path is an action step the caller is
/// responsible for.
pub fn may_write(role: Role, pattern: &str, own_step: bool) -> bool {
    if role == Supervisor {
        return true;
    }
    if own_step {
        if let Some(field) = pattern.strip_prefix("/strategies/*/steps/*/") {
            if OWN_STEP_FIELDS.contains(&field) {
                return true;
            }
        }
    }
    WRITE_RULES
        .iter()
        .find(|(prefix, _)| pattern == *prefix || pattern.starts_with(&format!("{prefix}/")))
        .is_some_and(|(_, roles)| roles.contains(&role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_facilitators_and_supervisors_edit_the_roster() {
        for role in Role::ALL {
            let expected = matches!(role, Facilitator | Supervisor);
            assert_eq!(may_write(role, "/team", false), expected, "{role}");
            assert_eq!(may_write(role, "/team/*/role", false), expected, "{role}");
        }
    }

    #[test]
    fn the_roster_and_the_consents_are_the_homes_alone() {
        for path in [
            "/team",
            "/team/01J/status",
            "/consents",
            "/consents/01J/status",
        ] {
            assert!(home_only(path), "{path}");
        }
        for path in [
            "/teams",
            "/vision",
            "/strengths/01J/statement",
            "/consentsx",
        ] {
            assert!(!home_only(path), "{path}");
        }
    }

    #[test]
    fn a_caregiver_marks_their_own_step_done_but_not_another() {
        let done = "/strategies/*/steps/*/done_on";
        assert!(may_write(Caregiver, done, true));
        assert!(!may_write(Caregiver, done, false));
        assert!(!may_write(
            Caregiver,
            "/strategies/*/steps/*/description",
            true
        ));
        assert!(may_write(Facilitator, done, false));
    }

    #[test]
    fn flexible_funds_are_approved_by_supervisors_only() {
        assert!(!may_write(Facilitator, "/strategies/*/flex/status", false));
        assert!(may_write(
            Facilitator,
            "/strategies/*/flex/amount_cents",
            false
        ));
        assert!(may_write(Supervisor, "/strategies/*/flex/status", false));
    }

    #[test]
    fn schema_v2_fields_are_written_as_their_neighbours() {
        // No rows of their own: the section's rule covers them.
        for (field, neighbour) in [
            ("/youth/preferred_language", "/youth/name"),
            ("/youth/county", "/youth/name"),
            ("/youth/race_ethnicity", "/youth/name"),
            ("/youth/gender", "/youth/name"),
            ("/team/*/language", "/team/*/name"),
            ("/strategies/*/agency", "/strategies/*/kind"),
            ("/strategies/*/funding_stream", "/strategies/*/kind"),
            ("/strategies/*/service/availability", "/strategies/*/kind"),
            ("/strategies/*/service/since", "/strategies/*/kind"),
        ] {
            for role in Role::ALL {
                assert_eq!(
                    may_write(role, field, false),
                    may_write(role, neighbour, false),
                    "{role} {field}"
                );
            }
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        // `/status` (snapshots) must not match `/statusx`, nor `/strategies`
        // match `/strategiesx`.
        assert!(!may_write(Provider, "/statusx", false));
        assert!(may_write(Provider, "/status/*/living", false));
    }

    #[test]
    fn what_a_role_sees_is_decided_by_the_first_segment() {
        for path in [
            "/cans",
            "/cans/01J/ratings/x",
            "/status/*/living",
            "consents",
        ] {
            assert!(!NaturalSupport.sees(path), "{path}");
            assert!(Facilitator.sees(path), "{path}");
        }
        assert!(NaturalSupport.sees("/strengths/*/text"));
        assert!(NaturalSupport.sees("/cansx"));
        let mut plan = serde_json::json!({"title": "t", "cans": [], "consents": [], "status": []});
        NaturalSupport.hide_sections(&mut plan);
        assert_eq!(plan, serde_json::json!({"title": "t"}));
    }

    #[test]
    fn roles_round_trip_through_their_spelling() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(
                serde_json::to_string(&role).ok(),
                Some(format!("\"{}\"", role.as_str()))
            );
        }
        assert!("admin".parse::<Role>().is_err());
    }
}
