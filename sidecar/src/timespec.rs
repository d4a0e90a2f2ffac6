//! Parsing the times operators type: `2026-11-25T10:00:00Z` (RFC 3339), `2026-11-25` (a
//! date), `2026-11-25 10:00` (a local date and time), or relative to now: `7d`, `12h`, `30m`,
//! `45s`, `2w` (the grammar of [`crate::duration`]), and `now`.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: cannot read \"{input}\" as a time (expected RFC 3339 like 2026-11-25T10:00:00Z, a date like 2026-11-25, or relative like 7d, 12h, 30m)")]
pub struct TimeSpecError {
    pub flag: &'static str,
    pub input: String,
}

/// Which end of a range a time bounds: a bare date means the start of that day for `--since`
/// and the end of it (the next midnight, exclusive) for `--until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Start,
    End,
}

pub fn parse(
    flag: &'static str,
    input: &str,
    bound: Bound,
    now: DateTime<Utc>,
    zone: Tz,
) -> Result<DateTime<Utc>, TimeSpecError> {
    let err = || TimeSpecError {
        flag,
        input: input.to_owned(),
    };
    let text = input.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(ago) = relative(text) {
        return now.checked_sub_signed(ago).ok_or_else(err);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    // RFC 3339 with a space instead of T, as psql prints timestamps.
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Ok(t.with_timezone(&Utc));
    }
    let local = |naive: NaiveDateTime| {
        zone.from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(err)
    };
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return local(naive);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = match bound {
            Bound::Start => date,
            Bound::End => date.succ_opt().ok_or_else(err)?,
        };
        return local(day.and_time(NaiveTime::MIN));
    }
    Err(err())
}

/// A duration back from now, in the grammar of [`crate::duration`]. None when the text is
/// not one (it may be a time), or too long to count back.
fn relative(text: &str) -> Option<Duration> {
    crate::duration::parse(text)
        .ok()
        .and_then(|d| Duration::from_std(d).ok())
}

/// A time zone by IANA name (`Europe/Paris`), `UTC`, or `local` (the TZ environment variable).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    let name = name.trim();
    let resolved = if name.eq_ignore_ascii_case("local") {
        std::env::var("TZ").unwrap_or_else(|_| "UTC".into())
    } else {
        name.to_owned()
    };
    resolved.parse::<Tz>().map_err(|_| {
        format!(
            "--tz: unknown time zone \"{name}\" (use an IANA name such as Europe/Paris, or UTC)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn p(input: &str, bound: Bound) -> Result<DateTime<Utc>, TimeSpecError> {
        parse("--since", input, bound, now(), Tz::UTC)
    }

    #[test]
    fn rfc3339_with_offset_is_converted_to_utc() {
        assert_eq!(
            p("2026-11-01T10:00:00+02:00", Bound::Start).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap()
        );
        assert_eq!(
            p("2026-11-01 10:00:00.5+00", Bound::Start)
                .unwrap()
                .timestamp_millis(),
            Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0)
                .unwrap()
                .timestamp_millis()
                + 500
        );
    }

    #[test]
    fn a_date_is_the_start_or_the_end_of_that_day() {
        assert_eq!(
            p("2026-11-01", Bound::Start).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            p("2026-11-01", Bound::End).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn dates_and_local_times_follow_the_zone() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let t = parse("--since", "2026-07-01", Bound::Start, now(), paris).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 6, 30, 22, 0, 0).unwrap());
        let t = parse("--since", "2026-01-10 08:30", Bound::Start, now(), paris).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 1, 10, 7, 30, 0).unwrap());
    }

    #[test]
    fn relative_times_count_back_from_now() {
        assert_eq!(p("7d", Bound::Start).unwrap(), now() - Duration::days(7));
        assert_eq!(p("12h", Bound::Start).unwrap(), now() - Duration::hours(12));
        assert_eq!(
            p("30m", Bound::Start).unwrap(),
            now() - Duration::minutes(30)
        );
        assert_eq!(p("2w", Bound::Start).unwrap(), now() - Duration::weeks(2));
        assert_eq!(
            p("500ms", Bound::Start).unwrap(),
            now() - Duration::milliseconds(500)
        );
        assert_eq!(p(" 0s ", Bound::Start).unwrap(), now());
        assert_eq!(p("now", Bound::Start).unwrap(), now());
    }

    #[test]
    fn malformed_input_names_the_flag_and_the_value() {
        for bad in [
            "yesterday",
            "2026-13-01",
            "7x",
            "",
            "d7",
            "2026-11-31",
            "99999999999999999999d",
            "9999999999999999w",
            "45",
        ] {
            let e = p(bad, Bound::Start).unwrap_err();
            assert_eq!(e.input, bad);
            assert!(e.to_string().starts_with("--since: cannot read"), "{e}");
        }
    }

    #[test]
    fn zones_by_name() {
        assert!(parse_zone("Europe/Paris").is_ok());
        assert!(parse_zone("UTC").is_ok());
        assert!(parse_zone("Mars/Olympus")
            .unwrap_err()
            .contains("Mars/Olympus"));
    }
}
