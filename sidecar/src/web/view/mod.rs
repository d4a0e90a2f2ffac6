//! What the Audit Log and event pages show, prepared from query results: formatted times,
//! links, the field | before | after rows of a change. Templates only lay it out.
//! [`log`] is the Audit Log page, [`event`] one event's page; what both use is here.

mod event;
mod log;
mod overview;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use event::EventView;
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
