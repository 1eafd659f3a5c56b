//! Network trouble: a TCP proxy that stops forwarding mid-statement (a cut
//! cable, a dead NAT entry). With `read_timeout` in the URL myspool gives up
//! on the silent connection instead of hanging, reconnects and finishes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

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
    let (db, dump) = dumped_db(
        &server,
        "cut",
        "CREATE TABLE t (id INT PRIMARY KEY, s CHAR(50)); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_2000;",
        "t",
        200,
    );

    let proxy = Proxy::start(server.port());
    let into = format!("{db}_copy");
    let url = format!(
        "mysql://root@127.0.0.1:{}?read_timeout=2&write_timeout=2",
        proxy.port
    );
    let started = Instant::now();
    let child = spawn_myspool(
        &[
            "load",
            "--dir",
            &path_arg(dump.path()),
            "--to",
            &url,
            "--into",
            &into,
            "--jobs",
            "2",
            "--json",
        ],
        &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "100")],
    );
    // Cut every connection once a few chunks are in.
    let journal_dir = dump.path().join(&db).join("t");
    wait_until(Duration::from_secs(30), "2 chunks committed", || {
        count_in_files(&journal_dir, "load@", "\"committed\"") >= 2
    });
    proxy.cut_all();
    let out = child.wait_with_output().unwrap();
    assert_success(&out);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let summary = json(&out);
    assert!(summary["retries"].as_u64().unwrap() >= 1, "{summary}");
    assert_t_copied(&server, &db, &into);
}

#[test]
fn an_export_cut_off_fails_within_its_timeout_and_a_rerun_finishes() {
    let server = Server::shared(&[]);
    let db = db_with(
        &server,
        "cutexp",
        "CREATE TABLE t (id INT PRIMARY KEY, s CHAR(200)); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_20000;",
    );
    let proxy = Proxy::start(server.port());
    let work = tempfile::tempdir().unwrap();
    let dump = path_arg(&work.path().join("dump"));
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
    let child = spawn_myspool(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "100")]);
    let log = std::path::Path::new(&dump).join(&db).join("t");
    wait_until(Duration::from_secs(30), "a first chunk exported", || {
        count_in_files(&log, "export.log", "sha256") >= 1
    });
    proxy.cut_all();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
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
    assert_success(&myspool(&args));
}
