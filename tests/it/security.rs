//! A rogue server must not read client files through LOAD DATA LOCAL.
//!
//! A man-in-the-middle proxy in front of a real server rewrites the server's
//! LOCAL INFILE request (the `0xFB` packet that answers `LOAD DATA LOCAL`)
//! to ask for a secret file of the client's instead of the chunk. myspool must
//! send nothing of it, fail the chunk, and say why.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::common::*;

/// Reads one MySQL packet: 3-byte little-endian length, sequence id, payload.
fn read_packet(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).ok()?;
    Some((header[3], payload))
}

fn write_packet(s: &mut TcpStream, seq: u8, payload: &[u8]) -> std::io::Result<()> {
    let len = payload.len() as u32;
    let mut frame = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
    frame.extend_from_slice(payload);
    s.write_all(&frame)
}

/// Starts the proxy to `upstream`; returns its port. Everything the client
/// sends is appended to `from_client`.
fn rogue_proxy(upstream: u16, wanted: String, from_client: Arc<Mutex<Vec<u8>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                return;
            };
            let load_pending = Arc::new(AtomicBool::new(false));
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (flag, log) = (load_pending.clone(), from_client.clone());
            // client → server: remember when a LOAD DATA goes by.
            thread::spawn(move || {
                while let Some((seq, payload)) = read_packet(&mut c_in) {
                    log.lock().unwrap().extend_from_slice(&payload);
                    if payload.first() == Some(&0x03) && payload[1..].starts_with(b"LOAD DATA") {
                        flag.store(true, Ordering::SeqCst);
                    }
                    if write_packet(&mut s_out, seq, &payload).is_err() {
                        return;
                    }
                }
                let _ = s_out.shutdown(std::net::Shutdown::Both);
            });
            // server → client: swap the file the server asks for.
            let wanted = wanted.clone();
            thread::spawn(move || {
                while let Some((seq, mut payload)) = read_packet(&mut server) {
                    if load_pending.swap(false, Ordering::SeqCst) && payload.first() == Some(&0xFB)
                    {
                        payload = [&[0xFBu8][..], wanted.as_bytes()].concat();
                    }
                    if write_packet(&mut client, seq, &payload).is_err() {
                        return;
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

#[test]
fn a_rogue_server_asking_for_another_file_gets_nothing() {
    let server = Server::shared(&[]);
    let db = db_with(
        &server,
        "rogue",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_50;",
    );
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("dump");
    run_export(&export_options(&server, &[&format!("{db}.t")], &dump));

    let secret = work.path().join("id_rsa");
    std::fs::write(&secret, "TOP-SECRET-KEY-MATERIAL").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = rogue_proxy(server.port(), secret.display().to_string(), seen.clone());
    let into = server.fresh_db("rogue_into");
    let out = myspool(&[
        "load",
        "--dir",
        &path_arg(&dump),
        "--to",
        &format!("mysql://root@127.0.0.1:{port}"),
        "--into",
        &into,
        "--jobs",
        "1",
    ]);
    let err = stderr(&out);
    assert!(!out.status.success(), "the load went on: {err}");
    assert!(
        err.contains("asked for local file") && err.contains("id_rsa") && err.contains("refused"),
        "{err}"
    );
    let sent = seen.lock().unwrap().clone();
    assert!(!sent.is_empty(), "the proxy saw no traffic");
    assert!(
        !sent
            .windows(b"TOP-SECRET".len())
            .any(|w| w == b"TOP-SECRET"),
        "the secret reached the server"
    );
    // Nothing was committed.
    assert_eq!(
        server
            .scalar(&format!("SELECT COUNT(*) FROM `{into}`.t"))
            .as_deref(),
        Some("0")
    );
}

/// The password never shows: not in output, errors, --json, the dump, the
/// journals, nor in the process arguments when it comes from MYSQL_PWD.
#[test]
fn passwords_appear_nowhere() {
    let server = Server::shared(&[]);
    let db = server.fresh_db("pw");
    let password = "Pa55-LEAK-CHECK";
    server.query(&format!(
        "USE `{db}`; CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_20;
         CREATE USER 'pw_{db}'@'%' IDENTIFIED BY '{password}'; GRANT ALL ON *.* TO 'pw_{db}'@'%';"
    ));
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("dump").display().to_string();
    let with_pw = format!("mysql://pw_{db}:{password}@127.0.0.1:{}", server.port());
    let without_pw = format!("mysql://pw_{db}@127.0.0.1:{}", server.port());
    let wrong = format!(
        "mysql://pw_{db}:{password}-wrong@127.0.0.1:{}",
        server.port()
    );
    let table = format!("{db}.t");
    let into = format!("{db}_copy");
    let runs: Vec<(Vec<&str>, Option<&str>, bool)> = vec![
        (
            vec![
                "export", "--from", &with_pw, "--table", &table, "--dir", &dump, "--json",
            ],
            None,
            true,
        ),
        (
            vec![
                "load",
                "--dir",
                &dump,
                "--to",
                &without_pw,
                "--into",
                &into,
                "--json",
            ],
            Some(password),
            true,
        ),
        (
            vec![
                "verify", "--dir", &dump, "--to", &with_pw, "--into", &into, "--json",
            ],
            None,
            true,
        ),
        (vec!["status", "--dir", &dump, "--json"], None, true),
        (
            vec!["load", "--dir", &dump, "--to", &wrong, "--into", &into],
            None,
            false,
        ),
        (
            vec![
                "export",
                "--from",
                &wrong,
                "--table",
                &table,
                "--dir",
                "/nonexistent/x",
            ],
            None,
            false,
        ),
        (
            vec!["check", "--to", &wrong, "--table", &table],
            None,
            false,
        ),
    ];
    for (args, env_pw, ok) in runs {
        let mut env = vec![("MYSPOOL_PROGRESS_INTERVAL", "0.01")];
        if let Some(p) = env_pw {
            env.push(("MYSQL_PWD", p));
        }
        let out = myspool_env(&args, &env);
        assert_eq!(out.status.success(), ok, "{args:?}: {}", stderr(&out));
        for text in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(text);
            assert!(
                !text.contains(password),
                "{args:?} printed the password: {text}"
            );
        }
    }
    // Nor any file of the dump (manifest, table.json, journals).
    let mut stack = vec![work.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_none_or(|x| x != "gz") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                assert!(
                    !text.contains(password),
                    "{} holds the password",
                    p.display()
                );
            }
        }
    }
}
