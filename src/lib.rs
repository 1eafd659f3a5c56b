//! myspool: bulk-copy MySQL/MariaDB tables through local export files.
//!
//! The library does the work; the `myspool` binary is a thin command line
//! over it. The phases meet only through the dump directory ([`dump`]):
//!
//! * [`export`] streams tables into keyset chunks of compressed CSV,
//! * [`process`] transforms chunks offline, with a command or a [`process::RowTransform`],
//! * [`load`] loads them with `LOAD DATA LOCAL INFILE`, exactly once per
//!   chunk thanks to the [`journal`].
//!
//! Modules, one per concept: [`conn`] (URLs, passwords, sessions),
//! [`schema`] (tables, columns, keys), [`dialect`] (the CSV convention),
//! [`dump`] (manifest, table description, chunks), [`export`], [`load`]
//! (with `check`), [`journal`], [`verify`], [`progress`],
//! [`sql`] (identifier quoting and literals).

pub mod conn;
pub mod copy;
pub mod dialect;
pub mod dump;
pub mod export;
pub mod hooks;
pub mod journal;
pub mod load;
pub mod process;
pub mod progress;
pub mod schema;
pub mod sql;
pub mod status;
pub mod verify;

pub use conn::ConnSpec;
pub use export::{export, ExportOptions, ExportSummary};
pub use load::{load, LoadOptions, LoadSummary};
pub use process::{process, ProcessOptions, ProcessSummary};
