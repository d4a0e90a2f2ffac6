//! The one grammar of the durations operators type: a whole number and a unit, `500ms`,
//! `30s`, `10m` (or `10min`), `2h`, `7d`, `2w`. Surrounding blanks are ignored; nothing else
//! is (no sign, no fraction, no space between number and unit, no unit-less number).
//!
//! Only the grammar lives here. What a caller accepts beyond it stays at the call site and
//! names its flag or field: the alert rules' `within` must be more than zero; `--since`,
//! `--until` and `--from` count back from now and take a time as well (`timespec`).

use std::time::Duration;

/// Why a text is not a duration. Carries the text as typed (trimmed); the caller names the
/// flag or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("cannot read \"{0}\" as a duration (a whole number and a unit: 500ms, 30s, 10m, 2h, 7d, 2w)")]
    Malformed(String),
    #[error("\"{0}\" is longer than any duration this can count")]
    TooLong(String),
}

/// Milliseconds in one of each unit.
const UNITS: [(&str, u64); 7] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("min", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

/// Reads a duration; `0s` is one (zero), for callers to accept or refuse.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let malformed = || DurationError::Malformed(text.to_owned());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(malformed)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(malformed());
    }
    let millis_per_unit = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, millis)| *millis)
        .ok_or_else(malformed)?;
    let too_long = || DurationError::TooLong(text.to_owned());
    // Only digits: the number fails to parse only when it does not fit.
    let n: u64 = digits.parse().map_err(|_| too_long())?;
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(too_long)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("10min"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse("2w"), Ok(Duration::from_secs(14 * 86400)));
    }

    #[test]
    fn blanks_around_are_ignored_and_zero_is_a_duration() {
        assert_eq!(parse("  45s\n"), Ok(Duration::from_secs(45)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn anything_else_is_malformed_and_says_what_was_typed() {
        for bad in [
            "", "45", "m", "s5", "-3s", "+3s", "1.5h", "5 m", "5M", "5ms ago", "7x", "5sec",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(
                e,
                DurationError::Malformed(bad.trim().to_owned()),
                "{bad:?}"
            );
            assert!(e.to_string().contains("as a duration"), "{e}");
        }
    }

    #[test]
    fn what_does_not_fit_is_too_long() {
        assert_eq!(
            parse("99999999999999999999d"),
            Err(DurationError::TooLong("99999999999999999999d".into()))
        );
        assert!(matches!(
            parse("18446744073709551615s"),
            Err(DurationError::TooLong(_))
        ));
        assert_eq!(
            parse("18446744073709551615ms"),
            Ok(Duration::from_millis(u64::MAX))
        );
    }
}
