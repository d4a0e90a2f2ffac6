//! Small helpers over PostgreSQL's C API that the rest of the extension shares: functions
//! pgrx's bindings leave out, reading SQL arguments, making datums, a per-row memory context.
//! Nothing here knows about the audit log.

pub mod args;
pub mod compat;
pub mod datums;
pub mod ffi;
pub mod memory;
