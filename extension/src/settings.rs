//! The `audit.*` settings an application sets per transaction to attribute its changes.

use std::ffi::{CStr, CString};

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

static ACTOR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static SOURCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CONTEXT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static NOTIFY: GucSetting<bool> = GucSetting::<bool>::new(true);
static ALLOW_DROP_EXTENSION: GucSetting<bool> = GucSetting::<bool>::new(false);
static SEAL_STALL_AFTER: GucSetting<i32> = GucSetting::<i32>::new(900);
static MAX_EVENT_BYTES: GucSetting<i32> =
    GucSetting::<i32>::new(crate::app_events::DEFAULT_MAX_EVENT_BYTES);

pub fn define() {
    GucRegistry::define_string_guc(
        c"audit.actor",
        c"Application user recorded as the actor of audit events.",
        c"Set with SET LOCAL (or audit.set_actor) inside the transaction; empty means session_user.",
        &ACTOR,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"audit.source",
        c"Where a change comes from: import, api, sync, ...; empty means manual.",
        c"",
        &SOURCE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"audit.context",
        c"A JSON object stored with each audit event (request id, end-user IP, ...).",
        c"",
        &CONTEXT,
        GucContext::Userset,
        GucFlags::default(),
    );
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

pub fn actor() -> Option<&'static CStr> {
    read(&ACTOR)
}

pub fn source() -> Option<&'static CStr> {
    read(&SOURCE)
}

pub fn context() -> Option<&'static CStr> {
    read(&CONTEXT)
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
