//! The `audit.*` settings an application sets per transaction to attribute its changes.
//!
//! Attribution comes only from the writing transaction (docs/attribution in the README's
//! security model): `audit.actor`, `audit.source`, `audit.context` and `audit.tenant` count only when set with
//! SET LOCAL (or `audit.set_actor`, which sets them so) in the transaction that writes. A
//! session-level `SET` (which a pooled connection would carry into the next client's
//! transactions), a function's own `SET` clause, and defaults from the database, a role, the
//! server's configuration or the client's options are ignored, and the defaults refused where
//! they are made (`ALTER DATABASE ... SET audit.actor` is an error). They cannot be set from
//! inside a trigger either: code the writer did not run (a table owner's trigger) must not
//! choose whom an event names.

use std::cell::Cell;
use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use crate::pg::compat;

static ACTOR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static SOURCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CONTEXT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static TENANT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static NOTIFY: GucSetting<bool> = GucSetting::<bool>::new(true);
static ALLOW_DROP_EXTENSION: GucSetting<bool> = GucSetting::<bool>::new(false);
static SEAL_STALL_AFTER: GucSetting<i32> = GucSetting::<i32>::new(900);
static MAX_EVENT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_MAX_EVENT_BYTES);

/// What a non-admin may write through `audit.log_event`, by default: far above any real
/// application event, far below what would let one role bloat the log.
const DEFAULT_MAX_EVENT_BYTES: i32 = 64 * 1024;

thread_local! {
    // True while the settings are being defined (the library loading): values set before it
    // loaded are applied again then, from wherever the load happens (a trigger's first call),
    // and only their source is checked.
    static DEFINING: Cell<bool> = const { Cell::new(false) };
}

pub fn define() {
    DEFINING.set(true);
    // SAFETY: the check hook is a #[pg_guard] function of the right signature.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"audit.actor",
            c"Application user recorded as the actor of audit events.",
            c"Set with SET LOCAL (or audit.set_actor) inside the transaction; empty means session_user.",
            &ACTOR,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_attribution),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"audit.source",
            c"Where a change comes from: import, api, sync, ...; empty means manual.",
            c"Set with SET LOCAL (or audit.set_actor) inside the transaction.",
            &SOURCE,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_attribution),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"audit.context",
            c"A JSON object stored with each audit event (request id, end-user IP, ...).",
            c"Set with SET LOCAL (or audit.set_actor) inside the transaction.",
            &CONTEXT,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_attribution),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"audit.tenant",
            c"The organization the transaction acts for, recorded with events of tables that do not name one.",
            c"Set with SET LOCAL (or audit.set_actor) inside the transaction.",
            &TENANT,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_attribution),
            None,
            None,
        );
    }
    DEFINING.set(false);
    GucRegistry::define_bool_guc(
        c"audit.notify",
        c"Wake change-stream followers (NOTIFY audit_trail_events) when a transaction writes events.",
        c"Off: followers find new events by polling only. Prepared (two-phase) transactions \
          never notify.",
        &NOTIFY,
        GucContext::Userset,
        GucFlags::default(),
    );
    // Superuser-only: the limit protects the log from the roles it bounds.
    GucRegistry::define_int_guc(
        c"audit.max_event_bytes",
        c"Largest application event (details plus subject id) a role outside audit_admin may record.",
        c"audit.log_event refuses larger ones with an error; members of audit_admin are not bound.",
        &MAX_EVENT_BYTES,
        1024,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    GucRegistry::define_bool_guc(
        c"audit.allow_drop_extension",
        c"Confirms that DROP EXTENSION audit_trail may delete an audit log that holds events.",
        c"Set it in the session that drops the extension, after keeping a copy of the log. It \
          also lets that session drop capture triggers (recorded), as pg_restore --clean does.",
        &ALLOW_DROP_EXTENSION,
        GucContext::Suset,
        GucFlags::default(),
    );
    // Superuser-only, like the alert it drives: a reader must not quiet it in their session.
    GucRegistry::define_int_guc(
        c"audit.seal_stall_after",
        c"How old the oldest unsealed event may get before sealing counts as stalled.",
        c"audit.integrity.sealing_stalled, the dashboard's warning and the sealing-stalled alert \
          use it; set it above the interval sealing runs at.",
        &SEAL_STALL_AFTER,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    // SAFETY: called once from _PG_init; reserving the prefix makes a typo such as
    // `SET audit.actr` an error instead of a silently ignored placeholder.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"audit".as_ptr()) };
}

/// Refuses an attribution setting made where it must not be: as a default (the database's, a
/// role's, the configuration file's, the client's startup options), or from inside a trigger.
/// An empty value (unset) is always accepted.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_attribution(
    newval: *mut *mut core::ffi::c_char,
    _extra: *mut *mut core::ffi::c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: guc.c passes a pointer to the new value, NULL or a NUL-terminated string.
    let empty = unsafe { (*newval).is_null() || **newval == 0 };
    if empty {
        return true;
    }
    use pg_sys::GucSource::*;
    let refusal = match source {
        PGC_S_DEFAULT | PGC_S_DYNAMIC_DEFAULT => None,
        PGC_S_SESSION | PGC_S_OVERRIDE | PGC_S_INTERACTIVE if DEFINING.get() => None,
        PGC_S_SESSION | PGC_S_OVERRIDE | PGC_S_INTERACTIVE => {
            // SAFETY: pg_trigger_depth takes no argument and only reads the backend's depth.
            let depth = unsafe {
                pgrx::direct_function_call::<i32>(pg_sys::pg_trigger_depth, &[]).unwrap_or(0)
            };
            (depth > 0).then_some(
                c"attribution cannot be set inside a trigger: only the transaction that writes names its actor (audit.set_actor before the statement)",
            )
        }
        _ => Some(
            c"attribution is set per transaction (SET LOCAL, or audit.set_actor), never as a default of the database, a role, the configuration or the connection",
        ),
    };
    match refusal {
        None => true,
        Some(message) => {
            // SAFETY: the documented way for a check hook to give its message (GUC_check_errmsg):
            // a string in the current memory context, read by guc.c right after the hook.
            unsafe { pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(message.as_ptr()) };
            false
        }
    }
}

thread_local! {
    // One backend is one thread. guc.c keeps each setting's record at a fixed address for the
    // life of the backend: looked up once.
    static RECORDS: Cell<[*mut pg_sys::config_generic; 4]> =
        const { Cell::new([std::ptr::null_mut(); 4]) };
}

/// Whether the setting's current value was made with SET LOCAL (or set_config(..., true)) in
/// this transaction: the top of its stack of saved values says so. No stack means a session
/// value; a plain SET or a function's own SET clause are other states.
fn set_locally(index: usize, name: &CStr) -> bool {
    let mut records = RECORDS.get();
    if records[index].is_null() {
        // SAFETY: settings are defined at load time, before any capture.
        records[index] = unsafe { compat::find_setting(name) };
        RECORDS.set(records);
    }
    let record = records[index];
    if record.is_null() {
        return false;
    }
    // SAFETY: the record and its stack belong to guc.c and are valid while this backend runs
    // a statement; the stack's top describes the current value.
    unsafe {
        let stack = (*record).stack;
        !stack.is_null()
            && matches!(
                (*stack).state,
                pg_sys::GucStackState::GUC_LOCAL | pg_sys::GucStackState::GUC_SET_LOCAL
            )
    }
}

/// The current value of a string setting, None when unset or empty. Borrowed straight from the
/// GUC's storage: valid until the setting next changes, which cannot happen while capture runs.
fn read(setting: &'static GucSetting<Option<CString>>) -> Option<&'static CStr> {
    // SAFETY: the pointer is either NULL or a NUL-terminated string owned by guc.c.
    let raw = unsafe { *setting.as_ptr() };
    if raw.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated, see above.
    let value = unsafe { CStr::from_ptr(raw) };
    (!value.is_empty()).then_some(value)
}

/// A setting's value as attribution: only when set with SET LOCAL in this transaction.
fn transaction_value(
    setting: &'static GucSetting<Option<CString>>,
    index: usize,
    name: &CStr,
) -> Option<&'static CStr> {
    read(setting).filter(|_| set_locally(index, name))
}

pub fn actor() -> Option<&'static CStr> {
    transaction_value(&ACTOR, 0, c"audit.actor")
}

pub fn source() -> Option<&'static CStr> {
    transaction_value(&SOURCE, 1, c"audit.source")
}

pub fn context() -> Option<&'static CStr> {
    transaction_value(&CONTEXT, 2, c"audit.context")
}

pub fn tenant() -> Option<&'static CStr> {
    transaction_value(&TENANT, 3, c"audit.tenant")
}

pub fn notify() -> bool {
    NOTIFY.get()
}

pub fn max_event_bytes() -> usize {
    usize::try_from(MAX_EVENT_BYTES.get()).unwrap_or(usize::MAX)
}

pub fn allow_drop_extension() -> bool {
    ALLOW_DROP_EXTENSION.get()
}
