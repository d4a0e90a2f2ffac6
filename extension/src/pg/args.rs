//! Reading SQL arguments of the C-callable functions, whose SQL signatures (regclass, name,
//! name[]) are declared in `sql/` rather than generated.

use pgrx::pg_sys;
use pgrx::FromDatum;

use crate::error::{AuditError, Result};

/// # Safety
/// `fcinfo` must be a valid call with at least `n + 1` arguments.
pub unsafe fn datum(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<pg_sys::Datum> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let arg = (*fcinfo).args.as_slice((*fcinfo).nargs as usize).get(n)?;
        (!arg.isnull).then_some(arg.value)
    }
}

/// # Safety
/// As [`datum`], and argument `n` must be of type text.
pub unsafe fn text(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<String> {
    // SAFETY: guaranteed by the caller.
    unsafe { datum(fcinfo, n).and_then(|d| String::from_datum(d, false)) }
}

/// # Safety
/// As [`datum`], and argument `n` must be of type bytea.
pub unsafe fn bytea(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<Vec<u8>> {
    // SAFETY: guaranteed by the caller.
    unsafe { datum(fcinfo, n).and_then(|d| Vec::<u8>::from_datum(d, false)) }
}

/// # Safety
/// As [`datum`], and argument `n` must be of type name.
pub unsafe fn name(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<String> {
    // SAFETY: a name datum points to a NUL-terminated NameData.
    unsafe {
        datum(fcinfo, n).map(|d| {
            std::ffi::CStr::from_ptr(d.cast_mut_ptr::<core::ffi::c_char>())
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// A name[] argument as strings; NULL means empty, a NULL element is refused.
///
/// # Safety
/// As [`datum`], and argument `n` must be of type name[].
pub unsafe fn name_array(
    fcinfo: pg_sys::FunctionCallInfo,
    n: usize,
    parameter: &'static str,
) -> Result<Vec<String>> {
    // SAFETY: guaranteed by the caller; name is a fixed 64-byte, char-aligned type.
    unsafe {
        let Some(d) = datum(fcinfo, n) else {
            return Ok(Vec::new());
        };
        let array = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut count: core::ffi::c_int = 0;
        pg_sys::deconstruct_array(
            array,
            pg_sys::NAMEOID,
            pg_sys::NAMEDATALEN as core::ffi::c_int,
            false,
            pg_sys::TYPALIGN_CHAR as core::ffi::c_char,
            &mut elems,
            &mut nulls,
            &mut count,
        );
        let mut out = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            if *nulls.add(i) {
                return Err(AuditError::NullElement { parameter });
            }
            let p = (*elems.add(i)).cast_mut_ptr::<core::ffi::c_char>();
            out.push(std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned());
        }
        Ok(out)
    }
}
