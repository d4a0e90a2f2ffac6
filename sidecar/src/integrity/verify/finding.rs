//! What verify found: each violation, as `--format json` lists it.

use serde::Serialize;

/// What a finding is about. Its string (`kind` in `verify --format json`, and in the
/// `verify_failed` event's details) is a public contract that scripts match on: a variant
/// is never renamed, and the unit test below pins every string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    // The audit schema, from the catalogs (super::schema): what readers read.
    SchemaExtensionMissing,
    SchemaRowSecurity,
    SchemaPolicy,
    SchemaRule,
    SchemaViewOption,
    SchemaOwner,
    SchemaAccessMethod,
    SchemaForeignTable,
    SchemaUnexpectedObject,
    SchemaTrigger,
    SchemaTriggerDisabled,
    SchemaEventTriggerDisabled,
    SchemaInheritance,
    SchemaPartition,
    SchemaPrivileges,
    SchemaUserCast,
    SchemaSubscription,
    /// A catalog finding of a kind `schema::check` has no name for.
    SchemaOther,
    SchemaUnknownRelease,
    SchemaObjectAdded,
    SchemaObjectRedefined,
    SchemaObjectMissing,
    // The keys and the seals.
    KeyReplaced,
    SealMissing,
    UnknownKey,
    BadSignature,
    SealRewritten,
    SealOutOfChain,
    // The events against their seals.
    EventAltered,
    EventInserted,
    EventMissing,
    BatchAltered,
    // Retention.
    GapNotesMalformed,
    GapNotesUnrecorded,
    GapNotesMismatch,
    GapNotesRemoved,
    CarriedEventAltered,
    // The archives (--archive).
    ArchiveAltered,
    ArchiveUnreadable,
    ArchiveEventAltered,
    ArchiveMissing,
    // The checkpoint files (--checkpoints).
    CheckpointUnreadable,
    CheckpointBadSignature,
    TailCut,
}

pub(super) fn push(
    findings: &mut Vec<Finding>,
    kind: FindingKind,
    seal: Option<i64>,
    event_id: Option<i64>,
    message: String,
) {
    findings.push(Finding {
        kind,
        seal,
        event_id,
        message,
    });
}

/// One finding; the first is the one reported.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Finding {
    pub(super) kind: FindingKind,
    pub(super) seal: Option<i64>,
    pub(super) event_id: Option<i64>,
    pub(super) message: String,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::FindingKind::{self, *};

    /// The string `--format json` writes for each kind. No wildcard: a new kind does not
    /// compile until it has its string here (then add it to ALL).
    fn contract_string(kind: FindingKind) -> &'static str {
        match kind {
            SchemaExtensionMissing => "schema_extension_missing",
            SchemaRowSecurity => "schema_row_security",
            SchemaPolicy => "schema_policy",
            SchemaRule => "schema_rule",
            SchemaViewOption => "schema_view_option",
            SchemaOwner => "schema_owner",
            SchemaAccessMethod => "schema_access_method",
            SchemaForeignTable => "schema_foreign_table",
            SchemaUnexpectedObject => "schema_unexpected_object",
            SchemaTrigger => "schema_trigger",
            SchemaTriggerDisabled => "schema_trigger_disabled",
            SchemaEventTriggerDisabled => "schema_event_trigger_disabled",
            SchemaInheritance => "schema_inheritance",
            SchemaPartition => "schema_partition",
            SchemaPrivileges => "schema_privileges",
            SchemaUserCast => "schema_user_cast",
            SchemaSubscription => "schema_subscription",
            SchemaOther => "schema_other",
            SchemaUnknownRelease => "schema_unknown_release",
            SchemaObjectAdded => "schema_object_added",
            SchemaObjectRedefined => "schema_object_redefined",
            SchemaObjectMissing => "schema_object_missing",
            KeyReplaced => "key_replaced",
            SealMissing => "seal_missing",
            UnknownKey => "unknown_key",
            BadSignature => "bad_signature",
            SealRewritten => "seal_rewritten",
            SealOutOfChain => "seal_out_of_chain",
            EventAltered => "event_altered",
            EventInserted => "event_inserted",
            EventMissing => "event_missing",
            BatchAltered => "batch_altered",
            GapNotesMalformed => "gap_notes_malformed",
            GapNotesUnrecorded => "gap_notes_unrecorded",
            GapNotesMismatch => "gap_notes_mismatch",
            GapNotesRemoved => "gap_notes_removed",
            CarriedEventAltered => "carried_event_altered",
            ArchiveAltered => "archive_altered",
            ArchiveUnreadable => "archive_unreadable",
            ArchiveEventAltered => "archive_event_altered",
            ArchiveMissing => "archive_missing",
            CheckpointUnreadable => "checkpoint_unreadable",
            CheckpointBadSignature => "checkpoint_bad_signature",
            TailCut => "tail_cut",
        }
    }

    const ALL: [FindingKind; 44] = [
        SchemaExtensionMissing,
        SchemaRowSecurity,
        SchemaPolicy,
        SchemaRule,
        SchemaViewOption,
        SchemaOwner,
        SchemaAccessMethod,
        SchemaForeignTable,
        SchemaUnexpectedObject,
        SchemaTrigger,
        SchemaTriggerDisabled,
        SchemaEventTriggerDisabled,
        SchemaInheritance,
        SchemaPartition,
        SchemaPrivileges,
        SchemaUserCast,
        SchemaSubscription,
        SchemaOther,
        SchemaUnknownRelease,
        SchemaObjectAdded,
        SchemaObjectRedefined,
        SchemaObjectMissing,
        KeyReplaced,
        SealMissing,
        UnknownKey,
        BadSignature,
        SealRewritten,
        SealOutOfChain,
        EventAltered,
        EventInserted,
        EventMissing,
        BatchAltered,
        GapNotesMalformed,
        GapNotesUnrecorded,
        GapNotesMismatch,
        GapNotesRemoved,
        CarriedEventAltered,
        ArchiveAltered,
        ArchiveUnreadable,
        ArchiveEventAltered,
        ArchiveMissing,
        CheckpointUnreadable,
        CheckpointBadSignature,
        TailCut,
    ];

    #[test]
    fn every_kind_serializes_to_its_contract_string() {
        for kind in ALL {
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::from(contract_string(kind))),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn no_two_kinds_share_a_string() {
        let kinds: HashSet<String> = ALL.iter().map(|kind| format!("{kind:?}")).collect();
        let strings: HashSet<&str> = ALL.iter().map(|&kind| contract_string(kind)).collect();
        assert_eq!((kinds.len(), strings.len()), (ALL.len(), ALL.len()));
    }
}
