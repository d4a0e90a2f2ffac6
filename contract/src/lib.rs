//! The contract every part of audit_trail shares: what DESIGN.md fixes and more than one
//! crate must spell the same way. The extension writes events by these names, the sidecar
//! reads and exports them by these names, and the tests check the installed schema against
//! them. Pure Rust, no PostgreSQL: `cargo test -p audit-trail-contract` runs anywhere.
//!
//! SQL cannot import Rust: `extension/sql/schema.sql` spells the columns again, and an
//! end-to-end test (`tests/e2e/contract.rs`) holds it to [`EVENT_COLUMNS`].

mod context;
mod words;

pub use context::{check_context, ContextError};
pub use words::{is_consumer_name, is_word, CONSUMER_NAME_RULE, WORD_RULE};

/// The columns of `audit.events`, in table order.
pub const EVENT_COLUMNS: [&str; 17] = [
    "id",
    "occurred_at",
    "txid",
    "actor",
    "db_user",
    "source",
    "client_addr",
    "application_name",
    "entity",
    "action",
    "table_name",
    "subject_id",
    "changed_fields",
    "old_data",
    "new_data",
    "context",
    "details",
];

/// The CSV export's header: DESIGN.md's twelve columns, then the rest.
pub const CSV_HEADER: [&str; 17] = [
    "id",
    "occurred_at",
    "actor",
    "db_user",
    "source",
    "entity",
    "action",
    "subject_id",
    "table_name",
    "changed_fields",
    "old_data",
    "new_data",
    "client_addr",
    "application_name",
    "context",
    "details",
    "txid",
];

/// Actions only capture records: a row was created, updated or deleted, a table emptied.
pub const CAPTURED_ACTIONS: [&str; 4] = ["create", "update", "delete", "truncate"];

/// Actions the extension records about the log itself and tracked tables' DDL. (`archive`,
/// which `audit.record_archive` records, is not among them: applications archive contacts.)
pub const EXTENSION_ACTIONS: [&str; 8] = [
    "purge",
    "track",
    "untrack",
    "alter",
    "table_dropped",
    "retention",
    "hold",
    "release",
];

/// Whether an application may not record this action through `audit.log_event`.
pub fn is_reserved_action(action: &str) -> bool {
    CAPTURED_ACTIONS.contains(&action) || EXTENSION_ACTIONS.contains(&action)
}

/// The entity of the log's own events (exports, purges, tracking): only the extension and
/// members of `audit_admin` write it, and no table can be tracked under it.
pub const AUDIT_LOG_ENTITY: &str = "audit_log";

/// What a redacted column's value is replaced by in row images.
pub const REDACTED: &str = "[redacted]";

/// The capture triggers `audit.track` installs on a tracked table.
pub const CAPTURE_TRIGGERS: [&str; 4] = [
    "audit_trail_insert",
    "audit_trail_update",
    "audit_trail_delete",
    "audit_trail_truncate",
];

/// The channel capture NOTIFYs at commit, and change-stream followers LISTEN on.
pub const NOTIFY_CHANNEL: &std::ffi::CStr = c"audit_trail_events";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_header_holds_every_column_once() {
        let mut header = CSV_HEADER.to_vec();
        let mut columns = EVENT_COLUMNS.to_vec();
        header.sort_unstable();
        columns.sort_unstable();
        assert_eq!(header, columns);
        assert_eq!(
            &CSV_HEADER[..12],
            [
                "id",
                "occurred_at",
                "actor",
                "db_user",
                "source",
                "entity",
                "action",
                "subject_id",
                "table_name",
                "changed_fields",
                "old_data",
                "new_data"
            ],
            "DESIGN.md fixes the first twelve"
        );
    }

    #[test]
    fn reserved_actions_are_words_and_application_ones_are_not_reserved() {
        for action in CAPTURED_ACTIONS.iter().chain(&EXTENSION_ACTIONS) {
            assert!(is_word(action), "{action}");
            assert!(is_reserved_action(action), "{action}");
        }
        for action in ["export", "sign_in", "alert", "login"] {
            assert!(!is_reserved_action(action), "{action}");
        }
        assert!(is_word(AUDIT_LOG_ENTITY));
    }

    #[test]
    fn capture_triggers_share_the_prefix_the_ddl_hooks_look_for() {
        // api.sql's hooks recognise capture triggers by this prefix.
        for name in CAPTURE_TRIGGERS {
            assert!(name.starts_with("audit_trail_"));
        }
        assert_eq!(NOTIFY_CHANNEL.to_str(), Ok("audit_trail_events"));
    }
}
