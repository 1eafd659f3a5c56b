//! TLS against a mariadbd started with a certificate this test generates
//! (and then `require_secure_transport`, so a plain connection is refused:
//! a success proves TLS was used).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A CA and a server certificate for 127.0.0.1 / localhost, made with openssl.
struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed");
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

fn make_certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for ca in ["ca", "other-ca"] {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=myspool test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{ca}-key.pem"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    // mariadbd runs as root here, but keep the key readable anyway.
    Certs {
        ca: d.join("ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server-key.pem"),
        other_ca: d.join("other-ca.pem"),
        _dir: dir,
    }
}

/// `myspool export` of `table` from `url` into a throwaway directory.
fn export_with(url: &str, table: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let d = path_arg(&dir.path().join("d"));
    myspool(&["export", "--from", url, "--table", table, "--dir", &d])
}

#[test]
fn ssl_modes_against_a_server_with_a_certificate() {
    let certs = make_certs();
    let server = Server::start(&[
        &format!("--ssl-ca={}", certs.ca.display()),
        &format!("--ssl-cert={}", certs.cert.display()),
        &format!("--ssl-key={}", certs.key.display()),
    ]);
    // From now on plain TCP is refused (the harness connected before).
    server.query(
        "CREATE DATABASE tls; CREATE TABLE tls.t (id INT PRIMARY KEY); INSERT INTO tls.t VALUES (1), (2);
         SET GLOBAL require_secure_transport = ON;",
    );
    let base = format!("mysql://root@127.0.0.1:{}", server.port());
    let ca = certs.ca.display().to_string();
    let other = certs.other_ca.display().to_string();
    for (query, ok, expect) in [
        ("ssl-mode=required".to_string(), true, ""),
        ("ssl-mode=preferred".to_string(), true, ""),
        (format!("ssl-mode=verify-ca&ssl-ca={ca}"), true, ""),
        (format!("ssl-mode=verify-identity&ssl-ca={ca}"), true, ""),
        (
            format!("ssl-mode=verify-ca&ssl-ca={other}"),
            false,
            "certificate",
        ),
        // MariaDB answers a plain connection under require_secure_transport
        // with "Access denied" (1045).
        ("ssl-mode=disabled".to_string(), false, "denied"),
        (
            "ssl-mode=sometimes".to_string(),
            false,
            "expected disabled, preferred",
        ),
        (
            "ssl-mode=verify-ca&ssl-ca=/no/such/ca.pem".to_string(),
            false,
            "ssl-ca=/no/such/ca.pem: no such file",
        ),
    ] {
        let out = export_with(&format!("{base}/?{query}"), "tls.t");
        let err = stderr(&out);
        assert_eq!(out.status.success(), ok, "{query}: {err}");
        assert!(
            err.to_lowercase().contains(&expect.to_lowercase()),
            "{query}: expected {expect:?} in {err}"
        );
        if !ok {
            assert_eq!(err.trim_end().lines().count(), 1, "{query}: {err}");
        }
    }
}

#[test]
fn required_fails_clearly_against_a_server_without_tls() {
    let server = Server::shared(&[]);
    let db = db_with(&server, "notls", "CREATE TABLE t (id INT PRIMARY KEY)");
    let table = format!("{db}.t");
    let out = export_with(&format!("{}/?ssl-mode=required", server.url()), &table);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("does not offer TLS"), "{err}");
    // preferred (the default) falls back to plain TCP.
    let out = export_with(&format!("{}/?ssl-mode=preferred", server.url()), &table);
    assert_success(&out);
}
