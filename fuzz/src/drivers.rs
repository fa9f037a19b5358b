//! Fuzz drivers: each takes arbitrary bytes, turns them into inputs of one part of the sans-IO
//! core, and asserts properties that must hold for *any* input (no panic is implied).
//!
//! This file has no dependency besides `sfstream` on purpose: it is compiled both into the
//! cargo-fuzz crate (`fuzz/`, nightly) and into the stable integration test
//! `tests/fuzz_corpus.rs`, which replays every stored corpus file through these same functions.
//!
//! Memory is bounded by libFuzzer's `-rss_limit_mb`/`-malloc_limit_mb` in the bench run and, here,
//! by explicit accounting: the core's prefetch buffer must grow by exactly the deliveries it
//! hands out and shrink by exactly what is consumed; the cookie jar must respect its caps; the
//! request and event queues must drain within fixed bounds after every input.

use std::collections::HashSet;

use sfstream::auth::{self, TokenFields};
use sfstream::proto::{
    self, Advice, BatchBuf, Config, CookieJar, Event, MetaBuf, MsgBuf, OpId, Reconnect,
    ReplayMarker, Request, RequestId, RequestKind, ServerError, Session, TransportFailure,
    MAX_COOKIES, MAX_COOKIE_LEN,
};

// ------------------------------------------------------------------------------------------------
// input decoding
// ------------------------------------------------------------------------------------------------

/// A cursor over the fuzz input; reads past the end yield zeros, so every input is usable.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// Wrap `data`.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data, pos: 0 }
    }
    /// True when every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    /// Two bytes, little endian.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }
    /// Four bytes, little endian.
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }
    /// Eight bytes, little endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    /// A boolean.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    /// An index below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n
    }
    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    /// Raw text: a length byte, then that many bytes read as (lossy) UTF-8.
    pub fn raw_str(&mut self, max: usize) -> String {
        let n = self.below(max + 1);
        let end = (self.pos + n).min(self.data.len());
        let start = self.pos.min(end);
        self.pos += n;
        String::from_utf8_lossy(&self.data[start..end]).into_owned()
    }
    /// Mostly a string from `dict`, sometimes raw bytes: interesting values come often, odd ones too.
    pub fn text(&mut self, dict: &[&str], max: usize) -> String {
        if self.u8() < 200 {
            self.pick(dict).to_string()
        } else {
            self.raw_str(max)
        }
    }
}

// ------------------------------------------------------------------------------------------------
// a small strict JSON checker (request bodies must always be valid JSON arrays)
// ------------------------------------------------------------------------------------------------

/// True when `s` is one valid JSON value (RFC 8259), nesting at most 64 deep.
pub fn is_valid_json(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if !json_value(b, &mut i, 0) {
        return false;
    }
    skip_ws(b, &mut i);
    i == b.len()
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
        *i += 1;
    }
}

fn json_value(b: &[u8], i: &mut usize, depth: u32) -> bool {
    if depth > 64 {
        return false;
    }
    skip_ws(b, i);
    match b.get(*i) {
        Some(b'{') => {
            *i += 1;
            skip_ws(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return true;
            }
            loop {
                skip_ws(b, i);
                if !json_string(b, i) {
                    return false;
                }
                skip_ws(b, i);
                if b.get(*i) != Some(&b':') {
                    return false;
                }
                *i += 1;
                if !json_value(b, i, depth + 1) {
                    return false;
                }
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return true;
                    }
                    _ => return false,
                }
            }
        }
        Some(b'[') => {
            *i += 1;
            skip_ws(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return true;
            }
            loop {
                if !json_value(b, i, depth + 1) {
                    return false;
                }
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return true;
                    }
                    _ => return false,
                }
            }
        }
        Some(b'"') => json_string(b, i),
        Some(b't') => lit(b, i, b"true"),
        Some(b'f') => lit(b, i, b"false"),
        Some(b'n') => lit(b, i, b"null"),
        Some(c) if *c == b'-' || c.is_ascii_digit() => json_number(b, i),
        _ => false,
    }
}

fn lit(b: &[u8], i: &mut usize, word: &[u8]) -> bool {
    if b[*i..].starts_with(word) {
        *i += word.len();
        true
    } else {
        false
    }
}

fn json_string(b: &[u8], i: &mut usize) -> bool {
    if b.get(*i) != Some(&b'"') {
        return false;
    }
    *i += 1;
    while let Some(&c) = b.get(*i) {
        *i += 1;
        match c {
            b'"' => return true,
            b'\\' => match b.get(*i) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => *i += 1,
                Some(b'u') => {
                    let hex = b.get(*i + 1..*i + 5);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return false;
                    }
                    *i += 5;
                }
                _ => return false,
            },
            c if c < 0x20 => return false,
            _ => {}
        }
    }
    false
}

fn json_number(b: &[u8], i: &mut usize) -> bool {
    if b.get(*i) == Some(&b'-') {
        *i += 1;
    }
    let digits = |b: &[u8], i: &mut usize| {
        let s = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > s
    };
    if b.get(*i) == Some(&b'0') {
        *i += 1;
    } else if !digits(b, i) {
        return false;
    }
    if b.get(*i) == Some(&b'.') {
        *i += 1;
        if !digits(b, i) {
            return false;
        }
    }
    if matches!(b.get(*i), Some(b'e' | b'E')) {
        *i += 1;
        if matches!(b.get(*i), Some(b'+' | b'-')) {
            *i += 1;
        }
        if !digits(b, i) {
            return false;
        }
    }
    true
}

// ------------------------------------------------------------------------------------------------
// session: arbitrary sequences of user operations and projected server batches
// ------------------------------------------------------------------------------------------------

const CHANNELS: &[&str] = &[
    "/topic/A",
    "/topic/A?Stage='Won'",
    "/event/E__e",
    "/u/notes",
    "/data/ChangeEvents",
    "/data/AccountChangeEvent",
    "/meta/connect",
    "/topic/\"quoted\\",
    "/event/\u{2028}x",
];
const META_CHANNELS: &[&str] = &[
    "/meta/handshake",
    "/meta/connect",
    "/meta/subscribe",
    "/meta/unsubscribe",
    "/meta/disconnect",
    "/u/notes",
    "/topic/A",
];
const ERRORS: &[&str] = &[
    "403::Unknown client",
    "401::Authentication invalid",
    "403::Handshake denied",
    "400::The replayId {5} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.",
    "400::The replayId for channel {/topic/A} wasn't found using the provided replay ID map {{/topic/B=-1}}",
    "400::Client abc has established a session, but no BAYEUX_BROWSER cookie present",
    "403::Client has not completed handshake",
    "503::Server is too busy",
    "400::The channel you requested to subscribe to does not exist {/topic/A}",
    "402:a,b,,c:Something: with colons",
    "403::Publish denied",
    "9999::x",
    "",
];
const FAILURE_REASONS: &[&str] = &[
    "401::Authentication invalid",
    "401::Request requires authentication",
    "403::Organization concurrent user limit exceeded",
    "503::Server is too busy",
    "SERVER_UNAVAILABLE",
    "x",
];
const CLIENT_IDS: &[&str] = &[
    "3b1o8yphfjyxj0cma0qenxxnf8a",
    "c2",
    "\"},{\"channel\":\"/meta/x",
    "\\\u{0}\n",
    "",
];
const DATA: &[&str] = &[
    "{}",
    "\"text\"",
    "{\"a\":[1,2,{\"b\":null}]}",
    "12",
    "[]",
    "  ",
];

/// The core's view of one fuzz session, plus what the driver tracks to check its contract.
struct Harness {
    s: Session,
    now: u64,
    /// Requests handed out and not answered yet (the core may have forgotten some).
    outstanding: Vec<(RequestId, RequestKind, String)>,
    /// Requests the core still tracks: at most one long-poll and one control request.
    live_connect: Option<RequestId>,
    live_control: Option<RequestId>,
    /// Operations returned to the application and not resolved yet (each resolves exactly once).
    pending_ops: HashSet<OpId>,
    /// Channel keys the application subscribed (markers may only be persisted for these).
    keys: HashSet<String>,
    opens: u32,
    /// `Closed` is emitted exactly once per open (or once for a close before any open).
    closed_since_open: bool,
    expect_closed: bool,
    need_auth: bool,
    /// How many requests one drain produced at most.
    max_burst: usize,
}

fn wall(now: u64) -> f64 {
    1.7e12 + now as f64
}

impl Harness {
    fn new(config: Config, now: u64) -> Harness {
        Harness {
            s: Session::new(config),
            now,
            outstanding: Vec::new(),
            live_connect: None,
            live_control: None,
            pending_ops: HashSet::new(),
            keys: HashSet::new(),
            opens: 0,
            closed_since_open: false,
            expect_closed: false,
            need_auth: false,
            max_burst: 0,
        }
    }

    /// Drain every output after an input, checking the calling contract; `batch_len` is the length
    /// of the batch just handled (deliveries must index into it), or None after other inputs.
    fn drain(&mut self, batch_len: Option<usize>) {
        let mut out = Vec::new();
        self.s.take_deliveries(&mut out);
        match batch_len {
            Some(n) => {
                for w in out.windows(2) {
                    assert!(w[0] < w[1], "deliveries not in batch order: {out:?}");
                }
                assert!(
                    out.iter().all(|&p| (p as usize) < n),
                    "delivery outside the batch: {out:?} / {n}"
                );
            }
            None => assert!(out.is_empty(), "deliveries without a response: {out:?}"),
        }

        let mut burst = 0;
        while let Some(req) = self.s.poll_transmit(self.now) {
            burst += 1;
            assert!(
                burst <= 8,
                "request storm: more than 8 requests from one input"
            );
            self.check_request(&req);
        }
        self.max_burst = self.max_burst.max(burst);

        let mut n_events = 0;
        while let Some(ev) = self.s.poll_event() {
            n_events += 1;
            assert!(n_events <= 10_000, "event queue does not drain");
            self.on_event(ev);
        }
        assert!(
            !self.expect_closed || self.s.is_closed(),
            "Failed/OpenFailed without Closed"
        );
        if self.s.is_closed() {
            assert!(
                self.pending_ops.is_empty(),
                "closed with unresolved operations {:?}",
                self.pending_ops
            );
            self.expect_closed = false;
        }
    }

    fn check_request(&mut self, req: &Request) {
        assert!(
            is_valid_json(&req.body),
            "request body is not valid JSON: {}",
            req.body
        );
        assert!(
            req.body.starts_with("[{") && req.body.ends_with("}]"),
            "not an array of messages: {}",
            req.body
        );
        // Long-polls get at least MIN_LONG_POLL_TIMEOUT, whatever the advice and the allowance.
        assert!(req.timeout > 0, "zero request timeout");
        if req.kind == RequestKind::Connect {
            assert!(
                req.timeout
                    >= sfstream::proto::MIN_LONG_POLL_TIMEOUT.min(self.s.config().request_timeout),
                "long-poll timeout below the minimum"
            );
        }
        let msg_id = msg_id_of(&req.body).unwrap_or_default();
        assert!(
            !msg_id.is_empty(),
            "request without a message id: {}",
            req.body
        );
        match req.kind {
            RequestKind::Connect => {
                assert!(self.live_connect.is_none(), "two long-polls in flight");
                assert!(req.body.starts_with(r#"[{"channel":"/meta/connect""#));
                self.live_connect = Some(req.id);
            }
            k => {
                assert!(
                    self.live_control.is_none(),
                    "two control requests in flight ({k:?})"
                );
                if k == RequestKind::Handshake {
                    assert!(req.body.starts_with(r#"[{"channel":"/meta/handshake""#));
                }
                self.live_control = Some(req.id);
            }
        }
        self.outstanding.push((req.id, req.kind, msg_id));
    }

    fn on_event(&mut self, ev: Event) {
        let _ = format!("{ev:?}");
        match ev {
            Event::AbortAll => self.live_connect = None,
            Event::Closed => {
                assert!(!self.closed_since_open, "Closed twice for one open");
                self.closed_since_open = true;
                self.live_connect = None;
                self.live_control = None;
                self.need_auth = false;
            }
            Event::Failed(e) | Event::OpenFailed(e) => {
                let _ = e.to_string();
                self.expect_closed = true;
            }
            Event::NeedAuth => self.need_auth = true,
            Event::OpDone { op, result } => {
                assert!(
                    self.pending_ops.remove(&op),
                    "operation {op:?} resolved twice or never issued"
                );
                if let Err(e) = result {
                    let _ = e.to_string();
                }
            }
            Event::PersistMarker { channel, marker } => {
                assert!(
                    self.keys.contains(&channel),
                    "marker persisted for a channel never subscribed: {channel}"
                );
                assert!(marker.replay_id != i64::MIN || marker.date_ms >= 0.0);
            }
            Event::ReplayFallback { channel, .. } => assert!(!channel.is_empty()),
            _ => {}
        }
    }

    /// Answer request `id` with a batch built from the input.
    fn respond(
        &mut self,
        u: &mut Input<'_>,
        id: RequestId,
        kind: Option<RequestKind>,
        msg_id: &str,
    ) {
        let status = match u.below(10) {
            0..=5 => 200,
            6 => u.pick(&[400, 401, 403, 408, 429]),
            7 => u.pick(&[500, 502, 503, 504]),
            8 => u.pick(&[0, 204, 302, 599, 999]),
            _ => u.u16(),
        };
        let mut b = BatchBuf::new();
        let n = match u.below(16) {
            0 => 0,
            1 => 200 + usize::from(u.u16() % 2000),
            _ => 1 + u.below(6),
        };
        let mut next_replay = i64::from(u.u8());
        for _ in 0..n {
            match u.below(8) {
                0..=3 => {
                    let ch = u.text(CHANNELS, 40);
                    let replay_id = match u.below(8) {
                        0 => None,
                        1 => Some(u.u64() as i64),
                        2 => Some(next_replay - i64::from(u.u8() % 4)),
                        _ => {
                            next_replay += 1 + i64::from(u.u8() % 3);
                            Some(next_replay)
                        }
                    };
                    let date_ms = match u.below(8) {
                        0 => None,
                        1 => Some(u.pick(&[f64::NAN, f64::INFINITY, -1.0, 0.0, 1e300, -1e300])),
                        2 => Some(wall(self.now) - 80.0 * 3_600_000.0),
                        _ => Some(wall(self.now) - f64::from(u.u16())),
                    };
                    if u.below(32) == 0 {
                        // A projection whose channel index is out of range.
                        b.messages.push(MsgBuf::Event {
                            channel: u.u32(),
                            replay_id,
                            date_ms,
                        });
                    } else {
                        b.push_event(&ch, replay_id, date_ms);
                    }
                }
                4 => b.push_other(),
                _ => b.push_meta(self.meta(u, kind, msg_id)),
            }
        }
        // Usually a proper reply to the request, somewhere in the batch.
        if u.below(4) != 0 {
            let m = self.meta(u, kind, msg_id);
            b.push_meta(m);
        }
        let len = b.messages.len();
        let before = self.s.pending_count();
        self.s.handle_response_buf(self.now, id, status, &b);
        let mut out = Vec::new();
        // Peek at the deliveries for the accounting check, then let drain() check them too.
        self.s.take_deliveries(&mut out);
        assert_eq!(
            self.s.pending_count(),
            before + out.len(),
            "prefetch accounting: buffer grew by other than the deliveries"
        );
        for w in out.windows(2) {
            assert!(w[0] < w[1], "deliveries not in batch order: {out:?}");
        }
        assert!(
            out.iter().all(|&p| (p as usize) < len),
            "delivery outside the batch"
        );
        self.forget(id);
        self.drain(Some(len));
    }

    fn meta(&mut self, u: &mut Input<'_>, kind: Option<RequestKind>, msg_id: &str) -> MetaBuf {
        let channel = match (kind, u.below(4)) {
            (Some(RequestKind::Publish), 0) => u.text(CHANNELS, 20),
            (Some(k), 0..=2) if k != RequestKind::Publish => format!("/meta/{}", k.as_str()),
            _ => u.text(META_CHANNELS, 20),
        };
        let successful = match u.below(5) {
            0 => None,
            1 | 2 => Some(false),
            _ => Some(true),
        };
        let error = if successful == Some(true) && u.below(4) != 0 {
            None
        } else {
            Some(u.text(ERRORS, 80))
        };
        let advice = if u.below(3) == 0 {
            None
        } else {
            let n = |u: &mut Input<'_>| match u.below(6) {
                0 => None,
                1 => Some(0),
                2 => Some(2000),
                3 => Some(u64::from(u.u32())),
                4 => Some(u64::MAX),
                _ => Some(u64::from(u.u16())),
            };
            Some(Advice {
                reconnect: match u.below(5) {
                    0 => Some(Reconnect::Retry),
                    1 => Some(Reconnect::Handshake),
                    2 => Some(Reconnect::None),
                    _ => Reconnect::from_wire(&u.raw_str(8)),
                },
                interval: n(u),
                timeout: n(u),
                multiple_clients: u.below(6) == 0,
            })
        };
        MetaBuf {
            channel,
            successful,
            error,
            client_id: if u.below(4) == 0 {
                None
            } else {
                Some(u.text(CLIENT_IDS, 40))
            },
            id: match u.below(6) {
                0 => None,
                1 => Some(u.raw_str(6)),
                _ => Some(msg_id.to_string()),
            },
            subscription: if u.bool() {
                Some(u.text(CHANNELS, 20))
            } else {
                None
            },
            advice,
            failure_reason: if u.below(4) == 0 {
                Some(u.text(FAILURE_REASONS, 40))
            } else {
                None
            },
            supported_connection_types_has_long_polling: match u.below(8) {
                0 => Some(false),
                1 => None,
                _ => Some(true),
            },
        }
    }

    fn forget(&mut self, id: RequestId) {
        self.outstanding.retain(|(r, _, _)| *r != id);
        if self.live_connect == Some(id) {
            self.live_connect = None;
        }
        if self.live_control == Some(id) {
            self.live_control = None;
        }
    }

    /// Pick an outstanding request (or an id the core never issued).
    fn target(&mut self, u: &mut Input<'_>) -> (RequestId, Option<RequestKind>, String) {
        if self.outstanding.is_empty() || u.below(16) == 0 {
            return (RequestId(u64::from(u.u16())), None, String::from("1"));
        }
        // Prefer the newest requests (the ones the core is waiting for).
        let k = self.outstanding.len();
        let i = k - 1 - u.below(k.min(4));
        let (id, kind, msg) = self.outstanding[i].clone();
        (id, Some(kind), msg)
    }
}

/// The `"id"` of the first message of a request body.
fn msg_id_of(body: &str) -> Option<String> {
    let at = body.find(r#""id":""#)? + 6;
    let rest = &body[at..];
    Some(rest[..rest.find('"')?].to_string())
}

/// Arbitrary user operations and server batches against one [`Session`].
pub fn session(data: &[u8]) {
    let mut u = Input::new(data);
    let config = Config {
        replay_fallback: u.pick(&[None, None, Some(-1), Some(-2)]),
        max_pending: u.pick(&[None, Some(0), Some(1), Some(3), Some(100)]),
        connection_timeout: u.pick(&[
            Some(10_000),
            None,
            Some(0),
            Some(1),
            Some(120_000),
            Some(u64::MAX),
        ]),
        network_allowance: u.pick(&[10_000, 0, 1, u64::MAX]),
        request_timeout: u.pick(&[30_000, 1, 500, u64::MAX]),
        backoff_base: u.pick(&[500, 0, 1, 10_000]),
        backoff_cap: u.pick(&[30_000, 0, 1, 500, u64::MAX]),
        max_pause: u.pick(&[25_000, 0, 1]),
        seed: u.u64(),
    };
    let start = u64::from(u.u32());
    let mut h = Harness::new(config, start);
    let mut steps = 0;
    while !u.is_empty() && steps < 300 {
        steps += 1;
        let now = h.now;
        match u.below(16) {
            0 => {
                if h.s.open(now).is_ok() {
                    h.opens += 1;
                    h.closed_since_open = false;
                }
                h.drain(None);
            }
            1 | 2 => {
                let ch = u.text(CHANNELS, 30);
                let replay = u.pick(&[None, Some(-1), Some(-2), Some(5), Some(i64::MAX), Some(0)]);
                let marker = match u.below(4) {
                    0 => Some(ReplayMarker {
                        replay_id: i64::from(u.u16()),
                        date_ms: wall(now) - f64::from(u.u32()) * 100.0,
                    }),
                    1 => Some(ReplayMarker {
                        replay_id: u.u64() as i64,
                        date_ms: u.pick(&[0.0, f64::NAN, -5.0, 1e308]),
                    }),
                    _ => None,
                };
                if let Ok(op) = h.s.subscribe(now, wall(now), &ch, replay, marker.as_ref()) {
                    assert!(proto::validate_channel(&ch).is_ok());
                    h.pending_ops.insert(op);
                    h.keys.insert(proto::replay_key(&ch).to_string());
                }
                h.drain(None);
            }
            3 => {
                let ch = u.text(CHANNELS, 30);
                if let Ok(op) = h.s.unsubscribe(now, &ch) {
                    h.pending_ops.insert(op);
                }
                h.drain(None);
            }
            4 => {
                let ch = u.text(CHANNELS, 30);
                let data = u.pick(DATA);
                if let Ok(op) = h.s.publish(now, &ch, data) {
                    h.pending_ops.insert(op);
                }
                h.drain(None);
            }
            5 => {
                h.s.close(now);
                h.drain(None);
            }
            6 => {
                let before = h.s.pending_count();
                let n = u.pick(&[0usize, 1, 2, 10, usize::MAX]);
                h.s.handle_consumed(now, n);
                assert_eq!(
                    h.s.pending_count(),
                    before - n.min(before),
                    "consumed accounting"
                );
                h.drain(None);
            }
            7 => {
                if h.need_auth || u.below(4) == 0 {
                    h.need_auth = false;
                    h.s.handle_authenticated(now);
                } else {
                    h.s.handle_auth_failed(now, "invalid_grant: authentication failure");
                }
                h.drain(None);
            }
            8..=11 => {
                let (id, kind, msg) = h.target(&mut u);
                h.respond(&mut u, id, kind, &msg);
            }
            12 => {
                let (id, _, _) = h.target(&mut u);
                let failure = match u.below(4) {
                    0 => TransportFailure::Network(u.raw_str(16)),
                    1 => TransportFailure::Timeout,
                    2 => TransportFailure::HttpStatus(u.pick(&[401, 403, 500, 503, 0, 302])),
                    _ => TransportFailure::Malformed("the response body is not JSON".into()),
                };
                h.s.handle_failure(now, id, failure);
                h.forget(id);
                h.drain(None);
            }
            13 | 14 => {
                let dt = match u.below(4) {
                    0 => u64::from(u.u8()),
                    1 => u64::from(u.u16()),
                    2 => u64::from(u.u32() % 400_000_000),
                    _ => 0,
                };
                h.now = h.now.saturating_add(dt);
                h.s.handle_timeout(h.now);
                h.drain(None);
            }
            _ => {
                // Fire the core's own timer, as the shell does, and check it asks for no busy loop.
                if let Some(t) = h.s.poll_timeout() {
                    h.now = h.now.max(t);
                }
                h.s.handle_timeout(h.now);
                h.drain(None);
                if let Some(t) = h.s.poll_timeout() {
                    assert!(
                        t > h.now,
                        "busy loop: timer at {t} <= now {} with nothing to send",
                        h.now
                    );
                }
            }
        }
        let _ = (
            h.s.state().as_str(),
            h.s.stats(),
            h.s.connection_type(),
            h.s.client_id(),
        );
    }
    let _ = h.max_burst;
    // Closing always settles every operation.
    h.s.close(h.now);
    h.drain(None);
    let mut guard = 0;
    while !h.s.is_closed() && guard < 4 {
        guard += 1;
        // The /meta/disconnect in flight fails: the session must still close.
        let ids: Vec<RequestId> = h.outstanding.iter().map(|(r, _, _)| *r).collect();
        for id in ids {
            h.s.handle_failure(h.now, id, TransportFailure::Timeout);
            h.forget(id);
            h.drain(None);
        }
    }
    assert!(
        h.s.is_closed(),
        "close() did not close after every request failed"
    );
    assert!(
        h.pending_ops.is_empty(),
        "operations left unresolved after close: {:?}",
        h.pending_ops
    );
}

// ------------------------------------------------------------------------------------------------
// ServerError::parse
// ------------------------------------------------------------------------------------------------

/// `ServerError::parse`/`new`/`Display` on arbitrary text.
pub fn server_error(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (code, args, message) = ServerError::parse(&text);
    assert!(
        text.ends_with(message.as_str()),
        "message is not a suffix of the input"
    );
    match code {
        Some(c) => {
            assert!(c <= 999);
            assert_eq!(&text[..3], format!("{c:03}"));
            assert_eq!(text.as_bytes()[3], b':');
            for a in &args {
                assert!(!a.is_empty() && !a.contains(',') && !a.contains(':'));
            }
            assert!(message.len() + 5 <= text.len());
        }
        None => {
            assert!(args.is_empty());
            assert_eq!(message, text);
        }
    }
    // Split the input into error and failure reason to exercise `new` and `Display`.
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(text.len());
    let cut = (0..=cut)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let (e, fr) = text.split_at(cut);
    for (err, reason) in [
        (Some(e), Some(fr)),
        (None, Some(fr)),
        (Some(e), None),
        (None, None),
    ] {
        let se = ServerError::new("/meta/connect", err, reason);
        let shown = se.to_string();
        assert!(shown.starts_with("/meta/connect failed"));
        let _ = se.failure_code();
        let _ = proto::is_replay_error(se.code, &se.message);
    }
}

// ------------------------------------------------------------------------------------------------
// CookieJar
// ------------------------------------------------------------------------------------------------

const COOKIES: &[&str] = &[
    "BAYEUX_BROWSER=abc123; Path=/; HttpOnly",
    "sfdc-stream=!a/b+c==; path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT; SameSite=None; Secure",
    "BAYEUX_BROWSER=; Max-Age=0",
    "sfdc-stream=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
    "a=b\r\nX-Injected: 1",
    "=novalue",
    "noequals",
    "n=v; Max-Age=-1",
    "n=v; max-age=99999999999999999999999",
    "sp ace=1",
];

/// Arbitrary `Set-Cookie` sequences: caps hold and the `Cookie` header can never be split.
pub fn cookies(data: &[u8]) {
    let mut u = Input::new(data);
    let mut jar = CookieJar::new();
    let mut steps = 0;
    while !u.is_empty() && steps < 500 {
        steps += 1;
        match u.below(8) {
            0 => jar.clear(),
            1 => {
                // Many distinct cookies: the oldest must be dropped at the cap.
                for k in 0..u.below(80) {
                    jar.handle_set_cookie(&format!("c{k}=v{k}"));
                }
            }
            2 => {
                let big = "x".repeat(usize::from(u.u16()) % (2 * MAX_COOKIE_LEN));
                jar.handle_set_cookie(&format!("big={big}"));
            }
            _ => {
                let v = u.text(COOKIES, 200);
                jar.handle_set_cookie(&v);
            }
        }
        assert!(jar.len() <= MAX_COOKIES, "more than MAX_COOKIES cookies");
        // The invariant under test is that the two agree.
        #[allow(clippy::len_zero)]
        {
            assert_eq!(jar.is_empty(), jar.len() == 0);
        }
        match jar.cookie_header() {
            None => assert!(jar.is_empty()),
            Some(h) => {
                assert!(!jar.is_empty());
                assert!(
                    h.len() <= MAX_COOKIES * (MAX_COOKIE_LEN + 2),
                    "Cookie header over the cap"
                );
                assert!(
                    !h.chars().any(char::is_control),
                    "control character in the Cookie header: {h:?}"
                );
                let pairs: Vec<&str> = h.split("; ").collect();
                assert_eq!(
                    pairs.len(),
                    jar.len(),
                    "a stored cookie contains \"; \": {h:?}"
                );
                for p in pairs {
                    let (n, v) = p.split_once('=').expect("name=value");
                    assert!(!n.is_empty() && !n.contains(' '));
                    assert_eq!(jar.get(n), Some(v));
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// auth: URLs and token responses
// ------------------------------------------------------------------------------------------------

const URLS: &[&str] = &[
    "https://login.salesforce.com",
    "http://127.0.0.1:8090",
    "http://localhost/",
    "http://[::1]:9",
    "http://example.com",
    "http://127.0.0.1.evil.com",
    "http://127.0.0.1@evil.com",
    "HTTP://LOCALHOST:1",
    "https://x.my.salesforce.com/path/",
    "javascript:alert(1)",
    "https://",
    "http://[::1",
    "https://a.com:99999",
    "https://é.com",
];
const VERSIONS: &[&str] = &[
    "62.0", "v37.0", "36.0", "62", "1e2.0", "99999.0", "62.0.1", " 62.0 ", "",
];

/// Host of an `http(s)://` URL, computed independently of `sfstream::auth`.
fn host_of(url: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    if authority.starts_with('[') {
        return Some(authority[..=authority.find(']')?].to_string());
    }
    Some(authority.split(':').next()?.to_string())
}

fn independent_loopback(host: &str) -> bool {
    if host == "localhost" || host == "[::1]" {
        return true;
    }
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts[0] == "127"
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
}

/// `token_url`, `cometd_url`, `validate_token_response` on arbitrary input.
pub fn auth(data: &[u8]) {
    let mut u = Input::new(data);
    let mut steps = 0;
    while !u.is_empty() && steps < 100 {
        steps += 1;
        match u.below(3) {
            0 => {
                let url = u.text(URLS, 80);
                let allow = u.bool();
                if let Ok(t) = auth::token_url(&url, allow) {
                    assert!(t.ends_with("/services/oauth2/token"));
                    assert!(
                        !t.chars().any(|c| c.is_control() || c.is_whitespace()),
                        "{t:?}"
                    );
                    let host = host_of(&t).expect("a token URL has a host");
                    assert!(!host.is_empty() && !host.contains('@'));
                    if !allow
                        && t.get(..7)
                            .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
                    {
                        assert!(
                            independent_loopback(&host),
                            "plain http to a non-loopback host accepted: {t}"
                        );
                    }
                }
            }
            1 => {
                let url = u.text(URLS, 80);
                let v = u.text(VERSIONS, 12);
                if let Ok(c) = auth::cometd_url(&url, &v) {
                    assert!(c.contains("/cometd/"));
                    assert!(
                        !c.chars().any(|c| c.is_control() || c.is_whitespace()),
                        "{c:?}"
                    );
                    assert!(!c.contains('?') && !c.contains('#'));
                }
            }
            _ => {
                let mut strs: Vec<Option<String>> = Vec::new();
                for _ in 0..8 {
                    strs.push(match u.below(4) {
                        0 => None,
                        1 => Some(String::new()),
                        2 => Some(u.text(URLS, 40)),
                        _ => Some(u.raw_str(40)),
                    });
                }
                let a = strs[0].clone();
                fn fields<'a>(tok: Option<&'a str>, strs: &'a [Option<String>]) -> TokenFields<'a> {
                    TokenFields {
                        access_token: tok,
                        instance_url: strs[1].as_deref(),
                        id: strs[2].as_deref(),
                        token_type: strs[3].as_deref(),
                        issued_at: strs[4].as_deref(),
                        signature: strs[5].as_deref(),
                        scope: strs[6].as_deref(),
                        refresh_token: strs[7].as_deref(),
                    }
                }
                let r = auth::validate_token_response(&fields(a.as_deref(), &strs));
                if let Ok(t) = &r {
                    assert!(!t.access_token.is_empty());
                    assert!(!t.access_token.chars().any(|c| c.is_control() || c == ' '));
                    assert!(
                        t.token_type.bytes().all(|b| b.is_ascii_alphanumeric())
                            && !t.token_type.is_empty()
                    );
                    let h = t.authorization_header();
                    assert!(
                        !h.chars().any(char::is_control),
                        "header injection through the token"
                    );
                    // The Debug form must not depend on the secrets at all.
                    let other = auth::validate_token_response(&fields(Some("OTHER-TOKEN"), &strs))
                        .expect("same fields");
                    let mut t2 = other.clone();
                    t2.signature = "zz".into();
                    t2.refresh_token = t.refresh_token.as_ref().map(|_| "zz".into());
                    let mut t1 = t.clone();
                    t1.signature = "yy".into();
                    assert_eq!(
                        format!("{t1:?}"),
                        format!("{t2:?}"),
                        "Debug of a token response shows a secret"
                    );
                    let _ = auth::cometd_url(&t.instance_url, "62.0");
                }
                let _ = format!("{:?}", fields(a.as_deref(), &strs));
                let e = auth::AuthError::from_error_response(
                    &u.raw_str(20),
                    if u.bool() { Some("desc") } else { None },
                );
                let _ = e.to_string();
            }
        }
    }
}

/// Every driver by name, for the corpus replay.
pub fn by_name(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "session" => session,
        "server_error" => server_error,
        "cookies" => cookies,
        "auth" => auth,
        _ => return None,
    })
}
