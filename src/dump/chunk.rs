//! Chunk files: [`ChunkWriter`] writes one (as gzip members, zstd or plain CSV,
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
    Zstd(Box<zstd::stream::write::Encoder<'static, HashingFile>>),
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
            .map_err(|_| anyhow!("gzip level {level} is out of range (0 to 12)"))?;
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

/// One zstd frame for the whole chunk, with its content checksum (so a
/// changed byte is an error, as gzip's CRC makes it), streamed: zstd keeps
/// only its window (1 MiB at level 1, 8 MiB at 19) however long the chunk.
fn zstd_encoder(
    file: HashingFile,
    level: u32,
) -> Result<zstd::stream::write::Encoder<'static, HashingFile>> {
    if !Compress::Zstd.levels().contains(&level) {
        bail!("zstd level {level} is out of range (1 to 19)");
    }
    let mut encoder = zstd::stream::write::Encoder::new(file, level as i32)?;
    encoder.include_checksum(true)?;
    Ok(encoder)
}

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
            Compress::Zstd => Sink::Zstd(Box::new(zstd_encoder(hashing, level)?)),
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
            Sink::Zstd(z) => z.write_all(buf),
            Sink::Plain(p) => p.write_all(buf),
        }
    }

    /// Completes the file and renames it into place, returning what it holds.
    pub fn finish(self, rows: u64) -> Result<ChunkStats> {
        let dest = self.dir.join(&self.file);
        let ctx = || format!("writing {}", dest.display());
        let mut hashing = match self.sink {
            Sink::Gzip(g) => g.finish().with_context(ctx)?,
            Sink::Zstd(z) => z.finish().with_context(ctx)?,
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
    /// Opens a chunk and reads its header line. With `csv_bytes` (what
    /// `table.json` records), a file whose text is shorter or longer is an
    /// error when the reader gets there: gzip alone cannot tell a file cut
    /// between two of its members from a whole one.
    pub fn open(path: &Path, compress: Compress, csv_bytes: Option<u64>) -> Result<ChunkReader> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        ChunkReader::from_reader(&path.display().to_string(), file, compress, csv_bytes)
    }

    /// Opens a chunk, hashing the file as it is read: call
    /// [`ChunkReader::check_sha256`] once every record is read.
    pub fn open_hashed(path: &Path, compress: Compress) -> Result<ChunkReader> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let digest = Arc::new(Mutex::new(None));
        let hashing = HashingReader {
            inner: file,
            hasher: Sha256::new(),
            digest: digest.clone(),
        };
        let input = decompressed(hashing, compress, None, None)?;
        ChunkReader::with_input(path.display().to_string(), input, Some(digest))
    }

    /// The decompressed CSV text of a chunk, header line included, for a
    /// reader that passes it on as it is (`process --exec` with CSV); its
    /// length is held to `csv_bytes` as in [`ChunkReader::open`], the error
    /// naming the file.
    pub fn open_text(
        path: &Path,
        compress: Compress,
        csv_bytes: Option<u64>,
    ) -> Result<Box<dyn BufRead + Send>> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let label = path.display().to_string();
        decompressed(file, compress, csv_bytes, Some(label))
    }

    /// A chunk read from any byte stream (`label` names it in errors): what
    /// [`ChunkReader::open`] does once the file is open.
    pub fn from_reader(
        label: &str,
        input: impl Read + Send + 'static,
        compress: Compress,
        csv_bytes: Option<u64>,
    ) -> Result<ChunkReader> {
        let input =
            decompressed(input, compress, csv_bytes, None).with_context(|| label.to_string())?;
        ChunkReader::with_input(label.to_string(), input, None)
    }

    fn with_input(
        label: String,
        input: Box<dyn BufRead + Send>,
        digest: Option<Arc<Mutex<Option<String>>>>,
    ) -> Result<ChunkReader> {
        let mut reader = ChunkReader {
            label,
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

/// The CSV text of a stored chunk, held to `csv_bytes` when given (errors
/// then start with `label` when given).
fn decompressed(
    file: impl Read + Send + 'static,
    compress: Compress,
    csv_bytes: Option<u64>,
    label: Option<String>,
) -> Result<Box<dyn BufRead + Send>> {
    let text: Box<dyn Read + Send> = match compress {
        Compress::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        // Reads frame after frame, as MultiGzDecoder reads members; a file
        // cut inside a frame is an error ("incomplete frame"), one cut
        // between frames is caught by ExactLength.
        Compress::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::new(file).context("starting a zstd decoder")?;
            // A frame names its window size, which the decoder allocates: a
            // damaged or foreign file could ask for up to 2 GiB. The writer's
            // levels (at most 19) use at most 8 MiB (2^23); 2^24 leaves room.
            decoder
                .window_log_max(24)
                .context("starting a zstd decoder")?;
            Box::new(decoder)
        }
        Compress::None => Box::new(file),
    };
    Ok(match csv_bytes {
        Some(expected) => Box::new(BufReader::with_capacity(
            READ_BUFFER,
            ExactLength {
                inner: text,
                read: 0,
                expected,
                label,
            },
        )),
        None => Box::new(BufReader::with_capacity(READ_BUFFER, text)),
    })
}

/// Fails a read once the text is longer than `expected` bytes, or ends
/// shorter. A gzip file is a series of members and nothing marks the last
/// one, so a file cut exactly between two members decompresses without an
/// error, only shorter: this is what tells.
struct ExactLength<R> {
    inner: R,
    read: u64,
    expected: u64,
    label: Option<String>,
}

impl<R: Read> ExactLength<R> {
    fn error(&self, what: String) -> io::Error {
        let what = match &self.label {
            Some(label) => format!("{label}: {what}"),
            None => what,
        };
        io::Error::new(io::ErrorKind::InvalidData, what)
    }
}

impl<R: Read> Read for ExactLength<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.expected {
            return Err(self.error(format!(
                "more than the {} bytes of CSV {TABLE_FILE} records: the file changed since it was written",
                self.expected
            )));
        }
        if n == 0 && !buf.is_empty() && self.read < self.expected {
            return Err(self.error(format!(
                "the file ends after {} bytes of CSV where {TABLE_FILE} records {}: it is truncated",
                self.read, self.expected
            )));
        }
        Ok(n)
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
        let err = ChunkWriter::create(dir.path(), "x.csv.gz", Compress::Gzip, 13)
            .err()
            .unwrap();
        assert!(err.to_string().contains("out of range"), "{err}");
        for level in [0, 20] {
            let err = ChunkWriter::create(dir.path(), "x.csv.zst", Compress::Zstd, level)
                .err()
                .unwrap();
            assert_eq!(
                err.to_string(),
                format!("zstd level {level} is out of range (1 to 19)")
            );
        }
    }

    /// A frame asking for a window beyond what the writer ever uses (here
    /// 128 MiB) is refused before the decoder allocates it.
    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000001.csv.zst");
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(27).unwrap();
        encoder.write_all(b"id\n\"1\"\n").unwrap();
        fs::write(&path, encoder.finish().unwrap()).unwrap();
        let err = match ChunkReader::open(&path, Compress::Zstd, None) {
            Ok(_) => panic!("a 128 MiB window was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    /// A zstd chunk is one standard frame with a content checksum: what the
    /// `zstd` tool and Python's `zstandard` read, and a changed byte in the
    /// middle is an error naming the file, never other rows.
    #[test]
    fn zstd_chunks_are_one_checksummed_frame() {
        let dir = tempfile::tempdir().unwrap();
        let csv: Vec<u8> = (0..50_000)
            .flat_map(|i| format!("\"{i}\",\"row {i}\"\n").into_bytes())
            .collect();
        let csv = [b"id,note\n".to_vec(), csv].concat();
        let stats = write_chunk(dir.path(), "000001.csv.zst", Compress::Zstd, &csv);
        let path = dir.path().join("000001.csv.zst");
        let stored = fs::read(&path).unwrap();
        assert_eq!(&stored[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
        assert!(stats.bytes < stats.csv_bytes / 3, "{stats:?}");
        assert_eq!(zstd::decode_all(&stored[..]).unwrap(), csv);
        // Frame header descriptor: the content-checksum flag (bit 2).
        assert_eq!(stored[4] & 0b100, 0b100);

        let mut changed = stored.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x55;
        fs::write(&path, &changed).unwrap();
        let mut reader = ChunkReader::open(&path, Compress::Zstd, Some(stats.csv_bytes)).unwrap();
        let mut record = Vec::new();
        let err = loop {
            match reader.read_record(&mut record) {
                Ok(true) => continue,
                Ok(false) => panic!("a changed zstd chunk read to its end"),
                Err(e) => break format!("{e:#}"),
            }
        };
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(!err.contains('\n'), "{err}");
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
        for compress in [Compress::Gzip, Compress::Zstd, Compress::None] {
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
        for compress in [Compress::Gzip, Compress::Zstd, Compress::None] {
            let file = format!("000001.{}", compress.extension());
            let path = dir.path().join(&file);
            write_chunk(dir.path(), &file, compress, b"");
            let reader = ChunkReader::open(&path, compress, Some(0)).unwrap();
            assert_eq!(reader.header(), None);
            let err = reader.require_header().unwrap_err().to_string();
            assert_eq!(err, format!("{} is empty (no header)", path.display()));
        }
    }

    mod properties {
        use std::io::Cursor;

        use proptest::prelude::*;

        use super::super::*;
        use super::write_chunk;
        use crate::dialect::{write_field, write_header, Codec, Field};

        const LABEL: &str = "db/t/000001.csv.gz";

        fn csv_of(header: &[String], rows: &[Vec<Field>]) -> Vec<u8> {
            let mut csv = Vec::new();
            write_header(&mut csv, header);
            for row in rows {
                for (i, v) in row.iter().enumerate() {
                    if i > 0 {
                        csv.push(b',');
                    }
                    write_field(&mut csv, v.as_deref(), Codec::Text);
                }
                csv.push(b'\n');
            }
            csv
        }

        /// `csv` as gzip members of `member` bytes each, as the writer
        /// makes them (of `MEMBER_BYTES`).
        fn members(csv: &[u8], member: usize) -> Vec<u8> {
            let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(1).unwrap());
            let mut out = Vec::new();
            let pieces: Vec<&[u8]> = if csv.is_empty() {
                vec![csv]
            } else {
                csv.chunks(member).collect()
            };
            for piece in pieces {
                let mut buf = vec![0; c.gzip_compress_bound(piece.len())];
                let n = c.gzip_compress(piece, &mut buf).unwrap();
                out.extend_from_slice(&buf[..n]);
            }
            out
        }

        /// `csv` as `ChunkWriter` stores it with zstd.
        fn zstd_frame(csv: &[u8]) -> Vec<u8> {
            let dir = tempfile::tempdir().unwrap();
            write_chunk(dir.path(), "c.csv.zst", Compress::Zstd, csv);
            std::fs::read(dir.path().join("c.csv.zst")).unwrap()
        }

        /// A chunk's header and rows.
        type Contents = (Option<Vec<String>>, Vec<Vec<Field>>);

        /// Header and rows of a stored chunk, or the error as `{:#}` shows it.
        fn read(
            stored: &[u8],
            compress: Compress,
            csv_bytes: Option<u64>,
        ) -> Result<Contents, String> {
            let run = || -> Result<_> {
                let mut r = ChunkReader::from_reader(
                    LABEL,
                    Cursor::new(stored.to_vec()),
                    compress,
                    csv_bytes,
                )?;
                let mut rows = Vec::new();
                let mut record = Vec::new();
                while r.read_record(&mut record)? {
                    rows.push(record.clone());
                }
                Ok((r.header().map(<[String]>::to_vec), rows))
            };
            run().map_err(|e| format!("{e:#}"))
        }

        fn value() -> impl Strategy<Value = Field> {
            let byte = prop_oneof![
                3 => prop::sample::select(b"\",\r\nNUL\\a\xff".to_vec()),
                1 => any::<u8>(),
            ];
            prop::option::of(prop::collection::vec(byte, 0..10))
        }

        fn table() -> impl Strategy<Value = (Vec<String>, Vec<Vec<Field>>)> {
            (1usize..5).prop_flat_map(|n| {
                (
                    prop::collection::vec("[a-z\"\n ,]{1,6}", n),
                    prop::collection::vec(prop::collection::vec(value(), n), 0..12),
                )
            })
        }

        /// A gzip file cut exactly between two members decompresses without
        /// an error, only shorter: the reason `ChunkReader` holds the text
        /// to the length `table.json` records.
        #[test]
        fn a_gzip_file_cut_between_members_reads_as_a_shorter_valid_one() {
            let csv = b"\"id\"\n\"1\"\n\"2\"\n";
            let first = members(&csv[..9], 9);
            let whole = [first.clone(), members(&csv[9..], 9)].concat();
            let mut short = Vec::new();
            flate2::read::MultiGzDecoder::new(&first[..])
                .read_to_end(&mut short)
                .unwrap();
            assert_eq!(short, &csv[..9]);
            let (_, rows) = read(&first, Compress::Gzip, None).unwrap();
            assert_eq!(rows, [vec![Some(b"1".to_vec())]]);
            let err = read(&first, Compress::Gzip, Some(csv.len() as u64)).unwrap_err();
            assert_eq!(err, format!("{LABEL}: the file ends after 9 bytes of CSV where table.json records {}: it is truncated", csv.len()));
            assert!(read(&whole, Compress::Gzip, Some(csv.len() as u64)).is_ok());
            let err = read(&whole, Compress::Gzip, Some(csv.len() as u64 - 1)).unwrap_err();
            assert!(
                err.starts_with(&format!(
                    "{LABEL}: more than the 12 bytes of CSV table.json records"
                )),
                "{err}"
            );
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            /// What `ChunkWriter` writes, `ChunkReader` reads back: the
            /// header, every row, and the hash.
            #[test]
            fn a_written_chunk_reads_back(
                (header, rows) in table(),
                compress in prop::sample::select(vec![Compress::Gzip, Compress::Zstd, Compress::None]),
            ) {
                let dir = tempfile::tempdir().unwrap();
                let csv = csv_of(&header, &rows);
                let stats = write_chunk(dir.path(), "000001.csv", compress, &csv);
                prop_assert_eq!(stats.csv_bytes, csv.len() as u64);
                let path = dir.path().join("000001.csv");
                let mut reader = ChunkReader::open(&path, compress, Some(stats.csv_bytes)).unwrap();
                prop_assert_eq!(reader.header(), Some(&header[..]));
                let mut back = Vec::new();
                let mut record = Vec::new();
                while reader.read_record(&mut record).unwrap() {
                    back.push(record.clone());
                }
                prop_assert_eq!(&back, &rows);
                let mut reader = ChunkReader::open_hashed(&path, compress).unwrap();
                while reader.read_record(&mut record).unwrap() {}
                reader.check_sha256(&stats.sha256).unwrap();
            }

            /// A chunk of several members cut at any byte, or with any byte
            /// changed: an error naming the file, or (a changed byte gzip
            /// does not check, as the header's time stamp) the same rows,
            /// never other rows.
            #[test]
            fn a_cut_or_changed_chunk_fails_naming_the_file(
                (header, rows) in table(),
                member in 1usize..40,
                cut in any::<prop::sample::Index>(),
                flip in 1u8..=255,
            ) {
                let csv = csv_of(&header, &rows);
                let stored = members(&csv, member);
                let want = read(&stored, Compress::Gzip, Some(csv.len() as u64)).unwrap();
                let at = cut.index(stored.len());
                let err = read(&stored[..at], Compress::Gzip, Some(csv.len() as u64)).unwrap_err();
                prop_assert!(err.starts_with(LABEL), "{}", err);
                let mut changed = stored.clone();
                changed[at] ^= flip;
                match read(&changed, Compress::Gzip, Some(csv.len() as u64)) {
                    Ok(got) => prop_assert_eq!(got, want.clone()),
                    Err(err) => prop_assert!(err.starts_with(LABEL), "{}", err),
                }
                // zstd, cut or changed anywhere: the same promise.
                let stored = zstd_frame(&csv);
                let at = cut.index(stored.len());
                let err = read(&stored[..at], Compress::Zstd, Some(csv.len() as u64)).unwrap_err();
                prop_assert!(err.starts_with(LABEL), "{}", err);
                let mut changed = stored.clone();
                changed[at] ^= flip;
                match read(&changed, Compress::Zstd, Some(csv.len() as u64)) {
                    Ok(got) => prop_assert_eq!(got, want),
                    Err(err) => prop_assert!(err.starts_with(LABEL), "{}", err),
                }
                // Plain CSV, cut anywhere.
                let at = at.min(csv.len().saturating_sub(1));
                if !csv.is_empty() {
                    let err = read(&csv[..at], Compress::None, Some(csv.len() as u64)).unwrap_err();
                    prop_assert!(err.starts_with(LABEL), "{}", err);
                }
            }

            /// Any bytes as a compressed or plain chunk, with or without a
            /// length: an error naming the file, never a panic.
            #[test]
            fn any_bytes_as_a_chunk_fail_naming_the_file(
                bytes in prop::collection::vec(any::<u8>(), 0..200),
                len in prop::option::of(0u64..300),
            ) {
                for compress in [Compress::Gzip, Compress::Zstd, Compress::None] {
                    if let Err(err) = read(&bytes, compress, len) {
                        prop_assert!(err.starts_with(LABEL), "{}", err);
                    }
                }
            }
        }
    }
}
