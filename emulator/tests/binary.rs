//! The binary prints the listening line on stdout with the real port and exits 0 on SIGTERM/SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn run_and_signal(signal: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfemu"))
        .args(["--port", "0", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    let line = line.trim_end().to_string();
    let port: u16 = line
        .strip_prefix("sfemu listening on http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    assert!(port > 0);
    // It accepts connections right away.
    let stream = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(stream.is_ok());
    drop(stream);
    let st = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    assert!(st.is_ok_and(|s| s.success()));
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "exit status {status:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("sfemu did not exit on {signal}");
}

#[test]
fn prints_listening_line_and_exits_on_sigterm() {
    run_and_signal("-TERM");
}

#[test]
fn exits_on_sigint() {
    run_and_signal("-INT");
}
