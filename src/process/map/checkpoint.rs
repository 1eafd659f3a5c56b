//! The durable state of a chunk in progress: its answered output rows are
//! appended to `NNNNNN.partial`; a checkpoint fsyncs them and appends a line
//! to `NNNNNN.checkpoint` (rows answered, bytes of the partial file that
//! hold their output, counts). A rerun cuts the partial file back to the
//! last checkpoint and goes on from its first unanswered row; when the chunk
//! is complete the partial file becomes the output chunk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::dialect;
use crate::dump::{self, ChunkCheckpoint, ChunkStats, ChunkWriter};

/// The last checkpoint of chunk `number` in `out_dir` (none: not started).
pub fn last_checkpoint(out_dir: &Path, number: u32) -> Result<Option<ChunkCheckpoint>> {
    let log: Vec<ChunkCheckpoint> =
        dump::read_json_lines(&out_dir.join(dump::checkpoint_file_name(number)))?;
    Ok(log.into_iter().next_back())
}

/// A chunk's partial output, open for appending.
pub struct Partial {
    partial_path: PathBuf,
    log_path: PathBuf,
    file: BufWriter<File>,
    /// What the partial file holds now (written, maybe not yet durable).
    pub state: ChunkCheckpoint,
    /// The rows answered at the last checkpoint.
    durable_rows: u64,
    /// The last checkpoint of this run (none yet: the first rows answered
    /// are checkpointed at once).
    last: Option<Instant>,
}

impl Partial {
    /// Opens chunk `number`'s partial output, cut back to its last
    /// checkpoint (a new one if it has none).
    pub fn open(out_dir: &Path, number: u32) -> Result<Partial> {
        let partial_path = out_dir.join(dump::partial_file_name(number));
        let log_path = out_dir.join(dump::checkpoint_file_name(number));
        let state = last_checkpoint(out_dir, number)?.unwrap_or(ChunkCheckpoint {
            chunk: number,
            ..ChunkCheckpoint::default()
        });
        let ctx = || format!("opening {}", partial_path.display());
        let mut file = OpenOptions::new()
            .mode(0o600)
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial_path)
            .with_context(ctx)?;
        // Rows written after the last checkpoint were answered again by
        // nobody's account: they go, and are answered again.
        file.set_len(state.partial_bytes).with_context(ctx)?;
        file.seek(SeekFrom::End(0)).with_context(ctx)?;
        Ok(Partial {
            partial_path,
            log_path,
            file: BufWriter::with_capacity(64 * 1024, file),
            durable_rows: state.rows_answered,
            state,
            last: None,
        })
    }

    /// Appends one encoded output row.
    pub fn write_row(&mut self, row: &[u8]) -> Result<()> {
        self.file
            .write_all(row)
            .with_context(|| format!("writing {}", self.partial_path.display()))?;
        self.state.partial_bytes += row.len() as u64;
        self.state.rows_out += 1;
        Ok(())
    }

    /// Rows answered since the last checkpoint, and `interval` passed.
    pub fn due(&self, interval: Duration) -> bool {
        self.state.rows_answered > self.durable_rows
            && self.last.is_none_or(|t| t.elapsed() >= interval)
    }

    /// Makes what is written durable: the partial file is fsynced, then
    /// the checkpoint line appended (and fsynced). The caller fsyncs the
    /// table's rejects before.
    pub fn checkpoint(&mut self) -> Result<()> {
        let ctx = || format!("writing {}", self.partial_path.display());
        self.file.flush().with_context(ctx)?;
        self.file.get_ref().sync_data().with_context(ctx)?;
        dump::append_json_line(&self.log_path, &self.state)?;
        self.durable_rows = self.state.rows_answered;
        self.last = Some(Instant::now());
        Ok(())
    }

    /// Turns the partial file into the output chunk `file` in `dir` (the
    /// header, then its rows), compressed as asked.
    pub fn finish(
        mut self,
        dir: &Path,
        file: &str,
        compress: dump::Compress,
        level: u32,
    ) -> Result<ChunkStats> {
        self.checkpoint()?;
        let mut writer = ChunkWriter::create(dir, file, compress, level)?;
        let mut head = Vec::new();
        dialect::write_header(&mut head, self.state.columns.as_deref().unwrap_or_default());
        let ctx = || format!("writing {}", dir.join(file).display());
        writer.write_all(&head).with_context(ctx)?;
        let mut partial = File::open(&self.partial_path)
            .with_context(|| format!("reading {}", self.partial_path.display()))?
            .take(self.state.partial_bytes);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = partial
                .read(&mut buf)
                .with_context(|| format!("reading {}", self.partial_path.display()))?;
            if n == 0 {
                break;
            }
            writer.write_all(&buf[..n]).with_context(ctx)?;
        }
        writer.finish(self.state.rows_out)
    }

    /// Removes the files of a chunk whose output is recorded.
    pub fn remove(out_dir: &Path, number: u32) {
        for name in [
            dump::partial_file_name(number),
            dump::checkpoint_file_name(number),
        ] {
            match fs::remove_file(out_dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => crate::progress::notice(&format!(
                    "myspool process: could not remove a finished chunk's file: {e}"
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::Compress;

    #[test]
    fn a_rerun_cuts_the_partial_file_back_to_the_last_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Partial::open(dir.path(), 3).unwrap();
        assert_eq!(p.state.rows_answered, 0);
        p.state.columns = Some(vec!["id".into()]);
        p.write_row(b"\"1\"\n").unwrap();
        p.state.rows_answered = 2;
        p.state.dropped = 1;
        assert!(p.due(Duration::from_secs(60)), "the first rows at once");
        p.checkpoint().unwrap();
        assert!(!p.due(Duration::ZERO));
        p.state.rows_answered = 3;
        assert!(!p.due(Duration::from_secs(60)));
        p.state.rows_answered = 2;
        // Answered after the checkpoint, then killed.
        p.write_row(b"\"3\"\n").unwrap();
        p.state.rows_answered = 3;
        p.file.flush().unwrap();
        drop(p);

        let p = Partial::open(dir.path(), 3).unwrap();
        assert_eq!(p.state.rows_answered, 2);
        assert_eq!(p.state.rows_out, 1);
        assert_eq!(p.state.dropped, 1);
        assert_eq!(p.state.columns, Some(vec!["id".to_string()]));
        assert_eq!(
            fs::read(dir.path().join("000003.partial")).unwrap(),
            b"\"1\"\n"
        );
        assert_eq!(
            last_checkpoint(dir.path(), 3).unwrap(),
            Some(p.state.clone())
        );
        assert_eq!(last_checkpoint(dir.path(), 4).unwrap(), None);
    }

    #[test]
    fn a_finished_partial_becomes_the_chunk_with_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Partial::open(dir.path(), 1).unwrap();
        p.state.columns = Some(vec!["id".into(), "n".into()]);
        p.write_row(b"\"1\",\n").unwrap();
        p.write_row(b"\"2\",\"x\"\n").unwrap();
        p.state.rows_answered = 2;
        let stats = p
            .finish(dir.path(), "000001.csv", Compress::None, 0)
            .unwrap();
        assert_eq!(stats.rows, 2);
        assert_eq!(
            fs::read_to_string(dir.path().join("000001.csv")).unwrap(),
            "\"id\",\"n\"\n\"1\",\n\"2\",\"x\"\n"
        );
        Partial::remove(dir.path(), 1);
        assert!(!dir.path().join("000001.partial").exists());
        assert!(!dir.path().join("000001.checkpoint").exists());
    }
}
