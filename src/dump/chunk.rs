//! Chunk files: [`ChunkWriter`] writes one (as gzip members or plain CSV,
//! hashing the bytes as stored), [`ChunkReader`] reads one back (and can
//! check that hash).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use super::files::{hex_lower, sync_dir};
use super::format::{ChunkStats, Compress};
use super::TABLE_FILE;
use crate::dialect;

/// Writes one chunk file: to a temporary name in its directory, compressed
/// or not, counting the CSV bytes and hashing the stored bytes; `finish`
/// fsyncs it and renames it into place. Dropped unfinished, it leaves
/// nothing behind.
pub struct ChunkWriter {
    dir: PathBuf,
    file: String,
    tmp: tempfile::TempPath,
    sink: Sink,
    csv_bytes: u64,
}

/// Counts and hashes what reaches the file.
struct HashingFile {
    file: std::io::BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

enum Sink {
    Gzip(Box<GzipMembers>),
    Plain(HashingFile),
}

/// Uncompressed bytes per gzip member. Each member is compressed in one call
/// (libdeflate has no streaming interface); at 1 MiB the members' headers and
/// restarted windows cost under 0.1% of the size.
const MEMBER_BYTES: usize = 1024 * 1024;

/// A gzip file written as a series of members of `MEMBER_BYTES` each (RFC 1952
/// allows any number; gzip, zcat, Python's gzip module, Java's
/// GZIPInputStream and flate2's MultiGzDecoder read them as one stream).
struct GzipMembers {
    file: HashingFile,
    compressor: libdeflater::Compressor,
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl GzipMembers {
    fn new(file: HashingFile, level: u32) -> Result<GzipMembers> {
        let level = libdeflater::CompressionLvl::new(level as i32)
            .map_err(|_| anyhow!("gzip level {level} is out of range (0 to {MAX_LEVEL})"))?;
        Ok(GzipMembers {
            file,
            compressor: libdeflater::Compressor::new(level),
            pending: Vec::new(),
            out: Vec::new(),
        })
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            if self.pending.is_empty() && buf.len() >= MEMBER_BYTES {
                // A whole member's worth: compress it in place, no copy.
                write_member(
                    &mut self.compressor,
                    &mut self.out,
                    &mut self.file,
                    &buf[..MEMBER_BYTES],
                )?;
                buf = &buf[MEMBER_BYTES..];
                continue;
            }
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(MEMBER_BYTES);
            }
            let take = (MEMBER_BYTES - self.pending.len()).min(buf.len());
            self.pending.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.pending.len() == MEMBER_BYTES {
                self.write_pending()?;
            }
        }
        Ok(())
    }

    fn write_pending(&mut self) -> io::Result<()> {
        write_member(
            &mut self.compressor,
            &mut self.out,
            &mut self.file,
            &self.pending,
        )?;
        self.pending.clear();
        Ok(())
    }

    /// Compresses what is pending; an empty file still gets one (empty)
    /// member, so that it is valid gzip.
    fn finish(mut self) -> io::Result<HashingFile> {
        if !self.pending.is_empty() || self.file.bytes == 0 {
            self.write_pending()?;
        }
        Ok(self.file)
    }
}

/// Compresses `data` into one gzip member (using `out` as the buffer) and
/// writes it to `file`.
fn write_member(
    compressor: &mut libdeflater::Compressor,
    out: &mut Vec<u8>,
    file: &mut HashingFile,
    data: &[u8],
) -> io::Result<()> {
    let bound = compressor.gzip_compress_bound(data.len());
    if out.len() < bound {
        out.resize(bound, 0);
    }
    let n = compressor
        .gzip_compress(data, out)
        .map_err(|e| io::Error::other(format!("gzip compression failed: {e:?}")))?;
    file.write_all(&out[..n])
}

/// The highest compression level (libdeflate's; 0 stores without compressing).
pub const MAX_LEVEL: u32 = 12;

impl ChunkWriter {
    pub fn create(dir: &Path, file: &str, compress: Compress, level: u32) -> Result<ChunkWriter> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{}{file}-", super::files::TMP_PREFIX))
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let (f, tmp) = tmp.into_parts();
        let hashing = HashingFile {
            file: std::io::BufWriter::with_capacity(256 * 1024, f),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let sink = match compress {
            Compress::Gzip => Sink::Gzip(Box::new(GzipMembers::new(hashing, level)?)),
            Compress::None => Sink::Plain(hashing),
        };
        Ok(ChunkWriter {
            dir: dir.to_path_buf(),
            file: file.to_string(),
            tmp,
            sink,
            csv_bytes: 0,
        })
    }

    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.csv_bytes += buf.len() as u64;
        match &mut self.sink {
            Sink::Gzip(g) => g.write_all(buf),
            Sink::Plain(p) => p.write_all(buf),
        }
    }

    /// Completes the file and renames it into place, returning what it holds.
    pub fn finish(self, rows: u64) -> Result<ChunkStats> {
        let dest = self.dir.join(&self.file);
        let ctx = || format!("writing {}", dest.display());
        let mut hashing = match self.sink {
            Sink::Gzip(g) => g.finish().with_context(ctx)?,
            Sink::Plain(p) => p,
        };
        hashing.flush().with_context(ctx)?;
        let HashingFile {
            file,
            hasher,
            bytes,
        } = hashing;
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(ctx)?;
        file.sync_all().with_context(ctx)?;
        drop(file);
        self.tmp
            .persist(&dest)
            .map_err(|e| e.error)
            .with_context(|| format!("renaming into {}", dest.display()))?;
        sync_dir(&self.dir)?;
        Ok(ChunkStats {
            rows,
            bytes,
            csv_bytes: self.csv_bytes,
            sha256: hex_lower(&hasher.finalize()),
        })
    }
}

/// Reads one chunk file: the one place that opens a chunk for reading, as
/// [`ChunkWriter`] is the one that writes one. It decompresses the file,
/// reads its header line, splits the rest into records of the dump's dialect
/// (errors name the file and line), and can hash the file as stored so that
/// [`ChunkReader::check_sha256`] proves it is the file the writer recorded.
pub struct ChunkReader {
    label: String,
    records: dialect::Reader<Box<dyn BufRead + Send>>,
    /// `None` for a file with no header line at all (an empty file).
    header: Option<Vec<String>>,
    /// Where the hash of the stored bytes lands once the file is read.
    digest: Option<Arc<Mutex<Option<String>>>>,
}

/// Decompressed bytes are read in pieces of this size.
const READ_BUFFER: usize = 256 * 1024;

impl ChunkReader {
    /// Opens a chunk and reads its header line.
    pub fn open(path: &Path, compress: Compress) -> Result<ChunkReader> {
        ChunkReader::open_with(path, compress, false)
    }

    /// Opens a chunk, hashing the file as it is read: call
    /// [`ChunkReader::check_sha256`] once every record is read.
    pub fn open_hashed(path: &Path, compress: Compress) -> Result<ChunkReader> {
        ChunkReader::open_with(path, compress, true)
    }

    /// The decompressed CSV text of a chunk, header line included, for a
    /// reader that passes it on as it is (`process --exec` with CSV).
    pub fn open_text(path: &Path, compress: Compress) -> Result<Box<dyn BufRead + Send>> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(decompressed(file, compress))
    }

    fn open_with(path: &Path, compress: Compress, hashed: bool) -> Result<ChunkReader> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let (input, digest) = if hashed {
            let digest = Arc::new(Mutex::new(None));
            let hashing = HashingReader {
                inner: file,
                hasher: Sha256::new(),
                digest: digest.clone(),
            };
            (decompressed(hashing, compress), Some(digest))
        } else {
            (decompressed(file, compress), None)
        };
        let mut reader = ChunkReader {
            label: path.display().to_string(),
            records: dialect::Reader::new(input),
            header: None,
            digest,
        };
        let mut record = Vec::new();
        if reader.read_record(&mut record)? {
            reader.header = Some(
                record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f.as_deref().unwrap_or_default()).into_owned())
                    .collect(),
            );
        }
        Ok(reader)
    }

    /// The file's path, as errors name it.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The column names of the header line; `None` for an empty file.
    pub fn header(&self) -> Option<&[String]> {
        self.header.as_deref()
    }

    /// The header line, which a chunk must have.
    pub fn require_header(&self) -> Result<&[String]> {
        self.header()
            .ok_or_else(|| anyhow!("{} is empty (no header)", self.label))
    }

    /// Fails unless the header names exactly `columns`, in order.
    pub fn expect_header(&self, columns: &[String]) -> Result<()> {
        let header = self.require_header()?;
        if header != columns {
            bail!(
                "{}: the header {header:?} is not the columns of {TABLE_FILE} {columns:?}",
                self.label
            );
        }
        Ok(())
    }

    /// The next row into `record`; `Ok(false)` at the end of the file.
    pub fn read_record(&mut self, record: &mut Vec<dialect::Field>) -> Result<bool> {
        let label = &self.label;
        self.records
            .read_record(record)
            .with_context(|| label.clone())
    }

    /// The 1-based line of the file on which the last row read started.
    pub fn line(&self) -> u64 {
        self.records.line()
    }

    /// Checks, after the last row, that the file is the one recorded: its
    /// SHA-256 as stored must be `expected` (only for [`ChunkReader::open_hashed`]).
    pub fn check_sha256(self, expected: &str) -> Result<()> {
        let ChunkReader {
            label,
            records,
            digest,
            ..
        } = self;
        // Dropping the reader drops the HashingReader, which hashes whatever
        // the decoder left unread and leaves the digest behind.
        drop(records);
        let sum = digest
            .and_then(|d| d.lock().ok().and_then(|mut d| d.take()))
            .ok_or_else(|| anyhow!("{label}: checksum not computed"))?;
        if sum != expected {
            bail!("{label}: SHA-256 {sum} differs from {expected} recorded in {TABLE_FILE}: the file changed since the export");
        }
        Ok(())
    }
}

fn decompressed(file: impl Read + Send + 'static, compress: Compress) -> Box<dyn BufRead + Send> {
    match compress {
        Compress::Gzip => Box::new(BufReader::with_capacity(
            READ_BUFFER,
            flate2::read::MultiGzDecoder::new(file),
        )),
        Compress::None => Box::new(BufReader::with_capacity(READ_BUFFER, file)),
    }
}

/// Hashes what is read, and leaves the hex digest in `digest` when dropped
/// (after the decoder has read the whole file).
struct HashingReader {
    inner: File,
    hasher: Sha256,
    digest: Arc<Mutex<Option<String>>>,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl Drop for HashingReader {
    fn drop(&mut self) {
        // Whatever the decoder did not need (bytes after the gzip trailer)
        // still belongs to the file's checksum.
        let mut rest = Vec::new();
        if self.inner.read_to_end(&mut rest).is_ok() {
            self.hasher.update(&rest);
        }
        let digest = std::mem::take(&mut self.hasher).finalize();
        if let Ok(mut slot) = self.digest.lock() {
            *slot = Some(hex_lower(&digest));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn gunzip(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn gzip_chunks_are_members_that_read_back_as_one_stream() {
        let dir = tempfile::tempdir().unwrap();
        // 2.5 members' worth, written in pieces that straddle member borders,
        // then one write bigger than a member.
        let data: Vec<u8> = (0..(MEMBER_BYTES * 5 / 2))
            .map(|i| b"id,name\n1,\"x\"\n"[i % 14])
            .collect();
        let mut w = ChunkWriter::create(dir.path(), "000001.csv.gz", Compress::Gzip, 1).unwrap();
        for piece in data.chunks(300_001) {
            w.write_all(piece).unwrap();
        }
        w.write_all(&data).unwrap();
        let stats = w.finish(7).unwrap();
        let path = dir.path().join("000001.csv.gz");
        let mut expected = data.clone();
        expected.extend_from_slice(&data);
        assert_eq!(gunzip(&path), expected);
        assert_eq!(stats.csv_bytes, expected.len() as u64);
        assert_eq!(stats.bytes, fs::metadata(&path).unwrap().len());
        let stored = fs::read(&path).unwrap();
        assert_eq!(stats.sha256, hex_lower(&Sha256::digest(&stored)));
        // Five members: each starts with the gzip magic bytes.
        let members = stored.windows(3).filter(|w| w == &[0x1f, 0x8b, 8]).count();
        assert!(members >= 5, "{members} gzip headers");
    }

    #[test]
    fn an_empty_gzip_chunk_is_still_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let w = ChunkWriter::create(dir.path(), "e.csv.gz", Compress::Gzip, 0).unwrap();
        w.finish(0).unwrap();
        assert_eq!(gunzip(&dir.path().join("e.csv.gz")), b"");
    }

    #[test]
    fn compression_levels_beyond_the_maximum_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = ChunkWriter::create(dir.path(), "x.csv.gz", Compress::Gzip, MAX_LEVEL + 1)
            .err()
            .unwrap();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    /// Writes `csv` as a chunk file, as the exporter does.
    fn write_chunk(dir: &Path, file: &str, compress: Compress, csv: &[u8]) -> ChunkStats {
        let mut writer = ChunkWriter::create(dir, file, compress, 1).unwrap();
        writer.write_all(csv).unwrap();
        writer.finish(2).unwrap()
    }

    #[test]
    fn a_chunk_reads_back_as_it_was_written_and_its_hash_proves_it() {
        let dir = tempfile::tempdir().unwrap();
        let columns = ["id".to_string(), "note".to_string()];
        for compress in [Compress::Gzip, Compress::None] {
            let file = format!("000001.{}", compress.extension());
            let path = dir.path().join(&file);
            let csv = b"id,note\n\"1\",\"two\nlines\"\n\"2\",\n";
            let written = write_chunk(dir.path(), &file, compress, csv);
            let mut reader = ChunkReader::open_hashed(&path, compress).unwrap();
            assert_eq!(reader.label(), path.display().to_string());
            assert_eq!(reader.header(), Some(&columns[..]));
            reader.expect_header(&columns).unwrap();
            let err = reader.expect_header(&columns[..1]).unwrap_err().to_string();
            assert!(err.contains("is not the columns of table.json"), "{err}");
            let mut record = Vec::new();
            assert!(reader.read_record(&mut record).unwrap());
            assert_eq!(record, [Some(b"1".to_vec()), Some(b"two\nlines".to_vec())]);
            assert_eq!(reader.line(), 2);
            assert!(reader.read_record(&mut record).unwrap());
            assert_eq!(record, [Some(b"2".to_vec()), None]);
            // The first row took two lines.
            assert_eq!(reader.line(), 4);
            assert!(!reader.read_record(&mut record).unwrap());
            reader.check_sha256(&written.sha256).unwrap();

            // The same name, other rows: the recorded hash no longer matches.
            write_chunk(dir.path(), &file, compress, b"id,note\n\"1\",\"too\"\n");
            let mut reader = ChunkReader::open_hashed(&path, compress).unwrap();
            while reader.read_record(&mut record).unwrap() {}
            let err = reader
                .check_sha256(&written.sha256)
                .unwrap_err()
                .to_string();
            let recorded = format!("differs from {} recorded in table.json", written.sha256);
            assert!(err.starts_with(&path.display().to_string()), "{err}");
            assert!(err.contains(&recorded), "{err}");
        }
    }

    #[test]
    fn an_empty_chunk_has_no_header() {
        let dir = tempfile::tempdir().unwrap();
        for compress in [Compress::Gzip, Compress::None] {
            let file = format!("000001.{}", compress.extension());
            let path = dir.path().join(&file);
            write_chunk(dir.path(), &file, compress, b"");
            let reader = ChunkReader::open(&path, compress).unwrap();
            assert_eq!(reader.header(), None);
            let err = reader.require_header().unwrap_err().to_string();
            assert_eq!(err, format!("{} is empty (no header)", path.display()));
        }
    }
}
