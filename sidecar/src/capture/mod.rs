//! WAL capture (docs/wal-capture.md): events written from the write-ahead log, for databases
//! where the extension cannot be installed. [`pgoutput`] decodes the server's messages,
//! [`transactions`] assembles them into committed transactions, [`record`] cuts those into
//! calls of `audit.wal_record`, [`service`] runs the slot-to-log loop, and [`install`] makes
//! the portable install.

pub mod install;
pub mod pgoutput;
pub mod record;
pub mod service;
pub mod transactions;
