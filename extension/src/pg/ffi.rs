//! PostgreSQL functions the extension calls that pgrx's generated bindings leave out, and the
//! glue that exposes our own C-callable SQL functions.

use pgrx::pg_sys;

mod raw {
    use pgrx::pg_sys;

    extern "C-unwind" {
        pub fn nextval_internal(relid: pg_sys::Oid, check_permissions: bool) -> i64;
        pub fn datum_image_eq(
            value1: pg_sys::Datum,
            value2: pg_sys::Datum,
            typ_by_val: bool,
            typ_len: core::ffi::c_int,
        ) -> bool;
        pub fn Async_Notify(channel: *const core::ffi::c_char, payload: *const core::ffi::c_char);
    }
}

/// commands/async.h: queue a notification, delivered when the transaction commits.
/// PostgreSQL collapses identical ones within a transaction.
///
/// # Safety
/// Both strings must be NUL-terminated.
pub unsafe fn async_notify(channel: &std::ffi::CStr, payload: &std::ffi::CStr) {
    // SAFETY: as nextval_internal.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| raw::Async_Notify(channel.as_ptr(), payload.as_ptr()))
    }
}

/// commands/sequence.h: the body of nextval() without its ACL check; capture must draw ids
/// whatever the writing role may do with the sequence.
///
/// # Safety
/// `relid` must be a sequence.
pub unsafe fn nextval_internal(relid: pg_sys::Oid, check_permissions: bool) -> i64 {
    // SAFETY: an ERROR raised inside is turned into a Rust panic at the boundary.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| raw::nextval_internal(relid, check_permissions))
    }
}

/// utils/datum.h: true when two datums have the same binary image (detoasting as needed).
///
/// # Safety
/// Both datums must be non-null values of a type with the given length and by-value flag.
pub unsafe fn datum_image_eq(
    value1: pg_sys::Datum,
    value2: pg_sys::Datum,
    typ_by_val: bool,
    typ_len: core::ffi::c_int,
) -> bool {
    // SAFETY: as nextval_internal.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| {
            raw::datum_image_eq(value1, value2, typ_by_val, typ_len)
        })
    }
}

/// Declares a version-1 C function callable from SQL (the `CREATE FUNCTION ... LANGUAGE c`
/// lives in `sql/`): the info record PostgreSQL looks up, and a guarded entry point so a Rust
/// panic becomes an ERROR instead of unwinding into C.
macro_rules! sql_callable {
    ($symbol:ident, $finfo:ident => $body:path) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1: ::pgrx::pg_sys::Pg_finfo_record =
                ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        #[::pgrx::pg_guard]
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub unsafe extern "C-unwind" fn $symbol(
            fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
        ) -> ::pgrx::pg_sys::Datum {
            // SAFETY: PostgreSQL passes a valid fcinfo for the declared SQL signature.
            unsafe { $body(fcinfo) }
        }
    };
}
pub(crate) use sql_callable;
