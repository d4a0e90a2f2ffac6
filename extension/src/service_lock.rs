//! `audit.take_service_lock(service, wait)`: how the product's services (seal, archive,
//! maintenance) take turns. The lock is PostgreSQL's lock on a database object: the
//! extension itself (`pg_extension`, its oid), with the service's number as the sub-object.
//! No statement a user can run takes a lock with that tag (DDL on the extension locks
//! sub-object 0), so, unlike an advisory lock with a fixed key, no role can hold it to stop
//! a service; the function is executable by `audit_service` and the extension's owner only.
//! It lasts until the transaction ends and needs no transaction id, so a run that holds it
//! for minutes holds back no change stream.

use pgrx::pg_sys;

use crate::error::{AuditError, Result};
use crate::pg::args;
use crate::pg::compat;
use crate::pg::ffi::sql_callable;

sql_callable!(audit_take_service_lock, pg_finfo_audit_take_service_lock => take_entry);

/// The services and their sub-object numbers (never 0: that is the extension's own lock).
const SERVICES: [(&str, u16); 3] = [("seal", 1), ("archive", 2), ("maintenance", 3)];

unsafe fn take_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (text, boolean).
    let (service, wait) = unsafe {
        (
            args::text(fcinfo, 0).unwrap_or_default(),
            args::datum(fcinfo, 1).is_some_and(|d| d.value() != 0),
        )
    };
    match take(&service, wait) {
        Ok(taken) => pg_sys::Datum::from(taken),
        Err(e) => e.raise(),
    }
}

fn take(service: &str, wait: bool) -> Result<bool> {
    let Some(&(_, number)) = SERVICES.iter().find(|(name, _)| *name == service) else {
        return Err(AuditError::UnknownService {
            service: service.to_owned(),
        });
    };
    // SAFETY: a catalog look-up by name; the lock functions take a valid object address and
    // a lock mode, and raise (lock_timeout) rather than return when waiting fails.
    unsafe {
        let extension = pg_sys::get_extension_oid(c"audit_trail".as_ptr(), false);
        let mode = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;
        if wait {
            pg_sys::LockDatabaseObject(pg_sys::ExtensionRelationId, extension, number, mode);
            Ok(true)
        } else {
            Ok(compat::conditional_lock_database_object(
                pg_sys::ExtensionRelationId,
                extension,
                number,
                mode,
            ))
        }
    }
}
