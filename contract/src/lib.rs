//! The contract every part of audit_trail shares: what docs/contract.md fixes and more than one
//! crate must spell the same way. The extension writes events by these names, the sidecar
//! reads and exports them by these names, and the tests check the installed schema against
//! them. Pure Rust, no PostgreSQL: `cargo test -p audit-trail-contract` runs anywhere.
//!
//! SQL cannot import Rust: `extension/sql/schema.sql` spells the columns again, and an
//! end-to-end test (`tests/e2e/contract.rs`) holds it to [`EVENT_COLUMNS`].

pub mod categories;
pub mod chain;
mod context;
pub mod schema;
pub mod search;
pub mod summary;
mod words;

pub use context::{
    check_context, ContextError, ACTING_TENANT_KEY, AUTHENTICATED_ROLE_KEY, REVERTS_KEY,
    REVERT_SOURCE,
};
pub use words::{is_consumer_name, is_word, CONSUMER_NAME_RULE, WORD_RULE};

/// The columns of `audit.events`, in table order.
pub const EVENT_COLUMNS: [&str; 18] = [
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
    "tenant",
];

/// The CSV export's header: the twelve columns docs/contract.md fixes, then the rest.
pub const CSV_HEADER: [&str; 18] = [
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
    "tenant",
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

/// Actions of the log's own entity that only the extension's functions record, each after
/// checking who asks: an alert (`audit.record_alert`, by its consumer's owner), an archive
/// (`audit.record_archive`), a sealing key registered (`audit.register_seal_key`), a
/// change-stream cursor moved (`audit.move_consumer`). Other entities may use these words.
pub const AUDIT_LOG_RECORDED_ACTIONS: [&str; 5] = [
    "alert",
    "archive",
    "archive_check",
    "seal_key",
    "consumer_moved",
];

/// Actions of the log's own entity that the sidecar records through `audit.log_event`, as the
/// role it runs as (an admin): what an export, a dashboard sign-in and a failed verification
/// leave in the log. The alert rules and the dashboard name them by these constants.
pub mod sidecar_actions {
    /// An export's start: the filters and the rows they match, committed before the first row.
    pub const EXPORT: &str = "export";
    /// How an export ended: rows sent, complete, cut off or failed.
    pub const EXPORT_END: &str = "export_end";
    /// A sign-in to the dashboard.
    pub const SIGN_IN: &str = "sign_in";
    /// `verify` found the log or its seals changed.
    pub const VERIFY_FAILED: &str = "verify_failed";
    pub const ALL: [&str; 4] = [EXPORT, EXPORT_END, SIGN_IN, VERIFY_FAILED];
}

/// Whether `audit.log_event` refuses this event: a reserved action, or one of the log's own
/// that only the extension records.
pub fn is_reserved_event(entity: &str, action: &str) -> bool {
    is_reserved_action(action)
        || (entity == AUDIT_LOG_ENTITY && AUDIT_LOG_RECORDED_ACTIONS.contains(&action))
}

/// The entity of the log's own events (exports, purges, tracking): only the extension and
/// members of `audit_admin` write it, and no table can be tracked under it.
pub const AUDIT_LOG_ENTITY: &str = "audit_log";

/// The entity of user profiles, whose privilege columns the alert rules watch.
pub const USER_ENTITY: &str = "user";

/// Columns of a `user` row that hold its privileges: a change to one is a privilege change
/// (the report's user activity, the built-in `privilege-change` alert).
pub const PRIVILEGE_FIELDS: [&str; 4] = ["role", "roles", "permission", "permissions"];

/// How a table is tracked, as far as the privilege rule cares: its entity and the columns
/// its settings hide (ignored, or redacted).
#[derive(Debug, Clone, Copy)]
pub struct Watch<'a> {
    pub entity: &'a str,
    pub hidden: &'a [String],
}

impl Watch<'_> {
    fn watches(&self, column: &str) -> bool {
        self.entity == USER_ENTITY
            && PRIVILEGE_FIELDS.contains(&column)
            && !self.hidden.iter().any(|h| h == column)
    }
}

/// The privilege columns of a table (`columns`) that a (re-)track stops showing: watched
/// before and not after (hidden now, or the table is no longer tracked as `user`). A first
/// track (`before` None) is held to the same table tracked as `user` with nothing hidden.
pub fn privilege_fields_unwatched(
    columns: &[String],
    before: Option<Watch<'_>>,
    after: Watch<'_>,
) -> Vec<String> {
    let before = before.unwrap_or(Watch {
        entity: after.entity,
        hidden: &[],
    });
    columns
        .iter()
        .filter(|c| before.watches(c) && !after.watches(c))
        .cloned()
        .collect()
}

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
            "docs/contract.md fixes the first twelve"
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
        for action in AUDIT_LOG_RECORDED_ACTIONS {
            assert!(is_word(action), "{action}");
            assert!(is_reserved_event(AUDIT_LOG_ENTITY, action), "{action}");
            assert!(!is_reserved_event("contact", action), "{action}");
        }
        assert!(!is_reserved_event(AUDIT_LOG_ENTITY, "export"));
        assert!(is_word(AUDIT_LOG_ENTITY));
    }

    #[test]
    fn a_track_that_hides_or_moves_privilege_columns_names_them() {
        let columns: Vec<String> = ["id", "name", "role", "permissions"]
            .map(String::from)
            .to_vec();
        let none: Vec<String> = Vec::new();
        let role = vec!["role".to_owned()];
        let user = |hidden| Watch {
            entity: "user",
            hidden,
        };
        assert!(privilege_fields_unwatched(&columns, None, user(&none)).is_empty());
        assert_eq!(
            privilege_fields_unwatched(&columns, Some(user(&none)), user(&role)),
            ["role"]
        );
        assert_eq!(
            privilege_fields_unwatched(&columns, None, user(&role)),
            ["role"]
        );
        // Re-tracked under another entity: the rule watches none of them any more.
        let account = Watch {
            entity: "account",
            hidden: &none,
        };
        assert_eq!(
            privilege_fields_unwatched(&columns, Some(user(&none)), account),
            ["role", "permissions"]
        );
        // Un-hiding, or another entity from the start, narrows nothing.
        assert!(privilege_fields_unwatched(&columns, Some(user(&role)), user(&none)).is_empty());
        assert!(privilege_fields_unwatched(&columns, None, account).is_empty());
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
