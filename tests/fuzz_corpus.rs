//! Replays the stored fuzz corpus (`fuzz/corpus/<target>/*`) through the very drivers the cargo-fuzz
//! targets run (`fuzz/src/drivers.rs`, included below), so every input that once found a bug, and
//! the coverage-minimised corpus of the last long fuzz run, are checked by a plain `cargo test` on
//! stable, without nightly or libFuzzer.

#[path = "../fuzz/src/drivers.rs"]
#[allow(dead_code)]
mod drivers;

use std::fs;
use std::path::Path;

const TARGETS: &[&str] = &["session", "server_error", "cookies", "auth"];

fn replay(target: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let run = drivers::by_name(target).expect("known target");
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus folder {} missing: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in &entries {
        let data = fs::read(path).expect("readable corpus file");
        let outcome = std::panic::catch_unwind(|| run(&data));
        if outcome.is_err() {
            panic!("fuzz corpus input {} fails target {target}", path.display());
        }
    }
    entries.len()
}

#[test]
fn every_target_has_a_corpus() {
    for t in TARGETS {
        assert!(drivers::by_name(t).is_some());
        let n = replay(t);
        assert!(n >= 5, "corpus of {t} has only {n} inputs");
    }
}

#[test]
fn corpus_session() {
    replay("session");
}

#[test]
fn corpus_server_error() {
    replay("server_error");
}

#[test]
fn corpus_cookies() {
    replay("cookies");
}

#[test]
fn corpus_auth() {
    replay("auth");
}

/// The JSON checker the drivers use to validate request bodies must itself be right.
#[test]
fn json_checker() {
    for ok in [
        r#"[{"a":"b\u00e9\n","c":[1,-2.5e3,true,false,null]}]"#,
        "[]",
        "{}",
        "0",
        r#""\"""#,
    ] {
        assert!(drivers::is_valid_json(ok), "{ok}");
    }
    for bad in [
        r#"[{"a":"b"}"#,
        "[1,]",
        "{\"a\"}",
        "\"\u{1}\"",
        r#""\x""#,
        "01",
        "[1] 2",
        "",
        "-",
        "1.",
    ] {
        assert!(!drivers::is_valid_json(bad), "{bad}");
    }
}

/// Found by the `session` target: a connect reply whose `advice.interval` is huge (a hostile
/// `1e300` arrives from JS as `u64::MAX`) overflowed `now + interval` (a panic in debug builds,
/// a wrap-around to an immediate re-connect in release). The deadline must saturate instead.
#[test]
fn regression_huge_advice_interval_saturates() {
    use sfstream::proto::{Advice, BatchBuf, Config, MetaBuf, Reconnect, RequestKind, Session};
    let mut s = Session::new(Config::default());
    let now = 1_000;
    s.open(now).unwrap();
    let hs = s.poll_transmit(now).expect("handshake");
    assert_eq!(hs.kind, RequestKind::Handshake);
    let mut b = BatchBuf::new();
    b.push_meta(MetaBuf {
        channel: "/meta/handshake".into(),
        successful: Some(true),
        client_id: Some("c1".into()),
        supported_connection_types_has_long_polling: Some(true),
        ..Default::default()
    });
    s.handle_response_buf(now, hs.id, 200, &b);
    let first = s.poll_transmit(now).expect("first connect");
    assert_eq!(first.kind, RequestKind::Connect);
    let mut b = BatchBuf::new();
    b.push_meta(MetaBuf {
        channel: "/meta/connect".into(),
        successful: Some(true),
        advice: Some(Advice {
            reconnect: Some(Reconnect::Retry),
            interval: Some(u64::MAX),
            timeout: Some(110_000),
            multiple_clients: false,
        }),
        ..Default::default()
    });
    s.handle_response_buf(now, first.id, 200, &b);
    while s.poll_event().is_some() {}
    assert!(s.poll_transmit(now).is_none(), "no immediate re-connect");
    assert_eq!(
        s.poll_timeout(),
        Some(u64::MAX),
        "the next connect waits as advised (saturated)"
    );
}
