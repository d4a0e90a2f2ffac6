//! The hourly summary of the events (`extension/sql/summary.sql`), which the dashboard's
//! filters and Overview read instead of the events: what it counts events by. The sidecar's
//! filters answer from it only on these columns (`sidecar/src/filters.rs`, tested against
//! this list), and the end-to-end tests hold the installed tables to it.

/// Columns of `audit.events` that `audit.event_summary` counts events by, each hour.
pub const EVENT_SUMMARY_DIMENSIONS: [&str; 5] =
    ["actor", "source", "entity", "action", "table_name"];

/// Those of `audit.kind_hours`: all but the actor, so that a filter without one reads a few
/// dozen rows an hour however busy the hour.
pub const KIND_HOURS_DIMENSIONS: [&str; 4] = ["source", "entity", "action", "table_name"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_hours_is_the_summary_without_the_actor() {
        let without_actor: Vec<&str> = EVENT_SUMMARY_DIMENSIONS
            .into_iter()
            .filter(|d| *d != "actor")
            .collect();
        assert_eq!(without_actor, KIND_HOURS_DIMENSIONS);
        for d in EVENT_SUMMARY_DIMENSIONS {
            assert!(crate::EVENT_COLUMNS.contains(&d), "{d}");
        }
    }
}
