//! Running `--exec` over a chunk: `sh -c CMD` with the chunk on its stdin
//! (fed by a thread), its stdout read as it comes into the output chunk, its
//! stderr straight to a file kept when the chunk fails.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::{self, JoinHandle};

use anyhow::{anyhow, bail, Context, Result};

use super::jsonl;
use super::options::Format;
use super::output_chunk::OutputChunk;
use super::tables::InputChunk;
use crate::dialect;
use crate::dump::ChunkReader;

/// Where the command's stderr for chunk `number` goes (kept if it failed).
pub(super) fn stderr_path(out_dir: &Path, number: u32) -> PathBuf {
    out_dir.join(crate::dump::stderr_file_name(number))
}

/// Runs `cmd` over one chunk into `out`; gives the number of rows it was fed.
pub(super) fn run_command(
    cmd: &str,
    format: Format,
    input: &InputChunk<'_>,
    stderr_path: &Path,
    out: &mut OutputChunk<'_>,
) -> Result<u64> {
    let stderr =
        File::create(stderr_path).with_context(|| format!("creating {}", stderr_path.display()))?;
    let mut child = spawn(cmd, format, input, stderr)?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("no stdin for the command"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout from the command"))?;
    let feeder = start_feeder(stdin_feed(format, input)?, stdin);
    let read = match format {
        Format::Csv => read_csv_output(stdout, out),
        Format::Jsonl => read_jsonl_output(stdout, out),
    };
    if read.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().context("waiting for the command")?;
    let rows_in = feeder
        .join()
        .map_err(|_| anyhow!("the stdin feeder panicked"))?;
    read?;
    if !status.success() {
        bail!(
            "the command {}",
            failure(status.code(), &stderr_tail(stderr_path))
        );
    }
    let rows_in = rows_in.context("reading the input chunk")?;
    if fs::metadata(stderr_path)
        .map(|m| m.len() == 0)
        .unwrap_or(false)
    {
        let _ = fs::remove_file(stderr_path);
    }
    Ok(rows_in)
}

fn spawn(cmd: &str, format: Format, input: &InputChunk<'_>, stderr: File) -> Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(command_env(format, input))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .with_context(|| format!("starting sh -c {cmd:?}"))
}

/// What the command is told of its chunk (`MYSPOOL_*`, in the help of
/// `myspool process`).
fn command_env(format: Format, input: &InputChunk<'_>) -> Vec<(&'static str, OsString)> {
    let join = |v: &Option<Vec<String>>| v.as_ref().map(|v| v.join(", ")).unwrap_or_default();
    let table = input.table;
    vec![
        ("MYSPOOL_DB", table.db.clone().into()),
        ("MYSPOOL_TABLE", table.table.clone().into()),
        ("MYSPOOL_CHUNK", input.chunk.number.to_string().into()),
        ("MYSPOOL_CHUNK_FILE", input.path.clone().into()),
        ("MYSPOOL_KEY_COLUMNS", table.key.columns.join(",").into()),
        ("MYSPOOL_KEY_LOWER", join(&input.chunk.lower).into()),
        ("MYSPOOL_KEY_UPPER", join(&input.chunk.upper).into()),
        ("MYSPOOL_FORMAT", format.name().into()),
    ]
}

/// What writes a chunk to the command's stdin, returning the rows it wrote.
type StdinFeed = Box<dyn FnOnce(&mut dyn Write) -> Result<u64> + Send>;

/// Opens the chunk for the command, in its format.
fn stdin_feed(format: Format, input: &InputChunk<'_>) -> Result<StdinFeed> {
    let compress = input.table.compress;
    Ok(match format {
        Format::Csv => {
            let text = ChunkReader::open_text(&input.path, compress, input.csv_bytes())?;
            let rows_recorded = input.chunk.written.as_ref().map_or(0, |w| w.rows);
            Box::new(move |stdin| feed_csv(text, stdin, rows_recorded))
        }
        Format::Jsonl => {
            let reader = ChunkReader::open(&input.path, compress, input.csv_bytes())?;
            Box::new(move |stdin| feed_jsonl(reader, stdin))
        }
    })
}

/// Feeds stdin on its own thread: the command may read and write at the
/// same time, and a command that stops reading early (head) is fine.
fn start_feeder(feed: StdinFeed, mut stdin: ChildStdin) -> JoinHandle<Result<u64>> {
    thread::spawn(move || -> Result<u64> {
        let result = feed(&mut stdin);
        drop(stdin);
        match result {
            Err(e)
                if e.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
            {
                Ok(0)
            }
            other => other,
        }
    })
}

/// Why a command failed, after "the command ".
fn failure(code: Option<i32>, stderr_tail: &str) -> String {
    format!(
        "{}{}",
        match code {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_string(),
        },
        if stderr_tail.is_empty() {
            String::new()
        } else {
            format!(" (stderr: {stderr_tail})")
        }
    )
}

/// The last line of a stderr file, for the one-line error.
fn stderr_tail(path: &Path) -> String {
    last_line(&fs::read(path).unwrap_or_default())
}

/// The last non-blank line of a text, trimmed (looked for in its end only).
pub(super) fn last_line(text: &[u8]) -> String {
    let start = text.len().saturating_sub(2000);
    String::from_utf8_lossy(&text[start..])
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Copies the chunk's CSV as it is: it is already the dump's dialect, and
/// its row count is in table.json (parsing it here only to count cost a third
/// of the time of a `cat` step).
fn feed_csv(mut input: Box<dyn BufRead + Send>, stdin: &mut dyn Write, rows: u64) -> Result<u64> {
    io::copy(&mut input, stdin)?;
    Ok(rows)
}

fn feed_jsonl(mut reader: ChunkReader, stdin: &mut dyn Write) -> Result<u64> {
    let Some(names) = reader.header().map(<[String]>::to_vec) else {
        return Ok(0);
    };
    let mut record = Vec::new();
    let mut rows = 0;
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdin);
    while reader.read_record(&mut record)? {
        serde_json::to_writer(&mut out, &jsonl::object_of(&names, &record))?;
        out.write_all(b"\n")?;
        rows += 1;
    }
    out.flush()?;
    Ok(rows)
}

fn read_csv_output(stdout: impl Read, out: &mut OutputChunk<'_>) -> Result<()> {
    let mut reader = dialect::Reader::new(BufReader::with_capacity(256 * 1024, stdout));
    let mut record = Vec::new();
    if !reader
        .read_record(&mut record)
        .context("reading the command's output")?
    {
        return Ok(());
    }
    let names = record
        .iter()
        .enumerate()
        .map(|(i, f)| match f {
            Some(v) => String::from_utf8(v.clone())
                .map_err(|_| anyhow!("output header, field {}: not valid UTF-8", i + 1)),
            None => Err(anyhow!("output header, field {}: empty column name", i + 1)),
        })
        .collect::<Result<Vec<_>>>()?;
    out.header(names)?;
    while reader
        .read_record(&mut record)
        .context("the command's output is not valid CSV in the dump's dialect")?
    {
        out.row(&record, reader.line())?;
    }
    Ok(())
}

fn read_jsonl_output(stdout: impl Read, out: &mut OutputChunk<'_>) -> Result<()> {
    let reader = BufReader::with_capacity(256 * 1024, stdout);
    let mut row = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.with_context(|| format!("output line {line_no}: not valid UTF-8"))?;
        if line.trim().is_empty() {
            continue;
        }
        let object = jsonl::parse_object(&line, line_no)?;
        if out.columns().is_none() {
            out.header(object.keys().cloned().collect())?;
        }
        let columns = out.columns().map(<[String]>::to_vec).unwrap_or_default();
        jsonl::fields_of(&object, &columns, line_no, &mut row)?;
        out.row(&row, line_no)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::fixtures::{chunk, names, stats, table};

    #[test]
    fn the_command_is_told_its_table_chunk_key_range_and_format() {
        let mut table = table(&["a", "b"], vec![]);
        table.table = "orders".into();
        table.key.columns = names(&["a", "b"]);
        let mut chunk = chunk(7, Some(stats(1, "")));
        chunk.lower = Some(names(&["1", "'x'"]));
        let input = InputChunk {
            table: &table,
            chunk: &chunk,
            path: PathBuf::from("/d/shop.orders/000007.csv.gz"),
        };
        let env = command_env(Format::Jsonl, &input);
        let get = |name: &str| {
            env.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string_lossy().into_owned())
                .unwrap()
        };
        assert_eq!(get("MYSPOOL_DB"), "shop");
        assert_eq!(get("MYSPOOL_TABLE"), "orders");
        assert_eq!(get("MYSPOOL_CHUNK"), "7");
        assert_eq!(get("MYSPOOL_CHUNK_FILE"), "/d/shop.orders/000007.csv.gz");
        assert_eq!(get("MYSPOOL_KEY_COLUMNS"), "a,b");
        assert_eq!(get("MYSPOOL_KEY_LOWER"), "1, 'x'");
        assert_eq!(get("MYSPOOL_KEY_UPPER"), "");
        assert_eq!(get("MYSPOOL_FORMAT"), "jsonl");
    }

    #[test]
    fn a_failure_says_how_the_command_ended_and_its_last_stderr_line() {
        assert_eq!(failure(Some(3), ""), "exited with status 3");
        assert_eq!(
            failure(None, "boom"),
            "was killed by a signal (stderr: boom)"
        );
        assert_eq!(last_line(b"first\n  last one  \n\n  \n"), "last one");
        assert_eq!(last_line(b""), "");
        let long = format!("{}\nend", "x".repeat(5000));
        assert_eq!(last_line(long.as_bytes()), "end");
    }

    #[test]
    fn a_chunks_stderr_is_named_after_it() {
        assert_eq!(
            stderr_path(Path::new("/o/t"), 42),
            PathBuf::from("/o/t/000042.stderr")
        );
    }
}
