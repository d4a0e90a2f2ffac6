//! What the dashboard's pages show, prepared from query results: formatted times, links,
//! the field | before | after rows of a change, the Overview's bars. Templates only lay it
//! out. [`log`] is the Audit Log page, [`event`] one event's page, [`overview`] the
//! Overview; what they share is here.

mod event;
mod log;
mod overview;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use event::{EventView, Version};
pub use log::LogView;
pub use overview::OverviewView;

pub fn format_time(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// After this long without `audit.maintain()`, the tail that filters read event by event has
/// grown past what an hourly schedule leaves.
pub const SUMMARY_STALE_AFTER: chrono::Duration = chrono::Duration::hours(2);

/// The start of the notice shown when the summary is stale ("Filters read events since ...
/// without the summary"; the page adds what to schedule), or None when it is fresh or the
/// extension keeps none.
pub fn summary_notice(
    state: &crate::web::queries::SummaryState,
    now: DateTime<Utc>,
    zone: Tz,
) -> Option<String> {
    use crate::web::queries::SummaryState;
    match state {
        SummaryState::Unavailable => None,
        SummaryState::Empty => Some("Filters read every event without the summary".into()),
        SummaryState::At { summarized_at, .. } => (now - *summarized_at > SUMMARY_STALE_AFTER)
            .then(|| {
                format!(
                    "Filters read events since {} without the summary",
                    format_time(*summarized_at, zone)
                )
            }),
    }
}

/// The CSS class of an action's badge.
pub fn action_class(action: &str) -> &'static str {
    match action {
        "create" => "badge badge-create",
        "update" => "badge badge-update",
        "delete" | "truncate" | "purge" => "badge badge-delete",
        "export" => "badge badge-export",
        _ => "badge",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::queries::SummaryState;
    use chrono::TimeZone;

    #[test]
    fn the_notice_shows_when_nothing_was_summarized_or_not_for_two_hours() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 16, 0, 0).unwrap();
        let at = |h, m| SummaryState::At {
            watermark: "900".into(),
            summarized_at: Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap(),
        };
        assert_eq!(
            summary_notice(&SummaryState::Unavailable, now, Tz::UTC),
            None
        );
        assert_eq!(
            summary_notice(&SummaryState::Empty, now, Tz::UTC).as_deref(),
            Some("Filters read every event without the summary")
        );
        assert_eq!(summary_notice(&at(14, 30), now, Tz::UTC), None);
        assert_eq!(
            summary_notice(&at(13, 2), now, Tz::Europe__Paris).as_deref(),
            Some("Filters read events since 2026-12-01 14:02:00 CET without the summary")
        );
    }
}
