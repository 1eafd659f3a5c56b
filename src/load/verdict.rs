//! Judging what the server says about a chunk's `LOAD DATA`.
//!
//! `LOAD DATA LOCAL` implies `IGNORE`: duplicate keys and bad values become
//! warnings and the rows are skipped or altered silently. So the statement's
//! `Records/Deleted/Skipped/Warnings`, its affected rows and its warnings are
//! held against the chunk's row count before the chunk may commit.

use std::fmt;

use super::OnDuplicate;

/// `Records: 3  Deleted: 0  Skipped: 1  Warnings: 1`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LoadInfo {
    pub records: u64,
    pub deleted: u64,
    pub skipped: u64,
    pub warnings: u64,
}

impl LoadInfo {
    pub(super) fn parse(info: &str) -> LoadInfo {
        let mut out = LoadInfo::default();
        let mut words = info.split_whitespace();
        while let Some(word) = words.next() {
            let value = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            match word {
                "Records:" => out.records = value,
                "Deleted:" => out.deleted = value,
                "Skipped:" => out.skipped = value,
                "Warnings:" => out.warnings = value,
                _ => {}
            }
        }
        out
    }
}

/// One line of `SHOW WARNINGS`.
pub(super) struct Warning {
    pub code: u32,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// What the server said about one chunk's `LOAD DATA`.
pub(super) struct LoadResult {
    pub affected: u64,
    pub info: LoadInfo,
    /// As counted by the server; `warnings` shows the first few.
    pub warning_count: u64,
    pub warnings: Vec<Warning>,
}

/// Whether a chunk of `rows` rows may commit: the rows that met a duplicate
/// key (skipped or replaced, as `on_duplicate` allows), or why not.
pub(super) fn judge(
    result: &LoadResult,
    rows: u64,
    on_duplicate: OnDuplicate,
) -> Result<u64, String> {
    let LoadResult {
        affected,
        info,
        warning_count,
        ref warnings,
    } = *result;
    let rejected = || Err(describe_rejects(warnings, info, rows, affected));
    match on_duplicate {
        OnDuplicate::Error => {
            if info.records != rows || info.skipped != 0 || warning_count != 0 || affected != rows {
                return rejected();
            }
            Ok(0)
        }
        OnDuplicate::Ignore => {
            let other = warnings.iter().filter(|w| w.code != DUPLICATE_KEY).count();
            if other != 0 || info.records != rows {
                return rejected();
            }
            Ok(info.skipped)
        }
        OnDuplicate::Replace => {
            if warning_count != 0 || info.records != rows {
                return rejected();
            }
            Ok(info.deleted)
        }
    }
}

/// ER_DUP_ENTRY.
const DUPLICATE_KEY: u32 = 1062;

/// Why the server's answer does not fit the chunk, with what it warned of.
fn describe_rejects(warnings: &[Warning], info: LoadInfo, rows: u64, affected: u64) -> String {
    let dup = warnings.iter().filter(|w| w.code == DUPLICATE_KEY).count();
    let head = if dup > 0 && dup == warnings.len() {
        format!("duplicate key ({} of {rows} rows skipped)", info.skipped)
    } else {
        format!(
            "the server took {} of {rows} rows ({} skipped, {} affected, {} warnings)",
            info.records, info.skipped, affected, info.warnings
        )
    };
    if warnings.is_empty() {
        head
    } else {
        let shown: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        format!("{head}: {}", shown.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_info_parses() {
        let i = LoadInfo::parse("Records: 3  Deleted: 1  Skipped: 2  Warnings: 4");
        assert_eq!(
            i,
            LoadInfo {
                records: 3,
                deleted: 1,
                skipped: 2,
                warnings: 4
            }
        );
    }

    fn result(info: &str, affected: u64, warnings: &[(u32, &str)]) -> LoadResult {
        let info = LoadInfo::parse(info);
        LoadResult {
            affected,
            info,
            warning_count: info.warnings,
            warnings: warnings
                .iter()
                .map(|&(code, message)| Warning {
                    code,
                    message: message.into(),
                })
                .collect(),
        }
    }

    const DUP: (u32, &str) = (1062, "Duplicate entry '1' for key 'PRIMARY'");

    #[test]
    fn every_row_in_and_no_warning_commits() {
        let clean = result("Records: 3  Deleted: 0  Skipped: 0  Warnings: 0", 3, &[]);
        for policy in [
            OnDuplicate::Error,
            OnDuplicate::Ignore,
            OnDuplicate::Replace,
        ] {
            assert_eq!(judge(&clean, 3, policy), Ok(0));
        }
        // A row the file has and the server did not count.
        let short = result("Records: 2  Deleted: 0  Skipped: 0  Warnings: 0", 2, &[]);
        assert_eq!(
            judge(&short, 3, OnDuplicate::Ignore),
            Err("the server took 2 of 3 rows (0 skipped, 2 affected, 0 warnings)".into())
        );
    }

    #[test]
    fn duplicates_fail_the_chunk_unless_allowed() {
        let skipped = result("Records: 3  Deleted: 0  Skipped: 1  Warnings: 1", 2, &[DUP]);
        assert_eq!(
            judge(&skipped, 3, OnDuplicate::Error),
            Err(
                "duplicate key (1 of 3 rows skipped): Duplicate entry '1' for key 'PRIMARY' (1062)"
                    .into()
            )
        );
        assert_eq!(judge(&skipped, 3, OnDuplicate::Ignore), Ok(1));
        // REPLACE counts a replaced row as deleted, without a warning.
        let replaced = result("Records: 3  Deleted: 1  Skipped: 0  Warnings: 0", 4, &[]);
        assert_eq!(judge(&replaced, 3, OnDuplicate::Replace), Ok(1));
        assert!(judge(&replaced, 3, OnDuplicate::Error).is_err());
    }

    #[test]
    fn other_warnings_fail_the_chunk_whatever_the_policy() {
        let truncated = (1265, "Data truncated for column 'a' at row 2");
        let bad = result(
            "Records: 3  Deleted: 0  Skipped: 1  Warnings: 2",
            2,
            &[DUP, truncated],
        );
        for policy in [
            OnDuplicate::Error,
            OnDuplicate::Ignore,
            OnDuplicate::Replace,
        ] {
            assert_eq!(
                judge(&bad, 3, policy),
                Err(
                    "the server took 3 of 3 rows (1 skipped, 2 affected, 2 warnings): \
                     Duplicate entry '1' for key 'PRIMARY' (1062); \
                     Data truncated for column 'a' at row 2 (1265)"
                        .into()
                )
            );
        }
    }
}
