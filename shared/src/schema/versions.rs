//! The plan schema as a sequence of versions, declared as data.
//!
//! Version 1 is [`V1`](super::V1). Each later version is a list of
//! [`Change`]s of the kinds an older reader survives (protobuf's rules): a
//! new optional field or collection, a new enum value with the value an
//! older reader shows instead. Anything else (a rename, a move, a type
//! change) would need a [`Lens`], a translation of documents both ways
//! (Cambria's idea); no version declares one yet.
//!
//! A node validates a document strictly against the version it declares
//! when it knows that version, and keeps what it does not know from a
//! higher one (see [`crate::plan::validate`]).

use super::{Field, Kind, V1};
use std::sync::OnceLock;

/// The newest version this build knows: what new plans are created at.
pub const CURRENT: i64 = 2;

/// One change a version makes to the one before.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// A new optional field (or collection, or section) in the struct or
    /// collection item at `at` (`""` for the root, `/strategies/*` for a
    /// strategy). Readers that do not know it keep it and never show it.
    Field { at: &'static str, field: Field },
    /// A new value of the enum field at `path`. Older readers show
    /// `fallback`, which must be what they fall back to ([`fallback`]).
    EnumValue {
        path: &'static str,
        value: &'static str,
        fallback: &'static str,
    },
}

/// A translation of a whole rendered document from one version to the
/// next (`forward`) and back (`backward`), for a change an older reader
/// cannot survive. Declared so that a version needing one has a place to
/// say so; a version listing lenses is one whose documents old nodes must
/// be given through them.
#[derive(Debug, Clone, Copy)]
pub struct Lens {
    pub about: &'static str,
    pub forward: fn(&mut serde_json::Value),
    pub backward: fn(&mut serde_json::Value),
}

/// One declared version after the first.
#[derive(Debug, Clone, Copy)]
pub struct Version {
    pub number: i64,
    pub changes: &'static [Change],
    pub lenses: &'static [Lens],
}

/// The value an older reader shows for an enum value it does not know:
/// `other` where the vocabulary has it, else its first value (the one the
/// plan operations set when none is given).
pub fn fallback(values: &[&'static str]) -> &'static str {
    values
        .iter()
        .copied()
        .find(|v| *v == "other")
        .or_else(|| values.first().copied())
        .unwrap_or_default()
}

/// Languages: BCP 47 tags (`es`, `en-US`, `vi`), see [`is_language_tag`].
const LANGUAGE: Kind = Kind::Language;

/// OMB SPD 15 (2024) minimum categories of race and ethnicity, one
/// question, as many as the person reports.
pub const RACE_ETHNICITY: &[&str] = &[
    "american_indian_or_alaska_native",
    "asian",
    "black_or_african_american",
    "hispanic_or_latino",
    "middle_eastern_or_north_african",
    "native_hawaiian_or_pacific_islander",
    "white",
];

/// Gender as HUD's HMIS data standards (FY2024, element 3.06) record it,
/// as many as the youth reports: the vocabulary the human services that
/// share these families already report in, with no free text (a
/// self-described identity in words would be identifying text).
pub const GENDERS: &[&str] = &[
    "girl_or_woman",
    "boy_or_man",
    "culturally_specific_identity",
    "transgender",
    "non_binary",
    "questioning",
    "different_identity",
    "prefer_not_to_say",
];

/// The system accountable for a strategy.
pub const AGENCIES: &[&str] = &[
    "mental_health",
    "child_welfare",
    "juvenile_justice",
    "education",
    "health",
    "community",
    "other",
];

/// Whose money pays for a strategy (the Care Management Entity's blended
/// funding).
pub const FUNDING_STREAMS: &[&str] = &[
    "medicaid",
    "child_welfare",
    "juvenile_justice",
    "education",
    "soc_flexible_funds",
    "private_insurance",
    "other",
];

pub const AVAILABILITY: &[&str] = &["available", "waitlisted", "unavailable"];

/// Where a strategy's service stands, so gaps are recorded where they are.
const SERVICE: &[Field] = &[
    Field::new("availability", Kind::Enum(AVAILABILITY)),
    Field::new("since", Kind::Date).identifying(),
];

/// Version 2: what the Systems of Care need next (issue 16). Language,
/// county, race and ethnicity and gender identify (Safe Harbor: a county is
/// a geographic subdivision smaller than a state; the others, combined,
/// single a youth out in a small community): they leave a node only for a
/// consented peer, and reach reports only after suppression.
const V2: &[Change] = &[
    Change::Field {
        at: "/youth",
        field: Field::new("preferred_language", LANGUAGE).identifying(),
    },
    Change::Field {
        at: "/youth",
        field: Field::new("county", Kind::Digits(5)).identifying(),
    },
    Change::Field {
        at: "/youth",
        field: Field::new("race_ethnicity", Kind::EnumList(RACE_ETHNICITY)).identifying(),
    },
    Change::Field {
        at: "/youth",
        field: Field::new("gender", Kind::EnumList(GENDERS)).identifying(),
    },
    Change::Field {
        at: "/team/*",
        field: Field::new("language", LANGUAGE).identifying(),
    },
    Change::Field {
        at: "/strategies/*",
        field: Field::new("agency", Kind::Enum(AGENCIES)),
    },
    Change::Field {
        at: "/strategies/*",
        field: Field::new("funding_stream", Kind::Enum(FUNDING_STREAMS)),
    },
    Change::Field {
        at: "/strategies/*",
        field: Field::new("service", Kind::Struct(SERVICE)),
    },
];

/// Every version after the first, in order.
pub const VERSIONS: &[Version] = &[Version {
    number: 2,
    changes: V2,
    lenses: &[],
}];

/// The root fields of every declared version, index 0 being version 1.
fn built() -> &'static [&'static [Field]] {
    static BUILT: OnceLock<Vec<&'static [Field]>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut out: Vec<&'static [Field]> = vec![V1];
        for version in VERSIONS {
            let mut root = *out.last().unwrap_or(&V1);
            for change in version.changes {
                root = apply(root, change);
            }
            out.push(root);
        }
        out
    })
}

/// The root fields of `version`, if it is declared.
pub fn plan(version: i64) -> Option<&'static [Field]> {
    let index = usize::try_from(version.checked_sub(1)?).ok()?;
    built().get(index).copied()
}

/// The root fields of [`CURRENT`].
pub fn latest() -> &'static [Field] {
    plan(CURRENT).unwrap_or(V1)
}

/// Every declared version, oldest first.
pub fn declared() -> impl Iterator<Item = i64> {
    1..=CURRENT
}

/// `root` with `change` made. Built once per version, so the new tables
/// are leaked: they live as long as the process, like [`V1`].
fn apply(root: &'static [Field], change: &Change) -> &'static [Field] {
    let segments = |at: &'static str| -> Vec<&'static str> {
        at.split('/')
            .filter(|s| !s.is_empty() && *s != "*")
            .collect()
    };
    match *change {
        Change::Field { at, field } => edit_at(root, &segments(at), &|fields| {
            let mut fields = fields.to_vec();
            fields.push(field);
            Vec::leak(fields)
        }),
        Change::EnumValue { path, value, .. } => {
            let (at, name) = path.rsplit_once('/').unwrap_or(("", path));
            edit_at(root, &segments(at), &|fields| {
                let grown = |values: &[&'static str]| {
                    let mut values = values.to_vec();
                    values.push(value);
                    &*Vec::leak(values)
                };
                let fields: Vec<Field> = fields
                    .iter()
                    .map(|f| match f.kind {
                        Kind::Enum(values) if f.name == name => Field {
                            kind: Kind::Enum(grown(values)),
                            ..*f
                        },
                        Kind::EnumList(values) if f.name == name => Field {
                            kind: Kind::EnumList(grown(values)),
                            ..*f
                        },
                        _ => *f,
                    })
                    .collect();
                Vec::leak(fields)
            })
        }
    }
}

/// Rebuilds the table along `segments` (field names; item ids skipped),
/// with `edit` made to the fields at their end.
fn edit_at(
    fields: &'static [Field],
    segments: &[&str],
    edit: &dyn Fn(&'static [Field]) -> &'static [Field],
) -> &'static [Field] {
    let Some((first, rest)) = segments.split_first() else {
        return edit(fields);
    };
    let rebuilt: Vec<Field> = fields
        .iter()
        .map(|f| match f.kind {
            Kind::Struct(inner) if f.name == *first => Field {
                kind: Kind::Struct(edit_at(inner, rest, edit)),
                ..*f
            },
            Kind::Collection(inner) if f.name == *first => Field {
                kind: Kind::Collection(edit_at(inner, rest, edit)),
                ..*f
            },
            _ => *f,
        })
        .collect();
    Vec::leak(rebuilt)
}

/// A well-formed and valid BCP 47 language tag (`es`, `en-US`, `zh-Hant`),
/// at most 35 characters (RFC 5646 §4.4.1).
pub fn is_language_tag(s: &str) -> bool {
    s.len() <= 35
        && language_tags::LanguageTag::parse(s).is_ok_and(|tag| tag.is_valid() && tag.as_str() == s)
}

/// Exactly `n` ASCII digits (a county's 5-digit FIPS code).
pub fn is_digits(s: &str, n: u8) -> bool {
    s.len() == usize::from(n) && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::field;

    /// Every field of `old`, found in `new` at the same place with the same
    /// kind (an enum may have grown), the same flags.
    fn survives(old: &'static [Field], new: &'static [Field], at: &str) {
        for o in old {
            let path = format!("{at}/{}", o.name);
            let n = field(new, o.name).unwrap_or_else(|| panic!("{path} vanished"));
            assert_eq!(o.identifying, n.identifying, "{path}: identifying changed");
            assert_eq!(o.required, n.required, "{path}: required changed");
            match (o.kind, n.kind) {
                (Kind::Struct(a), Kind::Struct(b)) => survives(a, b, &path),
                (Kind::Collection(a), Kind::Collection(b)) => survives(a, b, &format!("{path}/*")),
                (Kind::Enum(a), Kind::Enum(b)) | (Kind::EnumList(a), Kind::EnumList(b)) => {
                    assert!(a.iter().all(|v| b.contains(v)), "{path}: a value vanished");
                    assert_eq!(fallback(a), fallback(b), "{path}: fallback changed");
                }
                (a, b) => assert_eq!(a, b, "{path}: kind changed"),
            }
        }
        for n in new {
            if field(old, n.name).is_none() {
                assert!(!n.required, "{at}/{}: a new field must be optional", n.name);
            }
        }
    }

    #[test]
    fn every_version_is_reachable_from_v1_by_survivable_changes() {
        assert_eq!(plan(1), Some(V1));
        assert_eq!(VERSIONS.len() as i64 + 1, CURRENT);
        for (i, version) in VERSIONS.iter().enumerate() {
            assert_eq!(
                version.number,
                i as i64 + 2,
                "versions are numbered in order"
            );
            assert!(
                version.lenses.is_empty(),
                "v{} needs no lens",
                version.number
            );
            let (old, new) = (plan(version.number - 1), plan(version.number));
            let (Some(old), Some(new)) = (old, new) else {
                panic!("v{} is not built", version.number);
            };
            survives(old, new, "");
            for change in version.changes {
                match change {
                    Change::Field { at, field: f } => {
                        let path = format!("{at}/{}", f.name);
                        assert!(
                            resolve(new, &path).is_some(),
                            "{path} not in v{}",
                            version.number
                        );
                        assert!(resolve(old, &path).is_none(), "{path} was already there");
                    }
                    Change::EnumValue {
                        path,
                        value,
                        fallback: declared,
                    } => {
                        let old_values = match resolve(old, path).map(|f| f.kind) {
                            Some(Kind::Enum(v) | Kind::EnumList(v)) => v,
                            other => panic!("{path} is not an enum: {other:?}"),
                        };
                        assert_eq!(*declared, fallback(old_values), "{path}: {value}");
                    }
                }
            }
        }
        assert_eq!(plan(0), None);
        assert_eq!(plan(CURRENT + 1), None);
        assert_eq!(latest().len(), V1.len());
    }

    fn resolve(root: &'static [Field], path: &str) -> Option<&'static Field> {
        let mut fields = root;
        let mut found = None;
        for segment in path.split('/').filter(|s| !s.is_empty() && *s != "*") {
            let f = field(fields, segment)?;
            found = Some(f);
            if let Kind::Struct(inner) | Kind::Collection(inner) = f.kind {
                fields = inner;
            }
        }
        found
    }

    #[test]
    fn v2_declares_the_equity_fields_identifying_and_the_funding_codes_not() {
        let v2 = latest();
        for path in [
            "/youth/preferred_language",
            "/youth/county",
            "/youth/race_ethnicity",
            "/youth/gender",
            "/team/*/language",
            "/strategies/*/service/since",
        ] {
            assert!(resolve(v2, path).is_some_and(|f| f.identifying), "{path}");
        }
        for path in [
            "/strategies/*/agency",
            "/strategies/*/funding_stream",
            "/strategies/*/service/availability",
        ] {
            assert!(resolve(v2, path).is_some_and(|f| !f.identifying), "{path}");
        }
    }

    #[test]
    fn language_tags_and_fips_codes() {
        for tag in ["es", "en", "vi", "en-US", "zh-Hant", "es-419"] {
            assert!(is_language_tag(tag), "{tag}");
        }
        for tag in [
            "",
            "english",
            "e",
            "es_MX",
            "en--US",
            "xx-YY-ZZZZZZZZZZZZZ",
            " es",
        ] {
            assert!(!is_language_tag(tag), "{tag}");
        }
        assert!(is_digits("08031", 5));
        assert!(!is_digits("8031", 5) && !is_digits("0803a", 5) && !is_digits("080311", 5));
    }

    #[test]
    fn fallbacks_are_other_or_the_first_value() {
        assert_eq!(fallback(AGENCIES), "other");
        assert_eq!(fallback(AVAILABILITY), "available");
    }
}
