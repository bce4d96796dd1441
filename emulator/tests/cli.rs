//! The `wps-emulator` binary: first stdout line, usage, clean shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn first_line_is_the_connection_string_and_sigterm_exits_0() {
    first_line_then_signal("-TERM");
}

#[test]
fn sigint_exits_0() {
    first_line_then_signal("-INT");
}

fn first_line_then_signal(signal: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wps-emulator"))
        .args([
            "--port",
            "0",
            "--access-key",
            "cli-test-key-0123456789abcdefghijklmnop",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wps-emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let line = line.trim_end();
    let rest = line.strip_prefix("Endpoint=http://127.0.0.1:").expect(line);
    let (port, tail) = rest.split_once(';').unwrap();
    assert!(port.parse::<u16>().unwrap() > 0);
    assert_eq!(
        tail,
        "AccessKey=cli-test-key-0123456789abcdefghijklmnop;Version=1.0;"
    );
    // The port really listens.
    std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).expect("listening");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn help_and_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_wps-emulator"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--upstream"));
    let out = Command::new(env!("CARGO_BIN_EXE_wps-emulator"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn tls_options_are_checked() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wps-emulator"))
            .args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // The key without the certificate (or the client CA alone) is a usage error.
    for args in [&["--tls-key", "k.pem"][..], &["--tls-client-ca", "ca.pem"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert and --tls-key"));
    }
    // Files that cannot be read: exit 1, naming the file.
    let out = run(&[
        "--tls-cert",
        "/nonexistent/wps-cert.pem",
        "--tls-key",
        "/nonexistent/wps-key.pem",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/wps-cert.pem"), "{err}");
}
