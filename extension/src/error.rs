//! Every way the extension refuses a request, with the SQLSTATE a client can match on.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{relation} is {kind}, not a table: only tables can be tracked")]
    NotATable {
        relation: String,
        kind: &'static str,
    },

    #[error("{relation} is a temporary table: only permanent and unlogged tables can be tracked")]
    TemporaryTable { relation: String },

    #[error("{relation} belongs to the audit schema and cannot be tracked")]
    AuditSchemaTable { relation: String },

    #[error(
        "table {relation} has no primary key: pass subject_column => '<column>' to audit.track"
    )]
    NoSubject { relation: String },

    #[error("column \"{column}\" of {relation} cannot be both the subject and redacted")]
    RedactedSubject { relation: String, column: String },

    #[error("column \"{column}\" of {relation} cannot be both the tenant column and redacted: every event shows its organization")]
    RedactedTenant { relation: String, column: String },

    #[error("column \"{column}\" given in {parameter} does not exist in table {relation}")]
    UnknownColumn {
        relation: String,
        parameter: &'static str,
        column: String,
    },

    #[error("{parameter} must not contain NULL")]
    NullElement { parameter: &'static str },

    #[error("{parameter} must be given, not NULL")]
    NullArgument { parameter: &'static str },

    #[error("the source \"revert\" is reserved: only audit.revert and audit.revert_transaction record it")]
    ReservedSource,

    #[error("{parameter} must not be empty")]
    EmptyArgument { parameter: &'static str },

    #[error(
        "permission denied to change tracking of {relation}: must be its owner or a superuser"
    )]
    NotOwner { relation: String },

    #[error("permission denied for audit.purge: must be a superuser")]
    NotSuperuser,

    #[error("audit.context must be a JSON object: {reason}")]
    InvalidContext { reason: String },

    #[error("action \"{action}\" is reserved: only the extension records it")]
    ReservedAction { action: String },

    #[error("action \"{action}\" must be {}", audit_trail_contract::WORD_RULE)]
    InvalidAction { action: String },

    #[error("entity must be {}", audit_trail_contract::WORD_RULE)]
    InvalidEntity,

    #[error("only members of audit_admin may record audit_log events")]
    AuditLogEntity,

    #[error("entity \"audit_log\" is reserved for the audit log's own events: track the table under another entity")]
    ReservedEntity,

    #[error(
        "application event of {size} bytes is larger than audit.max_event_bytes ({limit} bytes)"
    )]
    EventTooLarge { size: usize, limit: usize },

    #[error("subject id of {size} bytes is longer than the limit of {limit} bytes")]
    SubjectTooLong { size: usize, limit: usize },

    #[error("{setting} is {size} bytes long; the longest an event may name is {limit}")]
    NameTooLong {
        setting: &'static str,
        size: usize,
        limit: usize,
    },

    #[error("{relation} uses table inheritance (it has or is a child table): track the tables one by one")]
    Inheritance { relation: String },

    #[error("{relation} is a partition of {parent}, which is not tracked: writes made through {parent} would not be captured; track {parent} (its partitions are tracked with it)")]
    PartitionOfUntracked { relation: String, parent: String },

    #[error("a value of more than 256 MB cannot be recorded as jsonb")]
    ValueTooLarge,

    #[error("table {relation} has audit triggers but is not tracked: run audit.track or audit.untrack on it")]
    NotTracked { relation: String },

    #[error("column \"{column}\" of {relation} is in its audit settings but no longer exists: run audit.track on it again")]
    StaleSettings { relation: String, column: String },

    #[error("dropping {what} would delete the audit log, which holds events")]
    DropDeletesLog { what: &'static str },

    #[error("audit.events is append-only")]
    AppendOnly,

    #[error("the audit_trail extension is not installed in this database")]
    NotInstalled,

    #[error("no partition of audit.events takes events at {at}")]
    NoPartition { at: String },

    #[error("{0}")]
    Held(String),

    #[error("{function} must be called as an AFTER ... FOR EACH STATEMENT trigger created by audit.track")]
    NotATrigger { function: &'static str },

    #[error(
        "transition tables of {relation} hold {old} old and {new} new rows; they must pair up"
    )]
    UnpairedUpdate {
        relation: String,
        old: i64,
        new: i64,
    },

    #[error("no service of audit_trail is called \"{service}\" (seal, archive, maintenance)")]
    UnknownService { service: String },

    #[error("audit.set_actor cannot be called inside a trigger: only the transaction that writes names its actor")]
    AttributionInTrigger,

    #[error("seal refused: {0}")]
    SealRefused(String),

    #[error("could not read audit settings: {0}")]
    Spi(#[from] pgrx::spi::Error),
}

impl AuditError {
    fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            Self::NotATable { .. } => ERRCODE_WRONG_OBJECT_TYPE,
            Self::TemporaryTable { .. } | Self::AuditSchemaTable { .. } => {
                ERRCODE_FEATURE_NOT_SUPPORTED
            }
            Self::NoSubject { .. } | Self::RedactedSubject { .. } | Self::RedactedTenant { .. } => {
                ERRCODE_INVALID_OBJECT_DEFINITION
            }
            Self::UnknownColumn { .. } | Self::StaleSettings { .. } => ERRCODE_UNDEFINED_COLUMN,
            Self::NullElement { .. } | Self::NullArgument { .. } => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            Self::ReservedSource => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::EmptyArgument { .. }
            | Self::ReservedAction { .. }
            | Self::InvalidAction { .. }
            | Self::InvalidEntity => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::AuditLogEntity | Self::ReservedEntity => ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::DropDeletesLog { .. } => ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            Self::EventTooLarge { .. } | Self::SubjectTooLong { .. } | Self::NameTooLong { .. } => {
                ERRCODE_PROGRAM_LIMIT_EXCEEDED
            }
            Self::Inheritance { .. } | Self::PartitionOfUntracked { .. } => {
                ERRCODE_FEATURE_NOT_SUPPORTED
            }
            Self::ValueTooLarge => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            Self::NotOwner { .. } | Self::NotSuperuser | Self::AppendOnly | Self::Held(_) => {
                ERRCODE_INSUFFICIENT_PRIVILEGE
            }
            Self::InvalidContext { .. } => ERRCODE_INVALID_TEXT_REPRESENTATION,
            Self::NotTracked { .. } | Self::NotInstalled | Self::NoPartition { .. } => {
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            Self::NotATrigger { .. } => ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            Self::SealRefused(_) => ERRCODE_DATA_EXCEPTION,
            Self::UnknownService { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::AttributionInTrigger => ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::UnpairedUpdate { .. } | Self::Spi(_) => ERRCODE_INTERNAL_ERROR,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::AppendOnly => Some("Old events leave only through retention (audit.set_retention, audit.maintain) or audit.purge(), which record that they ran."),
            Self::NoPartition { .. } => Some("Its default partition, audit.events_default, was removed: ALTER EXTENSION audit_trail UPDATE, or restore it from a backup."),
            Self::Held(_) => Some("audit.holds lists the legal holds; audit.release(name) ends one."),
            Self::EventTooLarge { .. } => Some(
                "Record what the event is about, not the data itself; a superuser may raise the limit.",
            ),
            Self::SubjectTooLong { .. } => Some("A subject id names one entity, as a key does."),
            Self::DropDeletesLog { .. } => Some(
                "Keep a copy first (pg_dump), then confirm in the same session: \
                 SET audit.allow_drop_extension = on.",
            ),
            Self::InvalidContext { .. } => {
                Some("Set it with audit.set_actor(actor, source, context => '{\"request_id\": \"...\"}'::jsonb).")
            }
            _ => None,
        }
    }

    /// Raises this error as a PostgreSQL ERROR; the current transaction (or subtransaction) aborts.
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "audit_trail");
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;
