//! The small languages names must stay within.

/// What [`is_word`] accepts, for error messages.
pub const WORD_RULE: &str = "a lowercase word: a letter, then letters, digits or _ (at most 63)";

/// An entity or action name: a lowercase ASCII letter, then lowercase letters, digits or
/// `_`, at most 63 bytes. Nothing that renders like another word (case, spaces, invisible or
/// look-alike characters), so a forged `Update` or `update ` cannot pass for `update`.
pub fn is_word(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && text.len() <= 63
}

/// What [`is_consumer_name`] accepts, for error messages (and `audit.consumers`' CHECK).
pub const CONSUMER_NAME_RULE: &str = "1 to 100 letters, digits and _ . : -";

/// A change-stream consumer's name: 1 to 100 ASCII letters, digits and `_ . : -` (the same
/// rule as `audit.consumers`' CHECK constraint, `^[A-Za-z0-9_.:-]{1,100}$`).
pub fn is_consumer_name(text: &str) -> bool {
    (1..=100).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        for ok in ["contact", "audit_log", "a", "table_dropped", "x1"] {
            assert!(is_word(ok), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "", "Update", "update ", " update", "1abc", "_x", "up-date", "ｕpdate", &long,
        ] {
            assert!(!is_word(bad), "{bad:?}");
        }
    }

    #[test]
    fn consumer_names() {
        for ok in ["siem", "archive.eu-1", "a:b_c", &"x".repeat(100)] {
            assert!(is_consumer_name(ok), "{ok}");
        }
        let long = "x".repeat(101);
        for bad in ["", "a b", "a/b", "é", &long] {
            assert!(!is_consumer_name(bad), "{bad:?}");
        }
    }
}
