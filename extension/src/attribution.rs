//! Who made a change, from where, and when: computed once per statement and shared by all the
//! events that statement writes.

use std::cell::RefCell;
use std::ffi::CString;

use pgrx::pg_sys;

use crate::error::{AuditError, Result};
use crate::pg::datums;
use crate::settings;

/// Longest actor or source an event may name. Both are keys of the hourly summary's indexes
/// (extension/sql/summary.sql), whose entries hold at most about 2.7 kB; a name is far
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
    /// The organization the transaction acts for (`audit.set_actor`'s tenant, or SET LOCAL
    /// audit.tenant), as a text datum and as bytes to compare rows' organizations with.
    pub tenant: Option<(pg_sys::Datum, Vec<u8>)>,
}

thread_local! {
    // One backend is one thread. A role's name is read from its oid once per transaction (the
    // cache is emptied when each ends): a role renamed since the connection opened is named
    // as it is called now, and a new role under the old name is never blamed (a per-session
    // cache kept the old name).
    static ROLE_NAMES: RefCell<Vec<(pg_sys::Oid, CString)>> = const { RefCell::new(Vec::new()) };
}

/// The transaction ended: names are read again in the next.
pub fn transaction_ended() {
    ROLE_NAMES.with_borrow_mut(Vec::clear);
}

/// A role's current name, looked up once per transaction.
fn role_name(oid: pg_sys::Oid) -> CString {
    if let Some(name) = ROLE_NAMES.with_borrow(|names| {
        names
            .iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, name)| name.clone())
    }) {
        return name;
    }
    // SAFETY: the role exists (it is this session's); GetUserNameFromId returns a palloc'd C
    // string.
    let name =
        unsafe { std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(oid, false)) }.to_owned();
    ROLE_NAMES.with_borrow_mut(|names| names.push((oid, name.clone())));
    name
}

fn session_user_name() -> CString {
    // SAFETY: reading the session user id has no preconditions.
    role_name(unsafe { pg_sys::GetSessionUserId() })
}

/// The role the connection authenticated as, when `SET SESSION AUTHORIZATION` (superusers
/// only) made the session user another: None when they are the same.
fn authenticated_other_than_session() -> Option<CString> {
    // SAFETY: reading the session's user ids has no preconditions.
    let (authenticated, session) =
        unsafe { (pg_sys::GetAuthenticatedUserId(), pg_sys::GetSessionUserId()) };
    (authenticated != session).then(|| role_name(authenticated))
}

/// A jsonb datum from JSON text, by jsonb's input function.
fn jsonb(text: &std::ffi::CStr) -> Result<pg_sys::Datum> {
    // SAFETY: jsonb_in takes a NUL-terminated string of valid JSON (validated by the caller).
    unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::jsonb_in,
            &[Some(pg_sys::Datum::from(text.as_ptr()))],
        )
    }
    .ok_or(AuditError::InvalidContext {
        reason: "null".into(),
    })
}

/// `context` with the organization the transaction acts for under its reserved key: the
/// context of a cross-organization write.
pub fn with_acting_tenant(context: Option<pg_sys::Datum>, acting: &[u8]) -> Result<pg_sys::Datum> {
    with_reserved(
        context,
        serde_json::json!({
            audit_trail_contract::ACTING_TENANT_KEY: String::from_utf8_lossy(acting)
        }),
    )
}

/// `context` merged with an object of reserved keys only capture writes.
fn with_reserved(
    context: Option<pg_sys::Datum>,
    reserved: serde_json::Value,
) -> Result<pg_sys::Datum> {
    let reserved =
        jsonb(
            &CString::new(reserved.to_string()).map_err(|_| AuditError::InvalidContext {
                reason: "a value with a NUL".into(),
            })?,
        )?;
    Ok(match context {
        None => reserved,
        // SAFETY: both are jsonb datums; jsonb_concat merges two objects.
        Some(app) => unsafe {
            pgrx::direct_function_call_as_datum(pg_sys::jsonb_concat, &[Some(app), Some(reserved)])
        }
        .unwrap_or(reserved),
    })
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
        // What audit.set_actor stored comes first: the settings themselves could have been
        // changed since by code the writer did not run (set_actor.rs).
        let given = crate::set_actor::current();
        let given_or = |pick: fn(&crate::set_actor::GivenAttribution) -> &CString,
                        setting: Option<&'static std::ffi::CStr>|
         -> Option<CString> {
            match &given {
                Some(g) => Some(pick(g).clone()).filter(|v| !v.is_empty()),
                None => setting.map(|s| s.to_owned()),
            }
        };
        let actor = match given_or(|g| &g.actor, settings::actor()) {
            Some(actor) => bounded("audit.actor", actor.to_bytes())?,
            None => datums::text(db_user.to_bytes()),
        };
        let reverting = crate::revert::reverting();
        let source = match (reverting, given_or(|g| &g.source, settings::source())) {
            (Some(_), _) => datums::text(audit_trail_contract::REVERT_SOURCE.as_bytes()),
            (None, Some(source))
                if source.to_bytes() == audit_trail_contract::REVERT_SOURCE.as_bytes() =>
            {
                return Err(AuditError::ReservedSource);
            }
            (None, Some(source)) => bounded("audit.source", source.to_bytes())?,
            (None, None) => datums::text(b"manual"),
        };
        let tenant = match given_or(|g| &g.tenant, settings::tenant()) {
            Some(tenant) => Some((
                bounded("audit.tenant", tenant.to_bytes())?,
                tenant.to_bytes().to_vec(),
            )),
            None => None,
        };
        let context = match given_or(|g| &g.context, settings::context()) {
            None => None,
            Some(raw) => {
                validate_context(&raw.to_string_lossy())?;
                Some(jsonb(&raw)?)
            }
        };
        // Who really connected, when a superuser's SET SESSION AUTHORIZATION made db_user
        // another role: recorded in the context, under a key applications may not use.
        let context = match authenticated_other_than_session() {
            None => context,
            Some(login) => Some(with_reserved(
                context,
                serde_json::json!({
                    audit_trail_contract::AUTHENTICATED_ROLE_KEY: login.to_string_lossy()
                }),
            )?),
        };
        // A change audit.revert writes names the event it puts back (revert.rs).
        let context = match reverting {
            None => context,
            Some(event_id) => Some(with_reserved(
                context,
                serde_json::json!({ audit_trail_contract::REVERTS_KEY: event_id }),
            )?),
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
                tenant,
            })
        }
    }
}
