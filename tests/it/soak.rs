//! The soak: `myspool copy` (export, process and load overlapped) killed
//! with SIGKILL at random moments, many times, and rerun after each kill;
//! after every finished copy the target must equal the source.
//!
//! `MYSPOOL_SOAK_KILLS` (default 5) kills, at moments drawn from
//! `MYSPOOL_SOAK_SEED` (default 15); `scripts/soak.sh --kills N --seed S`
//! runs this test alone with those two set.
//!
//! It goes in rounds. Round 0 copies without a kill and is timed: how long a
//! whole copy takes, when the first chunk commits, when the last one has
//! committed (the rest is the finish: AUTO_INCREMENT and indexes put back,
//! journals and manifests closed). Every later round copies into a fresh
//! target database and a fresh work directory: its first run is killed, and
//! after every kill a coin says whether the rerun is killed too (at the next
//! drawn moment) or runs to the end. A moment is drawn as one of
//! * `early`: uniformly between the start and the first commit (planning,
//!   the load's preflight, AUTO_INCREMENT and indexes being removed);
//! * `anytime`: uniformly over the measured length of a whole copy;
//! * `finish`: once all but 0–2 chunks have committed, uniformly over the
//!   measured finish.
//!
//! A run that ends before its moment ends the round. Every round ends with
//! a copy that succeeded and is then checked, independently of any timing:
//! every table equal to the source in the exact form of every column (with
//! the processing step's change, see `EXEC`), row counts equal,
//! `SHOW CREATE TABLE` equal (AUTO_INCREMENT, its counter and the deferred
//! indexes back), every chunk committed exactly once in the journals,
//! `status` saying everything is done, `verify` passing, and a rerun doing
//! nothing.
//!
//! After it, the bugs the soak found, each pinned by a deterministic test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

const DEFAULT_KILLS: u64 = 5;
const DEFAULT_SEED: u64 = 15;
/// Rows per chunk: 30 chunks of `orders`, 40 of `order_lines`, and
/// `events` (no key) in one.
const CHUNK_ROWS: &str = "400";
/// A pause per chunk in the export and the load (and between a chunk's
/// `committing` line and its COMMIT), so the copy lasts long enough to be
/// killed at many different moments.
const CHUNK_DELAY_MS: &str = "20";

/// Three tables: an AUTO_INCREMENT key with a unique and two deferred
/// secondary indexes; a composite key with latin1 and BLOB columns; no key
/// at all, with rows that appear twice. NULL, '', 'NULL', '\N', quotes,
/// commas, CR/LF, non-ASCII text, binary bytes, FLOAT extremes. And the
/// view the processed `orders` must equal.
const SOURCE: &str = r#"
CREATE TABLE orders (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  customer INT NOT NULL,
  name VARCHAR(60) NULL,
  price FLOAT NULL,
  tag VARBINARY(8) NULL,
  placed DATETIME(6) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY u_customer_id (customer, id),
  KEY k_customer (customer),
  KEY k_name_price (name(12), price)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO orders (id, customer, name, price, tag, placed)
SELECT seq * 3, seq % 97,
  CASE seq % 9 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'NULL' WHEN 3 THEN 'null'
    WHEN 4 THEN '\\N' WHEN 5 THEN CONCAT('say "hi", ', seq)
    WHEN 6 THEN CONCAT('two\nlines\r\n', seq) WHEN 7 THEN CONCAT('cafe ', seq, ' € 日本 😀')
    ELSE CONCAT('name ', seq) END,
  CASE seq % 8 WHEN 0 THEN NULL WHEN 1 THEN 3.4028234663852886e38
    WHEN 2 THEN -1.1754943508222875e-38 WHEN 3 THEN 16777217 WHEN 4 THEN 1.401298464324817e-45
    WHEN 5 THEN 0.1 ELSE seq / 7 END,
  CASE seq % 6 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN UNHEX('00FF220A5C2C0D')
    ELSE UNHEX(LPAD(HEX(seq * 2654435761 % 4294967296), 8, '0')) END,
  TIMESTAMP'2024-02-29 23:59:59.999999' - INTERVAL seq MINUTE
FROM seq_1_to_12000;

CREATE TABLE order_lines (
  order_id INT NOT NULL,
  line_no SMALLINT NOT NULL,
  sku CHAR(10) CHARACTER SET latin1 NOT NULL,
  qty DOUBLE NULL,
  comment VARCHAR(100) NULL,
  payload BLOB NULL,
  PRIMARY KEY (order_id, line_no),
  KEY k_sku (sku)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO order_lines
SELECT (seq + 3) DIV 4, (seq + 3) % 4 + 1, CONCAT('sku-', seq % 500),
  CASE seq % 5 WHEN 0 THEN NULL WHEN 1 THEN 0.1 WHEN 2 THEN -1e308 ELSE seq / 3 END,
  CASE seq % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'NULL' ELSE CONCAT('lower, € ', seq) END,
  CASE seq % 3 WHEN 0 THEN NULL ELSE UNHEX(REPEAT(LPAD(HEX(seq % 256), 2, '0'), seq % 40)) END
FROM seq_1_to_16000;

CREATE TABLE events (
  at DATETIME NULL,
  kind ENUM('open', 'close', 'x') NULL,
  msg VARCHAR(50) NULL,
  amount DECIMAL(12,3) NULL,
  KEY k_kind (kind)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO events
SELECT TIMESTAMP'2023-01-01 00:00:00' + INTERVAL (seq % 700) HOUR, ELT(1 + seq % 3, 'open', 'close', 'x'),
  CASE seq % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'NULL' ELSE CONCAT('m', seq % 50) END,
  (seq % 1000) / 8
FROM seq_1_to_3000;
INSERT INTO events SELECT * FROM events WHERE amount < 20;

CREATE VIEW orders_expected AS
SELECT id, customer, REGEXP_REPLACE(name, '^name ', 'NAME ') AS name, price, tag, placed FROM orders;
CREATE VIEW order_lines_expected AS
SELECT order_id, line_no, REGEXP_REPLACE(sku, '^sku-', 'SKU-') AS sku, qty,
  REGEXP_REPLACE(comment, '^lower, ', 'LOWER, ') AS comment, payload FROM order_lines;
CREATE VIEW events_expected AS
SELECT at, kind, REGEXP_REPLACE(msg, '^m([0-9])', 'M\\1') AS msg, amount FROM events;
"#;

/// Each table, the ORDER BY that lists it, and what its copy must equal on
/// the source (a table, or the view of what the processing makes of it).
const TABLES: [(&str, &str, &str); 3] = [
    ("orders", "id", "orders_expected"),
    ("order_lines", "order_id, line_no", "order_lines_expected"),
    ("events", "at, kind, msg, amount", "events_expected"),
];

/// The processing step: upper-cases a word at the start of some text
/// values of every table (`name 8` → `NAME 8` in `orders.name`, `sku-1`
/// and `lower, ` in `order_lines`, `m7` in `events.msg`), on the rows, not
/// the header; the `*_expected` views make the same change on the source.
/// Every other field is left in its exact form, so `verify` can compare the
/// processed dump with the target.
const EXEC: &str = r#"sed -e '1!s/"name /"NAME /' -e '1!s/"sku-/"SKU-/' -e '1!s/"lower, /"LOWER, /' -e '1!s/"m\([0-9]\)/"M\1/'"#;

#[test]
fn soak_copy_killed_at_random_moments_ends_identical_every_time() {
    let kills: u64 = env_number("MYSPOOL_SOAK_KILLS", DEFAULT_KILLS);
    let seed: u64 = env_number("MYSPOOL_SOAK_SEED", DEFAULT_SEED);
    let started = Instant::now();
    let src = Server::shared(&[]);
    // Killed loads leave sessions behind on the target until the server
    // notices: a private target keeps them away from other tests.
    let dst = Server::start(&[]);
    let db = db_with(&src, "soak", SOURCE);
    let expected = Expected::read(&src, &db);
    // Kept if the soak fails (removed at the end otherwise), to be read.
    let work = tempfile::Builder::new()
        .prefix("myspool-soak-")
        .tempdir()
        .unwrap()
        .keep();
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    println!("soak: seed {seed}, {kills} kills; source {db}");

    let timing = measure(&Job::new(&src, &dst, &db, &work, 0), &expected);
    println!(
        "soak: round 0 (no kill): {:.2} s, first commit at {:.2} s, all {} chunks committed at {:.2} s",
        secs(timing.total),
        secs(timing.first_commit),
        timing.chunks,
        secs(timing.all_committed)
    );

    let mut round = 0;
    while stats.kills < kills {
        round += 1;
        let job = Job::new(&src, &dst, &db, &work, round);
        let mut attempt = 0;
        loop {
            attempt += 1;
            stats.runs += 1;
            let kill = stats.kills < kills && (attempt == 1 || rng.chance(0.5));
            if !kill {
                let out = job.run(|_| false);
                stats.lock_waits += job.assert_finished(round, attempt, out);
                break;
            }
            let moment = Moment::draw(&mut rng, &timing);
            let trigger = moment.trigger(&job);
            match job.run(trigger) {
                Ended::Killed(at) => {
                    stats.kills += 1;
                    *stats.by_kind.entry(moment.kind()).or_default() += 1;
                    println!(
                        "kill {:>3}: round {round} run {attempt}, {} at {:.3} s: {}",
                        stats.kills,
                        moment.describe(),
                        secs(at),
                        job.state()
                    );
                }
                out @ Ended::Exited(..) => {
                    stats.missed += 1;
                    println!(
                        "round {round} run {attempt}: finished before its kill ({})",
                        moment.describe()
                    );
                    stats.lock_waits += job.assert_finished(round, attempt, out);
                    break;
                }
            }
        }
        job.check(&expected);
        dst.query(&format!("DROP DATABASE `{}`", job.into));
        std::fs::remove_dir_all(&job.dir).unwrap();
    }
    std::fs::remove_dir_all(&work).unwrap();
    stats.rounds = round;
    let kinds: Vec<String> = stats
        .by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    println!(
        "soak: survived: seed {seed}, {} kills ({}) in {} rounds, {} runs ({} reruns; {} ended before their kill moment; {} waited for a killed run's ALTER), {:.1} s; every round identical to the source",
        stats.kills,
        kinds.join(", "),
        stats.rounds,
        stats.runs,
        stats.runs - stats.rounds,
        stats.missed,
        stats.lock_waits,
        secs(started.elapsed())
    );
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[derive(Default)]
struct Stats {
    kills: u64,
    rounds: u64,
    runs: u64,
    /// Runs that ended before the moment drawn for their kill.
    missed: u64,
    /// Reruns that waited for the statement a killed run left running.
    lock_waits: u64,
    by_kind: std::collections::BTreeMap<&'static str, u64>,
}

/// splitmix64: the kill moments are a function of the seed alone.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [0, d).
    fn within(&mut self, d: Duration) -> Duration {
        d.mul_f64(self.unit())
    }
}

/// What round 0 measured.
struct Timing {
    total: Duration,
    first_commit: Duration,
    all_committed: Duration,
    /// Chunks of the whole copy (every table's).
    chunks: usize,
}

impl Timing {
    /// From the last commit to the end of the copy.
    fn finish(&self) -> Duration {
        self.total.saturating_sub(self.all_committed)
    }
}

/// When to kill one run.
enum Moment {
    Early(Duration),
    Anytime(Duration),
    /// Once that many chunks have committed (over every run of the round),
    /// after that delay.
    Finish {
        committed: usize,
        delay: Duration,
    },
}

impl Moment {
    fn draw(rng: &mut Rng, t: &Timing) -> Moment {
        let x = rng.unit();
        if x < 0.15 {
            Moment::Early(rng.within(t.first_commit))
        } else if x < 0.30 {
            let short = (rng.next() % 3) as usize;
            Moment::Finish {
                committed: t.chunks.saturating_sub(short),
                delay: rng.within(t.finish().max(Duration::from_millis(50)).mul_f64(1.2)),
            }
        } else {
            Moment::Anytime(rng.within(t.total))
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Moment::Early(_) => "early",
            Moment::Anytime(_) => "anytime",
            Moment::Finish { .. } => "finish",
        }
    }

    fn describe(&self) -> String {
        match self {
            Moment::Early(d) => format!("early (drawn {:.3} s)", secs(*d)),
            Moment::Anytime(d) => format!("anytime (drawn {:.3} s)", secs(*d)),
            Moment::Finish { committed, delay } => format!(
                "finish ({committed} chunks committed + {:.3} s)",
                secs(*delay)
            ),
        }
    }

    /// Asked every few ms with the time since the run started.
    fn trigger<'a>(&self, job: &'a Job) -> Box<dyn FnMut(Duration) -> bool + 'a> {
        match *self {
            Moment::Early(at) | Moment::Anytime(at) => Box::new(move |elapsed| elapsed >= at),
            Moment::Finish { committed, delay } => {
                let mut since: Option<Duration> = None;
                Box::new(move |elapsed| {
                    if since.is_none() && job.committed() >= committed {
                        since = Some(elapsed);
                    }
                    since.is_some_and(|s| elapsed >= s + delay)
                })
            }
        }
    }
}

/// What every copy must end with, read once from the source.
struct Expected {
    /// Per table: typed rows, row count, SHOW CREATE TABLE.
    tables: Vec<(TextRows, u64, String)>,
}

impl Expected {
    fn read(src: &Server, db: &str) -> Expected {
        let tables = TABLES
            .iter()
            .map(|(table, order, like)| {
                (
                    typed_rows(src, db, like, order),
                    count(src, &format!("`{db}`.`{table}`")),
                    show_create(src, db, table),
                )
            })
            .collect();
        let e = Expected { tables };
        // The transform shows in every table: the check would catch a copy
        // that skipped it.
        for ((table, order, _), (rows, ..)) in TABLES.iter().zip(&e.tables) {
            assert_ne!(rows, &typed_rows(src, db, table, order), "{table}");
        }
        e
    }
}

/// One copy job: a work directory and a target database of its own.
struct Job<'a> {
    dst: &'a Server,
    /// The source database.
    db: String,
    dir: PathBuf,
    into: String,
    args: Vec<String>,
}

impl<'a> Job<'a> {
    fn new(src: &Server, dst: &'a Server, db: &str, work: &Path, round: u64) -> Job<'a> {
        let dir = work.join(format!("round{round}"));
        let into = format!("soak_{round}");
        let args = [
            "copy",
            "--from",
            &src.url(),
            "--to",
            &dst.url(),
            "--table",
            &format!("{db}.*"),
            "--dir",
            &path_arg(&dir),
            "--exec",
            EXEC,
            "--chunk-rows",
            CHUNK_ROWS,
            "--jobs",
            "2",
            "--autoinc",
            "drop",
            "--defer-indexes",
            "--into",
            &into,
            "--progress",
            "none",
        ]
        .map(String::from)
        .to_vec();
        Job {
            dst,
            db: db.to_string(),
            dir,
            into,
            args,
        }
    }

    fn run(&self, kill_now: impl FnMut(Duration) -> bool) -> Ended {
        run_until_killed(
            &self.args,
            &[("MYSPOOL_TEST_CHUNK_DELAY_MS", CHUNK_DELAY_MS)],
            kill_now,
        )
    }

    fn processed(&self) -> PathBuf {
        self.dir.join("processed")
    }

    /// Chunks committed so far, over every table's journal.
    fn committed(&self) -> usize {
        count_in_files(&self.processed(), "load@", "\"committed\"")
    }

    /// The run succeeded; 1 if it had to wait for a statement a killed run
    /// left running on the target (see
    /// `a_rerun_waits_for_the_alter_a_killed_load_left_running_then_finishes`).
    #[track_caller]
    fn assert_finished(&self, round: u64, attempt: u64, ended: Ended) -> u64 {
        let Ended::Exited(_, out) = ended else {
            unreachable!("killed")
        };
        assert!(
            out.status.success(),
            "round {round} run {attempt}: the copy failed after {} kill(s) ({}):\n{}\n{}\nstate: {}\ntarget sessions: {:?}\nwork directory (kept): {}",
            attempt - 1,
            out.status,
            stdout(&out),
            stderr(&out),
            self.state(),
            self.dst.query_strings(
                "SELECT ID, COMMAND, TIME, STATE, INFO FROM information_schema.PROCESSLIST WHERE COMMAND <> 'Daemon'"
            ),
            self.dir.display()
        );
        let err = stderr(&out);
        let waits: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("waiting for the lock"))
            .collect();
        for line in &waits {
            println!("round {round} run {attempt}: {line}");
        }
        u64::from(!waits.is_empty())
    }

    /// One line: what the dump and the journals show (from `status`).
    fn state(&self) -> String {
        let export = self.dir.join("export");
        if !export.join("manifest.json").exists() {
            return "no export manifest yet".into();
        }
        let e = status_json(&export);
        let mut chunks = 0;
        let mut exported = 0;
        let mut processed = 0;
        for t in e["tables"].as_array().unwrap() {
            chunks += t["chunks"].as_u64().unwrap();
            exported += t["exported"].as_u64().unwrap();
            processed += t["processed"][0]["done"].as_u64().unwrap_or(0);
        }
        let mut line = format!(
            "exported {exported}/{chunks}{}, processed {processed}",
            if e["exported_complete"] == true {
                " (complete)"
            } else {
                ""
            }
        );
        if !self.processed().join("manifest.json").exists() {
            return line;
        }
        let p = status_json(&self.processed());
        let (mut committed, mut doubt, mut complete) = (0, Vec::new(), 0);
        let (mut autoinc, mut indexes) = (Vec::new(), Vec::new());
        for t in p["tables"].as_array().unwrap() {
            let name = t["table"].as_str().unwrap();
            let Some(l) = t["loaded"].as_array().and_then(|l| l.first()) else {
                continue;
            };
            committed += l["committed"].as_u64().unwrap();
            for c in l["in_doubt"].as_array().unwrap() {
                doubt.push(format!("{name} {c}"));
            }
            complete += u64::from(l["complete"] == true);
            if l["autoinc_removed"] == true {
                autoinc.push(name.to_string());
            }
            if l["indexes_dropped"] == true {
                indexes.push(name.to_string());
            }
        }
        line += &format!(", committed {committed}");
        if !doubt.is_empty() {
            line += &format!(" (in doubt: {})", doubt.join(", "));
        }
        line += &format!(", tables complete {complete}/{}", TABLES.len());
        if !autoinc.is_empty() {
            line += &format!(", AUTO_INCREMENT off: {}", autoinc.join(" "));
        }
        if !indexes.is_empty() {
            line += &format!(", indexes off: {}", indexes.join(" "));
        }
        line
    }

    /// Everything a finished copy must have, whatever was killed on the way.
    fn check(&self, expected: &Expected) {
        let dst = self.dst;
        for ((table, order, _), (rows, n, create)) in TABLES.iter().zip(&expected.tables) {
            assert_eq!(
                count(dst, &format!("`{}`.`{table}`", self.into)),
                *n,
                "{table}: row count"
            );
            assert_same_rows(table, rows, &typed_rows(dst, &self.into, table, order));
            assert_eq!(
                &show_create(dst, &self.into, table),
                create,
                "{table}: SHOW CREATE TABLE"
            );
        }
        self.assert_each_chunk_committed_once();
        // status: exported, processed and loaded, nothing left to do.
        for dir in [self.dir.join("export"), self.processed()] {
            let s = status_json(&dir);
            assert_eq!(s["exported_complete"], true, "{s}");
            assert_eq!(s["next"], serde_json::json!([]), "{s}");
            for t in s["tables"].as_array().unwrap() {
                assert_eq!(t["exported"], t["chunks"], "{t}");
                if let Some(p) = t["processed"].as_array().and_then(|p| p.first()) {
                    assert_eq!(p["done"], t["chunks"], "{t}");
                    assert_eq!(p["failed"], serde_json::json!([]), "{t}");
                }
            }
        }
        for t in status_json(&self.processed())["tables"].as_array().unwrap() {
            let l = &t["loaded"][0];
            assert_eq!(l["committed"], t["chunks"], "{t}");
            assert_eq!(l["complete"], true, "{t}");
            assert_eq!(l["in_doubt"], serde_json::json!([]), "{t}");
            assert_eq!(l["autoinc_removed"], false, "{t}");
            assert_eq!(l["indexes_dropped"], false, "{t}");
        }
        let verify = myspool(&[
            "verify",
            "--dir",
            &path_arg(&self.processed()),
            "--to",
            &dst.url(),
            "--into",
            &self.into,
        ]);
        assert_success(&verify);
        // A rerun of the finished copy does nothing.
        let again = myspool(&[&self.args[..], &["--json".into()]].concat());
        assert_success(&again);
        let s = json(&again);
        assert_eq!(s["export"]["chunks_written"], 0, "{s}");
        assert_eq!(s["process"]["chunks_processed"], 0, "{s}");
        assert_eq!(s["load"]["rows"], 0, "{s}");
    }

    /// Every journal commits every chunk of its table once.
    fn assert_each_chunk_committed_once(&self) {
        for (table, ..) in TABLES {
            let entry = dumps::entry(&self.processed(), &self.db, table);
            let table_dir = self.processed().join(&entry.dir);
            let journals: Vec<PathBuf> = std::fs::read_dir(&table_dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("load@")
                })
                .collect();
            assert_eq!(journals.len(), 1, "{table}: {journals:?}");
            let mut committed = std::collections::BTreeMap::<u64, u32>::new();
            for line in std::fs::read_to_string(&journals[0]).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                if v["event"] == "committed" {
                    *committed.entry(v["chunk"].as_u64().unwrap()).or_default() += 1;
                }
            }
            let chunks = dumps::description(&self.processed(), &self.db, table)
                .chunks
                .len() as u64;
            let expected: std::collections::BTreeMap<u64, u32> =
                (1..=chunks).map(|c| (c, 1)).collect();
            assert_eq!(committed, expected, "{table}: committed lines per chunk");
        }
    }
}

fn status_json(dir: &Path) -> serde_json::Value {
    let out = myspool(&["status", "--dir", &path_arg(dir), "--json"]);
    assert_success(&out);
    json(&out)
}

/// Round 0: a copy without a kill, timed.
fn measure(job: &Job, expected: &Expected) -> Timing {
    let (mut first_commit, mut all_committed) = (None, None);
    let mut chunks = 0;
    let ended = job.run(|elapsed| {
        let n = job.committed();
        if n > 0 && first_commit.is_none() {
            first_commit = Some(elapsed);
        }
        if n > chunks {
            chunks = n;
            all_committed = Some(elapsed);
        }
        false
    });
    let Ended::Exited(total, _) = &ended else {
        unreachable!()
    };
    let total = *total;
    job.assert_finished(0, 1, ended);
    job.check(expected);
    job.dst.query(&format!("DROP DATABASE `{}`", job.into));
    Timing {
        total,
        first_commit: first_commit.expect("no chunk committed"),
        all_committed: all_committed.unwrap(),
        chunks: job.committed(),
    }
}

/// Found by the soak: a load killed while its control connection puts
/// AUTO_INCREMENT back leaves that ALTER running on the server (it rebuilds
/// the table), and the server keeps the session, and the table's named lock,
/// until the statement ends. The rerun refused at once ("another myspool
/// load is loading into …; wait for it to finish") although none was. It
/// now waits for the statement, then finishes. Here a transaction of the
/// test holds the table's metadata lock, so the ALTER waits as long as the
/// test needs, whatever the machine's speed.
#[test]
fn a_rerun_waits_for_the_alter_a_killed_load_left_running_then_finishes() {
    let src = source_server();
    let dst = target_server();
    let (db, dir) = autoinc_table(&src, "orphanalter");
    let into = dst.fresh_db("orphanalter");
    let args = load_args(
        dir.path(),
        &dst,
        &["--into", &into, "--autoinc", "drop", "--jobs", "1"],
    );
    let sessions = |like: &str| {
        count(
            &dst,
            &format!(
                "information_schema.PROCESSLIST WHERE COMMAND IN ('Query', 'Execute') AND INFO LIKE '{like}'"
            ),
        )
    };
    let restoring = format!("ALTER TABLE `{into}`.`t` MODIFY%AUTO_INCREMENT%");
    let mut reader = dst.conn();
    let mut load = spawn_myspool(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "30")]);
    wait_until(Duration::from_secs(30), "a first chunk committed", || {
        count_in_files(dir.path(), "load@", "\"committed\"") > 0
    });
    // A metadata lock that the rebuild must wait for at its end.
    mysql::prelude::Queryable::query_drop(
        &mut reader,
        format!("START TRANSACTION; SELECT COUNT(*) FROM `{into}`.t"),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the ALTER putting AUTO_INCREMENT back",
        || sessions(&restoring) > 0,
    );
    load.kill().unwrap();
    load.wait().unwrap();
    assert_eq!(sessions(&restoring), 1, "the killed load's ALTER goes on");

    let mut rerun = spawn_myspool(&args, &[]);
    wait_until(
        Duration::from_secs(30),
        "the rerun waiting for the lock",
        || {
            if let Some(status) = rerun.try_wait().unwrap() {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(rerun.stderr.as_mut().unwrap(), &mut err);
                panic!("the rerun ended while the killed load's ALTER ran ({status}): {err}");
            }
            sessions("SELECT GET_LOCK(%") > 0
        },
    );
    mysql::prelude::Queryable::query_drop(&mut reader, "COMMIT").unwrap();
    let out = rerun.wait_with_output().unwrap();
    assert_success(&out);
    assert!(
        stderr(&out).contains("waiting for the lock on"),
        "{}",
        stderr(&out)
    );
    assert_same_table(&src, &db, &dst, &into, "t", "id");
    assert!(show_create(&dst, &into, "t").contains("AUTO_INCREMENT"));
}

/// Found by the soak, whose report after each kill comes from `status`:
/// `status` of the processed dump of a killed `copy` said nothing of the
/// load (AUTO_INCREMENT removed, indexes dropped, chunks committed or in
/// doubt) for a table still being processed, although `copy` loads a table
/// while it is processed. Here the last chunk's processing waits until the
/// load has removed AUTO_INCREMENT and the indexes, and the copy is killed.
#[test]
fn status_of_a_killed_copy_shows_the_load_of_a_table_still_being_processed() {
    let server = Server::shared(&["--innodb-autoinc-lock-mode=2"]);
    let db = db_with(
        &server,
        "soakstatus",
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10), KEY (v));
         INSERT INTO t SELECT seq, seq FROM seq_1_to_600;",
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("job");
    let d = path_arg(&dir);
    // The chunk holding id 600 waits (up to 20 s) for the journal to say
    // the indexes are being dropped (after AUTO_INCREMENT).
    let exec = format!(
        r#"input=$(cat)
case "$input" in *'"600"'*)
  for i in $(seq 200); do grep -qs indexes_dropping {d}/processed/*/*/load@*.jsonl && break; sleep 0.1; done ;;
esac
printf '%s\n' "$input""#
    );
    let into = format!("{db}_copy");
    let args: Vec<String> = [
        "copy",
        "--from",
        &server.url(),
        "--to",
        &server.url(),
        "--table",
        &format!("{db}.t"),
        "--dir",
        &d,
        "--exec",
        &exec,
        "--chunk-rows",
        "100",
        "--autoinc",
        "drop",
        "--defer-indexes",
        "--into",
        &into,
    ]
    .map(String::from)
    .to_vec();
    let killed = kill_9_when(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "30")], || {
        count_in_files(&dir, "load@", "indexes_dropping") > 0
    });
    assert!(killed, "the copy ended before the kill");
    let out = myspool(&["status", "--dir", &format!("{d}/processed"), "--json"]);
    assert_success(&out);
    let s = json(&out);
    let t = &s["tables"][0];
    assert!(
        t["exported"].as_u64().unwrap() < 6,
        "still being processed: {t}"
    );
    let load = &t["loaded"][0];
    assert_eq!(load["database"], into.as_str(), "{t}");
    assert_eq!(load["autoinc_removed"], true, "{t}");
    assert_eq!(load["indexes_dropped"], true, "{t}");
    assert_eq!(load["complete"], false, "{t}");
    assert_success(&myspool(&args));
    assert_t_copied(&server, &db, &into);
}

/// Found by the soak (a copy killed 51 ms in): a processing killed while
/// it wrote its first manifest leaves `--out` holding the lock file and the
/// manifest's temporary file, and the rerun refused: "--out … is not empty
/// and holds no myspool manifest". An export killed between its
/// `<db>/database.sql` and its manifest would have been refused the same
/// way. Here is that directory, as the killed copy left it.
#[test]
fn a_rerun_resumes_into_the_directory_a_run_killed_before_its_manifest_left() {
    let src = source_server();
    let (db, dir) = dumped_db(
        &src,
        "nomanifest",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t SELECT seq, seq FROM seq_1_to_300;",
        "t",
        100,
    );
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("processed");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join(".myspool.lock"), "").unwrap();
    std::fs::write(out.join(".tmp-qTZ7O6"), "").unwrap();
    let processed = myspool(&[
        "process",
        "--dir",
        &path_arg(dir.path()),
        "--out",
        &path_arg(&out),
        "--exec",
        "cat",
    ]);
    assert_success(&processed);
    assert_eq!(dumps::table_rows(&out, &db, "t").len(), 300);

    let export = work.path().join("export");
    std::fs::create_dir_all(export.join(&db)).unwrap();
    std::fs::write(export.join(".myspool.lock"), "").unwrap();
    std::fs::write(export.join(&db).join("database.sql"), "").unwrap();
    std::fs::write(export.join(".tmp-x1"), "").unwrap();
    let exported = myspool(&export_args(&src, &format!("{db}.t"), &export, &[]));
    assert_success(&exported);
    assert_eq!(dumps::table_rows(&export, &db, "t").len(), 300);
}
