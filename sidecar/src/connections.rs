//! The connections a command works through, opened and admitted in one place: `reader` on
//! `--db`, and `record` on `--record-db` when given (the primary, when `--db` is a read-only
//! standby), where the command writes its own records (export records, cursors, alerts, a
//! failed verification). Without `--record-db` the command writes through `reader`, which must
//! then not be a standby: that is refused before anything is read, not after the output has
//! gone out and the write fails.

use tokio_postgres::Client;

use crate::db::{self, Target};
use crate::error::Result;

pub struct Connections {
    /// `--db`: what the command reads.
    pub reader: Client,
    /// `--record-db`, when given: where the command writes.
    pub record: Option<Client>,
}

impl Connections {
    /// Resolves and connects `--db` (and `--record-db`) as `application_name`, then admits
    /// them ([`Connections::admit`]). `writes` names what the command writes, for the refusal
    /// on a standby.
    pub async fn open(
        db: Option<&str>,
        record_db: Option<&str>,
        application_name: &str,
        writes: &str,
    ) -> Result<Connections> {
        let target = db::resolve(db, application_name)?;
        let record_target = record_db
            .map(|text| db::resolve_record(text, application_name))
            .transpose()?;
        let reader = db::connect(&target).await?;
        let record = match &record_target {
            Some(t) => Some(db::connect(t).await?),
            None => None,
        };
        let connections = Connections { reader, record };
        connections.admit(record_target.as_ref(), writes).await?;
        Ok(connections)
    }

    /// Refuses (exit 3) a role on either connection that may not read the audit log, a
    /// `--record-db` that is a standby too, and a standby `--db` with nowhere to write.
    pub async fn admit(&self, record_target: Option<&Target>, writes: &str) -> Result<()> {
        db::require_audit_admin(&self.reader).await?;
        match &self.record {
            Some(record) => {
                db::require_audit_admin(record).await?;
                let description = record_target.map_or("?", |t| t.description.as_str());
                db::require_primary(record, description).await
            }
            None if db::in_recovery(&self.reader).await? => {
                Err(db::standby_without_record_db(writes))
            }
            None => Ok(()),
        }
    }

    /// Where the command writes: `--record-db` when given, else `--db`.
    pub fn writer(&self) -> &Client {
        self.record.as_ref().unwrap_or(&self.reader)
    }
}
