//! Who made a change, from where, and when: computed once per statement and shared by all the
//! events that statement writes.

use std::cell::RefCell;
use std::ffi::CString;

use pgrx::pg_sys;

use crate::datums;
use crate::error::{AuditError, Result};
use crate::settings;

/// Longest actor or source an event may name. Both are keys of the hourly summary's indexes
/// (extension/sql/lifetime.sql), whose entries hold at most about 2.7 kB; a name is far
/// shorter, and a longer one is refused with an error rather than stopping maintenance.
pub const NAME_MAX_BYTES: usize = 2048;

pub struct Attribution {
    pub occurred_at: pg_sys::Datum,
    pub txid: pg_sys::Datum,
    pub actor: pg_sys::Datum,
    pub db_user: pg_sys::Datum,
    pub source: pg_sys::Datum,
    pub client_addr: Option<pg_sys::Datum>,
    pub application_name: Option<pg_sys::Datum>,
    pub context: Option<pg_sys::Datum>,
}

thread_local! {
    // One backend is one thread. The session user changes only through SET SESSION
    // AUTHORIZATION, so the name is looked up again only when the role's oid differs.
    static SESSION_USER: RefCell<Option<(pg_sys::Oid, CString)>> = const { RefCell::new(None) };
}

fn session_user_name() -> CString {
    // SAFETY: reading the session user id has no preconditions.
    let oid = unsafe { pg_sys::GetSessionUserId() };
    if let Some(name) = SESSION_USER.with_borrow(|cached| {
        cached
            .as_ref()
            .filter(|(cached_oid, _)| *cached_oid == oid)
            .map(|(_, name)| name.clone())
    }) {
        return name;
    }
    // SAFETY: the session user exists; GetUserNameFromId returns a palloc'd C string.
    let name =
        unsafe { std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(oid, false)) }.to_owned();
    SESSION_USER.with_borrow_mut(|cached| *cached = Some((oid, name.clone())));
    name
}

/// `audit.context` must be one JSON object (the contract's rule), named in the error.
fn validate_context(raw: &str) -> Result<()> {
    audit_trail_contract::check_context(raw).map_err(|e| AuditError::InvalidContext {
        reason: e.to_string(),
    })
}

impl Attribution {
    /// The attribution of events written now, in the current memory context.
    pub fn current() -> Result<Self> {
        let db_user = session_user_name();
        let bounded = |setting: &'static str, value: &[u8]| -> Result<pg_sys::Datum> {
            if value.len() > NAME_MAX_BYTES {
                return Err(AuditError::NameTooLong {
                    setting,
                    size: value.len(),
                    limit: NAME_MAX_BYTES,
                });
            }
            Ok(datums::text(value))
        };
        let actor = match settings::actor() {
            Some(actor) => bounded("audit.actor", actor.to_bytes())?,
            None => datums::text(db_user.to_bytes()),
        };
        let source = bounded(
            "audit.source",
            settings::source().map_or(&b"manual"[..], |s| s.to_bytes()),
        )?;
        let context = match settings::context() {
            None => None,
            Some(raw) => {
                validate_context(&raw.to_string_lossy())?;
                // SAFETY: jsonb_in takes a NUL-terminated string; it was validated above.
                Some(
                    unsafe {
                        pgrx::direct_function_call_as_datum(
                            pg_sys::jsonb_in,
                            &[Some(pg_sys::Datum::from(raw.as_ptr()))],
                        )
                    }
                    .ok_or(AuditError::InvalidContext {
                        reason: "null".into(),
                    })?,
                )
            }
        };
        // SAFETY: these read backend-global state that is valid inside a transaction.
        unsafe {
            let application_name = std::ptr::addr_of!(pg_sys::application_name).read();
            let application_name = (!application_name.is_null() && *application_name != 0)
                .then(|| datums::text(std::ffi::CStr::from_ptr(application_name).to_bytes()));
            Ok(Attribution {
                occurred_at: pg_sys::Datum::from(pg_sys::GetCurrentStatementStartTimestamp()),
                txid: pg_sys::Datum::from(pg_sys::GetTopFullTransactionId().value),
                actor,
                db_user: datums::text(db_user.to_bytes()),
                source,
                client_addr: pgrx::direct_function_call_as_datum(pg_sys::inet_client_addr, &[]),
                application_name,
                context,
            })
        }
    }
}
