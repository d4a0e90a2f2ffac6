//! WAL capture (docs/wal-capture.md): events written from the write-ahead log, for databases
//! where the extension cannot be installed. Under construction: the decoder of the server's
//! `pgoutput` messages comes first.

pub mod pgoutput;
