//! Network trouble: a TCP proxy that stops forwarding mid-statement (a cut
//! cable, a dead NAT entry). With `read_timeout` in the URL myspool gives up
//! on the silent connection instead of hanging, reconnects and finishes.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{myspool_bin, Server};
use myspool::export::{export, ExportOptions};
use myspool::progress::ProgressMode;
use myspool::ConnSpec;

/// A proxy whose connections all go silent (forward nothing, close nothing)
/// once `cut` is raised past their number: connections opened after the cut
/// work normally.
struct Proxy {
    port: u16,
    /// Connections numbered below this value are cut.
    cut_below: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut_below = Arc::new(AtomicUsize::new(0));
        let opened = Arc::new(AtomicUsize::new(0));
        let (cut, count) = (cut_below.clone(), opened.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let number = count.fetch_add(1, Ordering::SeqCst);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let cut = cut.clone();
                    thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if number < cut.load(Ordering::SeqCst) {
                                // Silence: swallow everything, keep the socket open.
                                continue;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            port,
            cut_below,
            opened,
        }
    }

    /// Every connection opened so far goes silent.
    fn cut_all(&self) {
        self.cut_below
            .store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

#[test]
fn a_load_cut_off_mid_statement_times_out_reconnects_and_finishes() {
    let server = Server::shared(&["--innodb-autoinc-lock-mode=2"]);
    let db = server.fresh_db("cut");
    server.query(&format!(
        "USE `{db}`; CREATE TABLE t (id INT PRIMARY KEY, s CHAR(50)); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_2000;"
    ));
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("dump");
    let mut opts = ExportOptions::new(
        ConnSpec::parse(&server.url()).unwrap(),
        vec![format!("{db}.t")],
        &dump,
    );
    opts.chunk_rows = Some(200);
    opts.progress = ProgressMode::Quiet;
    export(&opts).unwrap();

    let proxy = Proxy::start(server.port());
    let into = format!("{db}_copy");
    let url = format!(
        "mysql://root@127.0.0.1:{}?read_timeout=2&write_timeout=2",
        proxy.port
    );
    let started = Instant::now();
    let child = std::process::Command::new(myspool_bin())
        .args([
            "load",
            "--dir",
            &dump.display().to_string(),
            "--to",
            &url,
            "--into",
            &into,
            "--jobs",
            "2",
            "--json",
        ])
        .env("MYSPOOL_TEST_CHUNK_DELAY_MS", "100")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Cut every connection once a few chunks are in.
    let journal_dir = dump.join(&db).join("t");
    while common::count_in_files(&journal_dir, "load@", "\"committed\"") < 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
        thread::sleep(Duration::from_millis(5));
    }
    proxy.cut_all();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["retries"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(
        server.query_strings(&format!("SELECT * FROM `{into}`.t ORDER BY id")),
        server.query_strings(&format!("SELECT * FROM `{db}`.t ORDER BY id"))
    );
}

#[test]
fn an_export_cut_off_fails_within_its_timeout_and_a_rerun_finishes() {
    let server = Server::shared(&[]);
    let db = server.fresh_db("cutexp");
    server.query(&format!(
        "USE `{db}`; CREATE TABLE t (id INT PRIMARY KEY, s CHAR(200)); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_20000;"
    ));
    let proxy = Proxy::start(server.port());
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("dump").display().to_string();
    let url = format!("mysql://root@127.0.0.1:{}?read_timeout=2", proxy.port);
    let table = format!("{db}.t");
    let args = [
        "export",
        "--from",
        &url,
        "--table",
        &table,
        "--dir",
        &dump,
        "--chunk-rows",
        "1000",
        "--jobs",
        "1",
    ];
    let started = Instant::now();
    let child = std::process::Command::new(myspool_bin())
        .args(args)
        .env("MYSPOOL_TEST_CHUNK_DELAY_MS", "100")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = std::path::Path::new(&dump).join(&db).join("t");
    while common::count_in_files(&log, "export.log", "sha256") < 1 {
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
        thread::sleep(Duration::from_millis(5));
    }
    proxy.cut_all();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the export went on through a dead link?"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "hung for {:?}",
        started.elapsed()
    );
    assert!(err.contains("exporting chunk"), "{err}");
    // The link is back (new connections pass): the rerun finishes.
    let out = std::process::Command::new(myspool_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
