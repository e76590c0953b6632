//! The command line: first start, users, keys, the `--db` option and its variable.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const EXE: &str = env!("CARGO_BIN_EXE_promptledger");

#[test]
fn first_admin_and_key_from_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");

    // `serve` on an empty database says how to get in.
    let mut serve = Command::new(EXE)
        .arg("--db")
        .arg(&db)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    serve.kill().unwrap();
    let out = serve.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("user add admin --role admin"), "{stderr}");

    // user add with the password on standard input; --db after the subcommand.
    let mut add = Command::new(EXE)
        .args(["user", "add", "alice", "--role", "admin", "--password-stdin", "--db"])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"a long secret\n").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "added alice (admin)");

    // The key is the last line of standard output; PROMPTLEDGER_DB works too.
    let out = Command::new(EXE)
        .env("PROMPTLEDGER_DB", &db)
        .args(["apikey", "create", "--name", "ci", "--scope", "write", "--user", "alice"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap();
    assert!(key.starts_with("pl_") && key.len() == 67, "{stdout}");

    // The secrets are nowhere in the database file.
    let bytes = std::fs::read(&db).unwrap();
    let wal = std::fs::read(dir.path().join("fresh.db-wal")).unwrap_or_default();
    for secret in [key.as_bytes(), b"a long secret".as_slice()] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret), "secret stored in clear");
        assert!(!wal.windows(secret.len()).any(|w| w == secret), "secret stored in clear in the WAL");
    }

    // A duplicate, an unknown user and a bad role are refused with exit status 2 or a usage error.
    let dup =
        Command::new(EXE).arg("--db").arg(&db).args(["user", "add", "alice", "--role", "viewer"]).output().unwrap();
    assert_eq!(dup.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let nobody = Command::new(EXE)
        .arg("--db")
        .arg(&db)
        .args(["apikey", "create", "--name", "x", "--scope", "read", "--user", "bob"])
        .output()
        .unwrap();
    assert_eq!(nobody.status.code(), Some(2));
    let role =
        Command::new(EXE).arg("--db").arg(&db).args(["user", "add", "carol", "--role", "root"]).output().unwrap();
    assert!(!role.status.success());

    let verify = Command::new(EXE).arg("--db").arg(&db).args(["audit", "verify"]).output().unwrap();
    assert_eq!(verify.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&verify.stdout).starts_with("intact: 2 events"));
}
