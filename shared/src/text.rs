//! Text that becomes an action: what may be in a plan's text, and the one
//! form a phone number is stored and shown in.
//!
//! **Invisible and direction-changing characters are refused** in every
//! text field, on every path (ops, a device's or a peer's sync, an import, a
//! handover): bidirectional embeddings, overrides and isolates (U+202A–202E,
//! U+2066–2069) reorder what is shown, so "call 303-555-0123" could show
//! other digits than a phone dials or a reader copies; zero-width and other
//! format characters (U+200B–200F, U+2060–2064, U+FEFF, every other
//! `Cf`) and controls (`Cc`, but `\n` and `\t`) make two different strings
//! look the same (a name, a number). They are refused, not stripped: the
//! text is a person's words in a health record, and a node that silently
//! rewrote them would change what was written without saying so (and on the
//! sync paths it could not: the bytes are the author's signed history).
//! One narrow exception: zero-width non-joiner and joiner (U+200C, U+200D)
//! *between two non-ASCII letters or symbols*, which Persian, Arabic and
//! Indic words and emoji sequences need and which change no order; next to
//! ASCII, whitespace or the ends of the text they are refused.
//!
//! **Phone numbers are normalised** (on the ops path) to E.164, `+13035550123`,
//! reading national numbers in the node's default region (`phone_region`,
//! US unless set): what the app shows and what it dials are the same digits,
//! whatever a person typed. A number that is not a valid number for its
//! region, or carries an extension or letters, is refused. Synced and
//! imported documents carry their values as the author's changes, so there
//! the stored value must already be canonical E.164 (the SDK normalises as
//! it edits).

use phonenumber::country::Id;
use phonenumber::Mode;
use std::sync::OnceLock;

/// The region a national phone number is read in when the node set none.
pub const DEFAULT_PHONE_REGION: &str = "US";

static PHONE_REGION: OnceLock<Id> = OnceLock::new();

/// Sets, once per process, the region national phone numbers are read in
/// (ISO 3166 code: `US`, `CA`, `MX`…); `Err` for a code the phone metadata
/// does not know. Later calls keep the first region.
pub fn set_phone_region(code: &str) -> Result<(), String> {
    let id: Id = code
        .trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("`{code}` is not a region phone numbers are known for"))?;
    let _ = PHONE_REGION.set(id);
    Ok(())
}

fn phone_region() -> Id {
    *PHONE_REGION.get_or_init(|| Id::US)
}

/// Why a character may not be in plan text, or `None` when it may.
fn refused(c: char) -> Option<&'static str> {
    match c {
        '\n' | '\t' => None,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' => {
            Some("a bidirectional control character")
        }
        '\u{061C}' => Some("a bidirectional control character"),
        '\u{200B}'..='\u{200D}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}'
        | '\u{034F}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{3164}'
        | '\u{FFA0}'
        | '\u{180E}' => Some("an invisible character"),
        '\u{2028}' | '\u{2029}' => Some("a line or paragraph separator (use a new line)"),
        c if c.is_control() => Some("a control character"),
        c if is_format(c) => Some("an invisible formatting character"),
        _ => None,
    }
}

/// Unicode's other format characters (`Cf`) not named above.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{2065}'
        | '\u{206A}'..='\u{206F}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
}

/// A joiner's neighbour that makes it harmless: a non-ASCII letter, mark or
/// symbol (Persian, Devanagari, an emoji), not whitespace and not itself
/// refused.
fn joins(c: Option<char>) -> bool {
    c.is_some_and(|c| !c.is_ascii() && !c.is_whitespace() && refused(c).is_none())
}

/// The first character `text` may not hold, with why: `Some((index in
/// characters, the character, reason))`.
pub fn unsafe_char(text: &str) -> Option<(usize, char, &'static str)> {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let Some(reason) = refused(c) else {
            continue;
        };
        if matches!(c, '\u{200C}' | '\u{200D}')
            && joins(i.checked_sub(1).and_then(|p| chars.get(p)).copied())
            && joins(chars.get(i + 1).copied())
        {
            continue;
        }
        return Some((i, c, reason));
    }
    None
}

/// The detail a refusal of `text` gives (the character's code point and
/// where, never the text itself: it may be a child's health record).
pub fn unsafe_detail(text: &str) -> Option<String> {
    unsafe_char(text).map(|(i, c, reason)| {
        format!(
            "text holds {reason} (U+{:04X}, character {}): refused so that what is shown is what was written",
            c as u32,
            i + 1
        )
    })
}

/// `input` as E.164 (`+13035550123`), national numbers read in the node's
/// region; `Err(why)` when it is not one valid phone number.
pub fn normalize_phone(input: &str) -> Result<String, String> {
    normalize_phone_in(input, phone_region())
}

/// [`normalize_phone`] with national numbers read in `region`.
pub fn normalize_phone_in(input: &str, region: Id) -> Result<String, String> {
    if let Some(detail) = unsafe_detail(input) {
        return Err(detail);
    }
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err("expected a phone number".into());
    }
    // Only what people write in numbers: digits, a leading +, separators.
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().\u{a0}/".contains(c))
    {
        return Err(
            "a phone number may hold only digits, a leading +, spaces, dashes, dots and brackets (no letters or extensions)"
                .into(),
        );
    }
    let number =
        phonenumber::parse(Some(region), trimmed).map_err(|_| "not a phone number".to_string())?;
    if number.extension().is_some() {
        return Err("extensions are not stored with a phone number".into());
    }
    if !phonenumber::is_valid(&number) {
        return Err("not a valid phone number (a national number needs its area code)".into());
    }
    Ok(number.format().mode(Mode::E164).to_string())
}

/// Whether `value` is a phone number as stored: E.164 and valid, exactly as
/// [`normalize_phone`] writes it.
pub fn is_canonical_phone(value: &str) -> bool {
    value.starts_with('+') && normalize_phone_in(value, Id::US).is_ok_and(|n| n == value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_and_international_numbers_become_e164() {
        for (typed, stored) in [
            ("303-555-0123", "+13035550123"),
            ("(303) 555-0123", "+13035550123"),
            ("303.555.0123", "+13035550123"),
            ("1 303 555 0123", "+13035550123"),
            ("+1 (303) 555-0123", "+13035550123"),
            (" +13035550123 ", "+13035550123"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+52 55 1234 5678", "+525512345678"),
        ] {
            assert_eq!(
                normalize_phone_in(typed, Id::US).as_deref(),
                Ok(stored),
                "{typed}"
            );
        }
        // The county's region reads its own national numbers.
        assert_eq!(
            normalize_phone_in("020 7946 0958", Id::GB).as_deref(),
            Ok("+442079460958")
        );
    }

    #[test]
    fn what_is_not_one_dialable_number_is_refused() {
        for typed in [
            "",
            "555-0123",             // no area code
            "call 303-555-0123",    // words
            "303-555-0123 ext. 12", // an extension
            "1-800-FLOWERS",        // letters dial other digits than shown
            "303-555-0123\u{202E}", // a direction override
            "303\u{200B}-555-0123", // a zero-width space
            "+1 303 555 0123 303 555 0199",
            "12",
        ] {
            assert!(normalize_phone_in(typed, Id::US).is_err(), "{typed:?}");
        }
    }

    #[test]
    fn only_the_canonical_form_is_canonical() {
        assert!(is_canonical_phone("+13035550123"));
        assert!(is_canonical_phone("+442079460958"));
        assert!(!is_canonical_phone("303-555-0123"));
        assert!(!is_canonical_phone("+1 303 555 0123"));
        assert!(!is_canonical_phone("13035550123"));
        assert!(!is_canonical_phone("+1303555012"));
    }

    #[test]
    fn bidi_controls_and_invisible_characters_are_found() {
        for bad in [
            "Call \u{202E}3210-555-303",
            "\u{2066}isolate\u{2069}",
            "zero\u{200B}width",
            "mark\u{200F}",
            "word\u{2060}joiner",
            "\u{FEFF}bom",
            "soft\u{00AD}hyphen",
            "bell\u{0007}",
            "line\u{2028}separator",
            "tag\u{E0041}",
            "a\u{200D}b",         // a joiner between ASCII letters
            "\u{200C}\u{0645}",   // at the start
            "\u{0645}\u{200C} x", // before a space
        ] {
            assert!(unsafe_char(bad).is_some(), "{bad:?}");
            assert!(unsafe_detail(bad).is_some_and(|d| d.contains("U+")));
        }
        for good in [
            "Line one\nline two\tindented",
            "Carla's grandmother, Señora Muñoz — 😀",
            "می\u{200C}خواهم",                             // Persian, ZWNJ
            "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}", // a family emoji
            "क्\u{200D}ष",                                  // Devanagari, ZWJ
            "עברית and English",
        ] {
            assert_eq!(unsafe_char(good), None, "{good:?}");
        }
    }
}
