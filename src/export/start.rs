//! Opening the dump directory: its lock, and the manifest that says what
//! the dump holds, found from an earlier run or written by this one.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;

use super::resume::check_same_export;
use crate::conn::ConnSpec;
use crate::dump::{self, DumpDir, ExportSettings, Manifest, SourceInfo, TableEntry};
use crate::schema::{self, TablePattern, TableRef};
use crate::sql;

/// Creates the dump directory if needed and takes its lock, so that two
/// exports cannot write the same directory at once.
pub(super) fn lock_dump_dir(path: &Path) -> Result<File> {
    match fs::metadata(path) {
        Ok(m) if !m.is_dir() => bail!("--dir {} exists and is not a directory", path.display()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => dump::create_private_dir(path)?,
        Err(e) => return Err(e).with_context(|| format!("--dir {}", path.display())),
    }
    DumpDir::new(path).lock()
}

/// The manifest of the export this run resumes, if any: a directory without
/// one must be empty, and one with one must hold this same export.
pub(super) fn existing_manifest(
    dir: &DumpDir,
    settings: &ExportSettings,
    source: &ConnSpec,
) -> Result<Option<Manifest>> {
    let existing = dir.read_manifest()?;
    match &existing {
        None if !dir.is_empty()? => bail!(
            "--dir {} is not empty and holds no myspool manifest; use an empty or new directory",
            dir.root().display()
        ),
        None => {}
        Some(m) => check_same_export(m, settings, source)?,
    }
    Ok(existing)
}

/// The first run's manifest: the source, the settings and the tables the
/// patterns name, written with every database's `database.sql`.
pub(super) fn new_manifest(
    control: &mut Conn,
    dir: &DumpDir,
    source: &ConnSpec,
    settings: ExportSettings,
    server_version: String,
    patterns: &[TablePattern],
    objects: Objects,
) -> Result<Manifest> {
    let now: Option<String> =
        control.query_first("SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ')")?;
    let info = SourceInfo {
        endpoint: source.endpoint(),
        user: source.user.clone(),
        server_version,
        server_time_utc: now.unwrap_or_default(),
    };
    let mut m = Manifest::new(info, settings, dump::utc_now());
    let tables = schema::resolve_tables(control, patterns)?;
    // Before anything is written: a rerun with the name fixed starts afresh.
    super::filters::check_filtered_tables(&m.export.table_where, &tables)?;
    m.tables = tables
        .iter()
        .map(|t| TableEntry {
            db: t.db.clone(),
            table: t.table.clone(),
            dir: DumpDir::table_dir_name(&t.db, &t.table),
        })
        .collect();
    write_database_schemas(control, dir, &tables)?;
    // Before the manifest: a run that dies first starts the dump afresh.
    if objects.wanted {
        super::objects::export_objects(control, dir, patterns, objects.triggers)?;
    }
    dir.write_manifest(&m)?;
    Ok(m)
}

/// Which schema objects a new dump gets (`objects.rs`).
pub(super) struct Objects {
    /// Views, triggers, routines and events of the databases exported whole.
    pub wanted: bool,
    /// Also the triggers of the tables named one by one.
    pub triggers: bool,
}

/// `<db>/database.sql`: `SHOW CREATE DATABASE`, so a load can create the
/// database with its character set and collation.
fn write_database_schemas(control: &mut Conn, dir: &DumpDir, tables: &[TableRef]) -> Result<()> {
    let mut dbs: Vec<&str> = tables.iter().map(|t| t.db.as_str()).collect();
    dbs.dedup();
    for db in dbs {
        let row: Option<mysql::Row> = control
            .query_first(format!("SHOW CREATE DATABASE {}", sql::ident(db)))
            .with_context(|| format!("SHOW CREATE DATABASE {db}"))?;
        let create = match &row {
            Some(r) => schema::text(r, 1)?.unwrap_or_default(),
            None => bail!("SHOW CREATE DATABASE {db} returned nothing"),
        };
        let db_dir = dir.path(&dump::safe_file_name(db));
        dump::create_private_dir(&db_dir)?;
        dump::write_atomic(
            &db_dir.join(dump::DATABASE_FILE),
            format!("{create};\n").as_bytes(),
        )?;
    }
    Ok(())
}
