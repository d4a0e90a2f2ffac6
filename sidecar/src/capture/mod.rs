//! WAL capture (docs/wal-capture.md): events written from the write-ahead log, for databases
//! where the extension cannot be installed. Under construction: [`pgoutput`] decodes the
//! server's messages, [`transactions`] assembles them into committed transactions.

pub mod pgoutput;
pub mod transactions;
