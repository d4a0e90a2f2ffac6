//! Small constructors for datums in the current memory context.

use pgrx::pg_sys;

pub fn text(s: &[u8]) -> pg_sys::Datum {
    // SAFETY: cstring_to_text_with_len copies `len` bytes into a new palloc'd text.
    unsafe {
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
            s.as_ptr().cast(),
            s.len() as core::ffi::c_int,
        ))
    }
}

/// A text[] of the given strings.
pub fn text_array<'a>(items: impl ExactSizeIterator<Item = &'a [u8]>) -> pg_sys::Datum {
    let mut elems: Vec<pg_sys::Datum> = items.map(text).collect();
    // SAFETY: elems holds valid text datums; construct_array_builtin copies them.
    unsafe {
        pg_sys::Datum::from(pg_sys::construct_array_builtin(
            elems.as_mut_ptr(),
            elems.len() as core::ffi::c_int,
            pg_sys::TEXTOID,
        ))
    }
}
