//! Running the extension's own bookkeeping with the rights of the extension's owner.
//!
//! This is what SECURITY DEFINER does for SQL functions, done in code so that the caller can
//! be checked first (a SECURITY DEFINER function cannot see who called it): the user switches
//! to the owner of `audit.events` and `search_path` is pinned to `pg_catalog, pg_temp`, so no
//! object the caller created can be resolved by the queries run inside.

use pgrx::pg_sys;

use crate::error::Result;
use crate::events_catalog;
use crate::pg::compat;

pub fn as_extension_owner<R>(f: impl FnOnce() -> R) -> Result<R> {
    let owner = events_catalog::events_table()?.owner;
    // SAFETY: the same save/switch/restore sequence as fmgr_security_definer. If `f` raises an
    // ERROR, (sub)transaction abort restores the user id and unwinds the GUC nest level.
    unsafe {
        let nest_level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        let mut saved_user = pg_sys::InvalidOid;
        let mut saved_context = 0;
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
        let result = f();
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
        pg_sys::AtEOXact_GUC(true, nest_level);
        Ok(result)
    }
}

/// Whether the role running the current statement (after SET ROLE) owns the table, or is a
/// superuser.
pub fn current_user_is_owner_of(relid: pg_sys::Oid) -> bool {
    // SAFETY: ownership and superuser checks read the catalogs; both take valid oids.
    unsafe { pg_sys::superuser() || compat::relation_owned_by(relid, pg_sys::GetUserId()) }
}
