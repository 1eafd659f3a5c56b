//! The integration tests: one binary (as in ripgrep and xsv), so that it is
//! built and linked once and its servers start once for every module.
//!
//! A module per command (`export`, `process`, `load`, `check`, `verify`,
//! `copy`, `status`, `cli`; `rerun`: a load run again over a changed
//! target; `swap`: `load --swap`; `throttle`: replica lag and `--max-rate`), then the suites that cut across them: `types`
//! (every column type through export → process → load), `faults` (network
//! trouble), `galera` (a 3-node cluster as the target), `security`, `tls`, `soak` (`copy`
//! killed at random moments, many times), `tools` (the data tools that read dumps: Python's
//! csv, Polars, DuckDB, pandas) and `harness` (the test servers themselves). Everything
//! shared lives in `common`.
//!
//! All tests run as threads of one process: nothing here may change the
//! process's environment or current directory, and tests that change a
//! shared server's global state use a private server (see `common::server`).

mod common;

mod check;
mod cli;
mod compat;
mod coordinates;
mod copy;
mod export;
mod faults;
mod galera;
mod harness;
mod load;
mod map;
mod objects;
mod process;
mod rerun;
mod runners;
mod security;
mod soak;
mod status;
mod swap;
mod throttle;
mod tls;
mod tools;
mod types;
mod verify;
