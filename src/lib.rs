//! myspool: bulk-copy MySQL/MariaDB tables through local export files.
//!
//! The library does the work; the `myspool` binary is a thin command line
//! over it. The phases meet only through the dump directory ([`dump`]):
//!
//! * [`export`](mod@export) streams tables into keyset chunks of compressed CSV,
//! * [`process`](mod@process) transforms chunks offline, with a command or a
//!   [`process::RowTransform`],
//! * [`load`](mod@load) loads them with `LOAD DATA LOCAL INFILE`, exactly once per
//!   chunk thanks to the [`journal`].
//!
//! [`copy`] runs the three at once; [`status`] and [`verify`] report on a dump
//! (status from its files alone, verify against a target server).
//!
//! Below the phases, one module per concept: [`conn`] (URLs, passwords, the
//! session settings every role shares), [`schema`] (tables, columns, keys, how
//! a column is read), [`sql`] (quoting, literals, a chunk's key range),
//! [`dialect`] (the CSV convention), [`progress`], [`hooks`] (test hooks).
//! Dependencies point downward only: a phase never imports another phase,
//! and `status` and `verify` import none. The README's "Architecture"
//! section says what each folder owns.

pub mod conn;
pub mod copy;
pub mod dialect;
pub mod dump;
pub mod errors;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod galera;
pub mod hooks;
pub mod journal;
pub mod load;
pub mod pause;
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
