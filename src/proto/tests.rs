//! Transcript tests of the session on a virtual clock: every request the core hands out is
//! checked, answered with a projected batch, and the resulting events are asserted.

use super::testjson::{parse, Value};
use super::*;
use std::collections::VecDeque;

const CID: &str = "1cyu4thyxh3fgv1nqwcvebt3o9x";
const HOUR: f64 = 3_600_000.0;
const WALL: f64 = 1_700_000_000_000.0;

struct Driver {
    s: Session,
    now: Millis,
    sent: VecDeque<Request>,
    events: Vec<Event>,
    delivered: Vec<u32>,
}

impl Driver {
    fn new(config: Config) -> Driver {
        Driver {
            s: Session::new(config),
            now: 0,
            sent: VecDeque::new(),
            events: Vec::new(),
            delivered: Vec::new(),
        }
    }

    fn cfg() -> Config {
        Config {
            connection_timeout: None,
            ..Config::default()
        }
    }

    /// Drain outputs after an input.
    fn pump(&mut self) {
        while let Some(r) = self.s.poll_transmit(self.now) {
            self.sent.push_back(r);
        }
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The next request sent, which must be of `kind`.
    fn take(&mut self, kind: RequestKind) -> Request {
        let r = self
            .sent
            .pop_front()
            .unwrap_or_else(|| panic!("expected a {kind:?} request, none sent"));
        assert_eq!(r.kind, kind, "unexpected request {}", r.body);
        assert!(
            parse(&r.body).unwrap().is_array(),
            "body must be a JSON array"
        );
        r
    }

    fn nothing_sent(&self) {
        assert!(self.sent.is_empty(), "unexpected requests: {:?}", self.sent);
    }

    /// Advance the clock to the next timer and fire it.
    fn fire(&mut self) -> Millis {
        let t = self.s.poll_timeout().expect("a timer should be armed");
        let delay = t.saturating_sub(self.now);
        self.now = self.now.max(t);
        self.s.handle_timeout(self.now);
        self.pump();
        delay
    }

    fn reply(&mut self, req: &Request, status: u16, b: BatchBuf) {
        self.s.handle_response_buf(self.now, req.id, status, &b);
        self.s.take_deliveries(&mut self.delivered);
        self.pump();
    }

    fn fail(&mut self, req: &Request, f: TransportFailure) {
        self.s.handle_failure(self.now, req.id, f);
        self.pump();
    }

    /// open and subscribe `channel` from -1; returns the held long-poll.
    fn open_subscribed(&mut self, channel: &str) -> Request {
        self.open();
        let c = self.take(RequestKind::Connect);
        self.subscribe_ok(channel, Some(-1));
        c
    }

    /// open, subscribe /topic/X from -1, and deliver events `ids` on the first connect's reply.
    fn open_with_events(&mut self, ids: &[i64]) {
        let c = self.open_subscribed("/topic/X");
        self.reply(&c, 200, events_batch("/topic/X", ids, WALL, connect_ok(&c)));
    }

    fn consume(&mut self, n: usize) {
        self.s.handle_consumed(self.now, n);
        self.pump();
    }

    fn taken(&mut self, n: usize) {
        self.s.handle_taken(self.now, n);
        self.pump();
    }

    /// open + handshake + first connect; returns after Opened.
    fn open(&mut self) {
        self.s.open(self.now).unwrap();
        self.pump();
        let hs = self.take(RequestKind::Handshake);
        self.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
        let c = self.take(RequestKind::Connect);
        self.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
        let ev = self.take_events();
        assert!(ev.contains(&Event::Opened), "{ev:?}");
    }

    /// Answer the long-poll `c` with `403::Unknown client` (advice: handshake): the session is lost.
    fn lose_session(&mut self, c: &Request) {
        self.reply(
            c,
            200,
            batch(vec![connect_err(
                c,
                "403::Unknown client",
                Reconnect::Handshake,
            )]),
        );
    }

    /// Answer the long-poll `c` with `401::Authentication invalid`: the token is no longer valid.
    fn reject_token(&mut self, c: &Request) {
        self.reply(
            c,
            200,
            batch(vec![connect_err(
                c,
                "401::Authentication invalid",
                Reconnect::None,
            )]),
        );
    }

    /// Take the pending handshake and answer it successfully (Salesforce's reply: no advice).
    fn accept_handshake(&mut self) -> Request {
        let hs = self.take(RequestKind::Handshake);
        self.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
        hs
    }

    /// Subscribe: the operation and the request it sent.
    fn start_subscribe(&mut self, channel: &str, replay: Option<i64>) -> (OpId, Request) {
        let op = self
            .s
            .subscribe(self.now, WALL, channel, replay, None)
            .unwrap();
        self.pump();
        (op, self.take(RequestKind::Subscribe))
    }

    /// Subscribe and confirm.
    fn subscribe_ok(&mut self, channel: &str, replay: Option<i64>) -> Request {
        let (op, r) = self.start_subscribe(channel, replay);
        self.reply(&r, 200, batch(vec![sub_ok(&r)]));
        assert_eq!(
            self.take_events(),
            vec![Event::OpDone {
                op,
                result: Ok(None)
            }]
        );
        r
    }
}

/// What the session emits when it needs a fresh token: a status, then the request for one.
fn need_auth(attempt: u32) -> Vec<Event> {
    vec![
        Event::Reconnecting {
            reason: ReconnectReason::AuthInvalid,
            attempt,
            delay: 0,
        },
        Event::NeedAuth,
    ]
}

fn body(r: &Request) -> Value {
    parse(&r.body).unwrap().at(0).unwrap().clone()
}

fn mid(r: &Request) -> String {
    body(r).get("id").and_then(Value::str).unwrap().to_string()
}

fn batch(msgs: Vec<MsgBuf>) -> BatchBuf {
    BatchBuf {
        channels: Vec::new(),
        messages: msgs,
    }
}

fn meta(channel: &str, id: Option<String>, ok: bool) -> MetaBuf {
    MetaBuf {
        channel: channel.into(),
        id,
        successful: Some(ok),
        ..Default::default()
    }
}

fn hs_ok(r: &Request) -> MsgBuf {
    MsgBuf::Meta(MetaBuf {
        client_id: Some(CID.into()),
        supported_connection_types_has_long_polling: Some(true),
        ..meta("/meta/handshake", Some(mid(r)), true)
    })
}

fn hs_denied(r: &Request, reason: &str) -> MsgBuf {
    MsgBuf::Meta(MetaBuf {
        error: Some("403::Handshake denied".into()),
        failure_reason: Some(reason.into()),
        advice: Some(Advice {
            reconnect: Some(Reconnect::None),
            ..Default::default()
        }),
        ..meta("/meta/handshake", Some(mid(r)), false)
    })
}

fn disconnect_ok(r: &Request) -> MsgBuf {
    MsgBuf::Meta(meta("/meta/disconnect", Some(mid(r)), true))
}

fn connect_ok(r: &Request) -> MsgBuf {
    MsgBuf::Meta(MetaBuf {
        client_id: Some(CID.into()),
        ..meta("/meta/connect", Some(mid(r)), true)
    })
}

fn connect_ok_advice(r: &Request) -> MsgBuf {
    MsgBuf::Meta(MetaBuf {
        advice: Some(Advice {
            reconnect: Some(Reconnect::Retry),
            interval: Some(0),
            timeout: Some(110_000),
            multiple_clients: false,
        }),
        ..meta("/meta/connect", Some(mid(r)), true)
    })
}

fn connect_err(r: &Request, error: &str, reconnect: Reconnect) -> MsgBuf {
    MsgBuf::Meta(MetaBuf {
        error: Some(error.into()),
        advice: Some(Advice {
            reconnect: Some(reconnect),
            interval: Some(0),
            ..Default::default()
        }),
        ..meta("/meta/connect", Some(mid(r)), false)
    })
}

fn sub_ok(r: &Request) -> MsgBuf {
    let b = body(r);
    MsgBuf::Meta(MetaBuf {
        subscription: b
            .get("subscription")
            .and_then(Value::str)
            .map(str::to_string),
        ..meta("/meta/subscribe", Some(mid(r)), true)
    })
}

fn sub_err(r: &Request, error: &str) -> MsgBuf {
    MsgBuf::Meta(MetaBuf {
        error: Some(error.into()),
        ..meta("/meta/subscribe", Some(mid(r)), false)
    })
}

fn events_batch(channel: &str, ids: &[i64], date: f64, tail: MsgBuf) -> BatchBuf {
    let mut b = BatchBuf::new();
    for id in ids {
        b.push_event(channel, Some(*id), Some(date + *id as f64));
    }
    b.messages.push(tail);
    b
}

fn replay_of(r: &Request, key: &str) -> Option<f64> {
    body(r).get("ext")?.get("replay")?.get(key)?.num()
}

// ------------------------------------------------------------------------------------------------

#[test]
fn open_happy_path_exact_bodies() {
    let mut d = Driver::new(Driver::cfg());
    assert_eq!(d.s.state(), State::Idle);
    d.s.open(0).unwrap();
    d.pump();
    assert_eq!(d.take_events(), vec![Event::Connecting]);
    assert_eq!(d.s.state(), State::Handshaking);
    let hs = d.take(RequestKind::Handshake);
    assert_eq!(
        hs.body,
        r#"[{"channel":"/meta/handshake","version":"1.0","minimumVersion":"1.0","supportedConnectionTypes":["long-polling"],"id":"1","ext":{"replay":true}}]"#
    );
    assert_eq!(hs.timeout, 30_000);
    d.nothing_sent();
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    assert_eq!(d.s.client_id(), Some(CID));
    let c = d.take(RequestKind::Connect);
    assert_eq!(
        c.body,
        format!(
            r#"[{{"channel":"/meta/connect","clientId":"{CID}","connectionType":"long-polling","id":"2","advice":{{"timeout":0}}}}]"#
        )
    );
    d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
    assert_eq!(d.take_events(), vec![Event::Opened, Event::Connected]);
    assert_eq!(d.s.state(), State::Connected);
    assert_eq!(d.s.connection_type(), Some("long-polling"));
    // The next connect is the long-poll: no advice field, timeout = advice.timeout + allowance.
    let c2 = d.take(RequestKind::Connect);
    assert_eq!(
        c2.body,
        format!(
            r#"[{{"channel":"/meta/connect","clientId":"{CID}","connectionType":"long-polling","id":"3"}}]"#
        )
    );
    assert_eq!(c2.timeout, 120_000);
    // subscribe goes out as a control request while the long-poll is held
    let (op, sub) = d.start_subscribe("/topic/X", Some(-1));
    assert_eq!(
        sub.body,
        format!(
            r#"[{{"channel":"/meta/subscribe","clientId":"{CID}","subscription":"/topic/X","id":"4","ext":{{"replay":{{"/topic/X":-1}}}}}}]"#
        )
    );
    assert_eq!(d.s.subscriptions().collect::<Vec<_>>(), vec!["/topic/X"]);
    d.reply(&sub, 200, batch(vec![sub_ok(&sub)]));
    assert_eq!(
        d.take_events(),
        vec![Event::OpDone {
            op,
            result: Ok(None)
        }]
    );
    // held connect returns after 110 s with a bare reply: next connect immediately
    d.now += 110_000;
    d.reply(&c2, 200, batch(vec![connect_ok(&c2)]));
    let c3 = d.take(RequestKind::Connect);
    assert_eq!(mid(&c3), "5");
    assert_eq!(c3.timeout, 120_000);
    assert_eq!(d.s.stats().handshakes, 1);
    assert_eq!(d.s.stats().connects, 3);
    assert_eq!(d.s.stats().last_connect_at, 110_000);
    assert!(d.take_events().is_empty());
}

#[test]
fn subscribe_without_replay_omits_ext_and_filter_key_is_stripped() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let _c = d.take(RequestKind::Connect);
    let r = d.subscribe_ok("/topic/X?Name='a'", Some(-2));
    assert_eq!(replay_of(&r, "/topic/X"), Some(-2.0));
    assert_eq!(
        body(&r).get("subscription").and_then(Value::str),
        Some("/topic/X?Name='a'")
    );
    let r = d.subscribe_ok("/event/E__e", None);
    assert!(body(&r).get("ext").is_none());
}

#[test]
fn user_ops_go_one_at_a_time_and_wait_for_handshake() {
    let mut d = Driver::new(Driver::cfg());
    // ops before open are queued until the session exists
    let a = d.s.subscribe(0, WALL, "/topic/A", Some(-1), None).unwrap();
    let b = d.s.subscribe(0, WALL, "/topic/B", Some(-1), None).unwrap();
    d.s.open(0).unwrap();
    d.pump();
    let hs = d.take(RequestKind::Handshake);
    d.nothing_sent();
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    let c = d.take(RequestKind::Connect);
    let sa = d.take(RequestKind::Subscribe);
    d.nothing_sent(); // one control request at a time
    assert_eq!(
        body(&sa).get("subscription").and_then(Value::str),
        Some("/topic/A")
    );
    d.reply(&sa, 200, batch(vec![sub_ok(&sa)]));
    let sb = d.take(RequestKind::Subscribe);
    assert_eq!(
        body(&sb).get("subscription").and_then(Value::str),
        Some("/topic/B")
    );
    d.reply(&sb, 200, batch(vec![sub_ok(&sb)]));
    d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
    let ev = d.take_events();
    assert_eq!(
        ev,
        vec![
            Event::Connecting,
            Event::OpDone {
                op: a,
                result: Ok(None)
            },
            Event::OpDone {
                op: b,
                result: Ok(None)
            },
            Event::Opened,
            Event::Connected
        ]
    );
}

#[test]
fn unknown_client_rehandshakes_and_resubscribes_from_markers() {
    let mut d = Driver::new(Driver::cfg());
    let c = d.open_subscribed("/topic/X");
    d.subscribe_ok("/event/E__e", Some(-2));
    // events arrive before the connect reply
    d.reply(
        &c,
        200,
        events_batch("/topic/X", &[5, 6], WALL, connect_ok(&c)),
    );
    assert_eq!(d.delivered, vec![0, 1]);
    assert_eq!(d.s.pending_count(), 2);
    assert_eq!(
        d.s.marker("/topic/X"),
        Some(ReplayMarker {
            replay_id: 6,
            date_ms: WALL + 6.0
        })
    );
    let c = d.take(RequestKind::Connect);
    d.lose_session(&c);
    assert_eq!(
        d.take_events(),
        vec![Event::Rehandshake {
            reason: ReconnectReason::UnknownClient
        }]
    );
    // first retry after an Unknown client is immediate
    let hs = d.take(RequestKind::Handshake);
    assert_eq!(mid(&hs), "7", "message ids keep counting across handshakes");
    assert_eq!(d.s.client_id(), None);
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    let c1 = d.take(RequestKind::Connect);
    assert!(
        body(&c1).get("advice").is_some(),
        "first connect after handshake asks for an immediate reply"
    );
    let s1 = d.take(RequestKind::Subscribe);
    assert_eq!(
        replay_of(&s1, "/topic/X"),
        Some(6.0),
        "resume after the last delivered event"
    );
    d.reply(&s1, 200, batch(vec![sub_ok(&s1)]));
    let s2 = d.take(RequestKind::Subscribe);
    assert_eq!(
        replay_of(&s2, "/event/E__e"),
        Some(-2.0),
        "no marker yet: the subscribed value"
    );
    d.reply(&s2, 200, batch(vec![sub_ok(&s2)]));
    d.reply(&c1, 200, batch(vec![connect_ok_advice(&c1)]));
    assert_eq!(d.take_events(), vec![Event::Connected]);
    assert_eq!(d.s.stats().rehandshakes, 1);
    assert_eq!(d.s.stats().handshakes, 2);
    // automatic resubscribes produce no OpDone and the resubscribe set is unchanged
    assert_eq!(
        d.s.subscriptions().collect::<Vec<_>>(),
        vec!["/topic/X", "/event/E__e"]
    );
}

#[test]
fn unsolicited_meta_disconnect_triggers_rehandshake() {
    let mut d = Driver::new(Driver::cfg());
    let c = d.open_subscribed("/topic/X");
    let mut b = BatchBuf::new();
    b.push_meta(MetaBuf {
        channel: "/meta/disconnect".into(),
        successful: Some(true),
        ..Default::default()
    });
    b.push_meta(MetaBuf {
        advice: Some(Advice {
            reconnect: Some(Reconnect::None),
            ..Default::default()
        }),
        ..meta("/meta/connect", Some(mid(&c)), true)
    });
    d.reply(&c, 200, b);
    assert_eq!(
        d.take_events(),
        vec![Event::Rehandshake {
            reason: ReconnectReason::ServerDisconnect
        }]
    );
    d.accept_handshake();
    let c = d.take(RequestKind::Connect);
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(
        replay_of(&s, "/topic/X"),
        Some(-2.0),
        "no event delivered yet: gap-free resubscribe"
    );
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
    // the old "none" advice was reset by the handshake: the loop continues with connects
    let _c = d.take(RequestKind::Connect);
    assert_eq!(d.take_events(), vec![Event::Connected]);
}

#[test]
fn unsolicited_disconnect_in_a_control_response_aborts_the_long_poll() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    d.s.subscribe(d.now, WALL, "/topic/X", Some(-1), None)
        .unwrap();
    d.pump();
    let s = d.take(RequestKind::Subscribe);
    let mut b = batch(vec![sub_ok(&s)]);
    b.push_meta(MetaBuf {
        channel: "/meta/disconnect".into(),
        ..Default::default()
    });
    d.reply(&s, 200, b);
    let ev = d.take_events();
    assert!(
        ev.contains(&Event::AbortAll)
            && ev.contains(&Event::Rehandshake {
                reason: ReconnectReason::ServerDisconnect
            }),
        "{ev:?}"
    );
    let _hs = d.take(RequestKind::Handshake);
    // the aborted long-poll's late outcome is ignored
    d.fail(&c, TransportFailure::Network("aborted".into()));
    d.nothing_sent();
    assert!(d.take_events().is_empty());
}

#[test]
fn auth_invalid_on_connect_needs_auth_then_handshakes_and_resubscribes() {
    let mut d = Driver::new(Driver::cfg());
    d.open_with_events(&[10]);
    let c = d.take(RequestKind::Connect);
    d.reject_token(&c);
    assert_eq!(d.take_events(), need_auth(1));
    assert_eq!(d.s.state(), State::Reconnecting);
    d.nothing_sent();
    assert_eq!(
        d.s.poll_timeout(),
        None,
        "nothing happens until the authenticator answers"
    );
    d.now += 700;
    d.s.handle_authenticated(d.now);
    d.pump();
    assert_eq!(d.take_events(), vec![Event::Reauthenticated]);
    d.accept_handshake();
    let c = d.take(RequestKind::Connect);
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/topic/X"), Some(10.0));
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
    assert_eq!(d.take_events(), vec![Event::Connected]);
    assert_eq!(d.s.stats().reauths, 1);
}

#[test]
fn handshake_denied_with_401_reason_needs_auth_bounded_with_backoff() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    d.lose_session(&c);
    d.take_events();
    let mut hs = d.take(RequestKind::Handshake);
    let mut delays = Vec::new();
    for round in 1..=3 {
        d.reply(
            &hs,
            200,
            batch(vec![hs_denied(&hs, "401::Authentication invalid")]),
        );
        assert_eq!(d.take_events(), need_auth(round), "round {round}");
        d.s.handle_authenticated(d.now);
        d.pump();
        assert_eq!(d.take_events(), vec![Event::Reauthenticated]);
        if d.sent.is_empty() {
            delays.push(d.fire());
        } else {
            delays.push(0);
        }
        hs = d.take(RequestKind::Handshake);
    }
    assert_eq!(delays[0], 0, "first handshake after a re-auth is immediate");
    assert!(
        delays[1] > 0 && delays[2] > 0,
        "later rounds back off: {delays:?}"
    );
    d.reply(
        &hs,
        200,
        batch(vec![hs_denied(&hs, "401::Authentication invalid")]),
    );
    let ev = d.take_events();
    assert!(
        matches!(&ev[..], [Event::Failed(ProtoError::Authentication(m)), Event::Closed] if m.contains("401::Authentication invalid")),
        "{ev:?}"
    );
    assert!(d.s.is_closed());
    d.nothing_sent();
}

#[test]
fn auth_failed_is_fatal() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    let op = d.s.publish(d.now, "/u/x", "1").unwrap();
    d.reject_token(&c);
    assert_eq!(d.take_events(), need_auth(1));
    d.s.handle_auth_failed(d.now, "invalid_grant: expired access/refresh token");
    d.pump();
    let err = ProtoError::Authentication("invalid_grant: expired access/refresh token".into());
    assert_eq!(
        d.take_events(),
        vec![
            Event::OpDone {
                op,
                result: Err(err.clone())
            },
            Event::Failed(err),
            Event::Closed
        ]
    );
    assert_eq!(
        d.s.subscribe(d.now, WALL, "/topic/X", None, None),
        Err(ProtoError::InvalidOperation("client is closed"))
    );
}

#[test]
fn repeated_handshake_failures_back_off_capped_jittered_never_zero() {
    let mut d = Driver::new(Config {
        backoff_base: 500,
        backoff_cap: 8_000,
        ..Driver::cfg()
    });
    d.s.open(0).unwrap();
    d.pump();
    assert_eq!(d.take_events(), vec![Event::Connecting]);
    let mut hs = d.take(RequestKind::Handshake);
    let mut delays = Vec::new();
    for n in 1..=10u32 {
        d.reply(
            &hs,
            200,
            batch(vec![hs_denied(
                &hs,
                "503::Server is too busy.  Please try your request again later.",
            )]),
        );
        let ev = d.take_events();
        let [Event::Reconnecting {
            reason: ReconnectReason::ServerBusy,
            attempt,
            delay,
        }] = ev[..]
        else {
            panic!("{ev:?}")
        };
        assert_eq!(attempt, n);
        d.nothing_sent(); // never a handshake without delay after a failed one
        assert_eq!(d.fire(), delay);
        hs = d.take(RequestKind::Handshake);
        let ceiling = (500u64 << (n - 1)).min(8_000);
        assert!(
            delay >= ceiling / 2 && delay <= ceiling && delay > 0,
            "n={n} delay={delay}"
        );
        delays.push(delay);
    }
    assert!(delays[3] > delays[0], "delays grow: {delays:?}");
    assert!(delays.iter().all(|d| *d <= 8_000), "capped: {delays:?}");
    let mut tail = delays[5..].to_vec();
    tail.dedup();
    assert!(tail.len() > 1, "jittered: {delays:?}");
    // still not opened, never more than one handshake in flight
    assert_eq!(d.s.state(), State::Handshaking);
    d.nothing_sent();
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    let c = d.take(RequestKind::Connect);
    d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
    assert_eq!(d.take_events(), vec![Event::Opened, Event::Connected]);
}

#[test]
fn concurrent_limit_and_dos_denials_are_retried() {
    for reason in [
        "403::Organization concurrent user limit exceeded",
        "403::To protect all customers from excessive use and Denial of Service attacks, we limit the number of simultaneous connections per server.",
        "SERVER_UNAVAILABLE",
    ] {
        let mut d = Driver::new(Driver::cfg());
        d.s.open(0).unwrap();
        d.pump();
        let hs = d.take(RequestKind::Handshake);
        d.reply(&hs, 200, batch(vec![hs_denied(&hs, reason)]));
        let ev = d.take_events();
        assert!(matches!(ev[..], [Event::Connecting, Event::Reconnecting { reason: ReconnectReason::ServerBusy, .. }]), "{reason}: {ev:?}");
        d.fire();
        let _ = d.take(RequestKind::Handshake);
    }
}

#[test]
fn refusals_until_the_connection_timeout_are_reported_with_the_last_refusal() {
    // Handshakes denied for the whole connection timeout: open() fails with the server's answer,
    // not a bare timeout.
    let limit = "403::Organization concurrent user limit exceeded";
    let mut cfg = Driver::cfg();
    cfg.connection_timeout = Some(5_000);
    let mut d = Driver::new(cfg);
    d.s.open(0).unwrap();
    d.pump();
    let ev = loop {
        let hs = d.take(RequestKind::Handshake);
        d.reply(&hs, 200, batch(vec![hs_denied(&hs, limit)]));
        if d.s.is_closed() {
            break d.take_events();
        }
        d.fire();
        if d.s.is_closed() {
            break d.take_events();
        }
    };
    let Some(Event::OpenFailed(ProtoError::TimeoutRefused(e))) = ev.iter().rev().nth(1) else {
        panic!("{ev:?}")
    };
    assert_eq!(e.failure_reason.as_deref(), Some(limit));
    assert!(ProtoError::TimeoutRefused(e.clone())
        .to_string()
        .contains("concurrent user limit"));
    // A network failure as the last failure: the timeout names it.
    let mut cfg = Driver::cfg();
    cfg.connection_timeout = Some(5_000);
    let mut d = Driver::new(cfg);
    d.s.open(0).unwrap();
    d.pump();
    let hs = d.take(RequestKind::Handshake);
    d.reply(&hs, 200, batch(vec![hs_denied(&hs, limit)]));
    d.fire();
    let hs = d.take(RequestKind::Handshake);
    d.fail(&hs, TransportFailure::Network("connection refused".into()));
    d.now += 5_000;
    d.s.handle_timeout(d.now);
    d.pump();
    let ev = d.take_events();
    let failed = ProtoError::TimeoutFailed(TransportFailure::Network("connection refused".into()));
    assert!(ev.contains(&Event::OpenFailed(failed.clone())), "{ev:?}");
    assert!(failed
        .to_string()
        .ends_with("the last failure: network error: connection refused"));
}

#[test]
fn advice_is_reset_after_successful_handshake_no_loop() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    d.lose_session(&c);
    let hs = d.take(RequestKind::Handshake);
    // Salesforce's handshake reply carries no advice at all
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    let c = d.take(RequestKind::Connect);
    d.reply(&c, 200, batch(vec![connect_ok(&c)])); // no advice either
    for _ in 0..5 {
        let c = d.take(RequestKind::Connect);
        d.nothing_sent();
        d.reply(&c, 200, batch(vec![connect_ok(&c)]));
    }
    assert_eq!(d.s.stats().handshakes, 2, "no handshake loop");
    assert_eq!(d.s.state(), State::Connected);
}

#[test]
fn repeated_unknown_client_after_rehandshake_backs_off() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let mut c = d.take(RequestKind::Connect);
    let mut waits = Vec::new();
    for _ in 0..4 {
        d.lose_session(&c);
        let wait = if d.sent.is_empty() { d.fire() } else { 0 };
        waits.push(wait);
        let hs = d.take(RequestKind::Handshake);
        d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
        c = d.take(RequestKind::Connect);
    }
    assert_eq!(waits[0], 0);
    assert!(waits[1..].iter().all(|w| *w > 0), "{waits:?}");
    assert!(waits[3] > waits[1] / 2, "{waits:?}");
}

/// The next request of `kind` among those sent, whatever their order.
fn take_kind(d: &mut Driver, kind: RequestKind) -> Request {
    let i = d
        .sent
        .iter()
        .position(|r| r.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} request among {:?}", d.sent));
    d.sent.remove(i).unwrap()
}

#[test]
fn unknown_client_on_resubscribe_after_a_good_first_connect_backs_off() {
    // After a re-handshake the first connect (answered at once) and the resubscribe go out
    // together. If the connect's success reset the back-off, a resubscribe refused with
    // `403::Unknown client` would re-handshake at once, round after round.
    let mut d = Driver::new(Driver::cfg());
    let c = d.open_subscribed("/topic/X");
    d.lose_session(&c);
    let mut waits = Vec::new();
    for _ in 0..4 {
        let wait = if d.sent.is_empty() { d.fire() } else { 0 };
        waits.push(wait);
        let hs = d.take(RequestKind::Handshake);
        d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
        let first = take_kind(&mut d, RequestKind::Connect);
        let resub = take_kind(&mut d, RequestKind::Subscribe);
        d.reply(&first, 200, batch(vec![connect_ok_advice(&first)]));
        let _held = d.take(RequestKind::Connect);
        d.reply(
            &resub,
            200,
            batch(vec![sub_err(&resub, "403::Unknown client")]),
        );
    }
    assert_eq!(waits[0], 0);
    assert!(waits[1..].iter().all(|w| *w > 0), "{waits:?}");
    assert!(waits[3] > waits[1], "the back-off grows: {waits:?}");
    // A long-poll that comes back resets the back-off.
    let wait = d.fire();
    assert!(wait > 0);
    let hs = d.take(RequestKind::Handshake);
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    let first = take_kind(&mut d, RequestKind::Connect);
    let resub = take_kind(&mut d, RequestKind::Subscribe);
    d.reply(&first, 200, batch(vec![connect_ok_advice(&first)]));
    d.reply(&resub, 200, batch(vec![sub_ok(&resub)]));
    let c = d.take(RequestKind::Connect);
    d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
    let c = d.take(RequestKind::Connect);
    d.lose_session(&c);
    d.take(RequestKind::Handshake); // at once again
}

#[test]
fn a_retried_connect_asks_for_an_immediate_reply_so_a_working_session_is_not_timed_out() {
    // Default settings: a 10 s connection timeout. After one failed long-poll, the retry must
    // not be a long-poll the server may hold for 110 s: the recovery would be judged by the
    // connection timeout while the connection works.
    let mut d = Driver::new(Config::default());
    d.open();
    let c = d.take(RequestKind::Connect);
    assert!(!c.body.contains("advice"), "{}", c.body);
    d.now += 60_000;
    d.fail(&c, TransportFailure::Network("connection reset".into()));
    d.fire();
    let retry = d.take(RequestKind::Connect);
    assert!(
        retry.body.contains(r#""advice":{"timeout":0}"#),
        "{}",
        retry.body
    );
    d.reply(&retry, 200, batch(vec![connect_ok_advice(&retry)]));
    let held = d.take(RequestKind::Connect);
    assert!(!held.body.contains("advice"), "{}", held.body);
    d.take_events();
    // The server holds the long-poll for 100 s: nothing fails.
    d.now += 100_000;
    d.s.handle_timeout(d.now);
    d.pump();
    assert!(!d.s.is_closed(), "{:?}", d.take_events());
    assert_eq!(d.s.state(), State::Connected);
    d.reply(&held, 200, batch(vec![connect_ok_advice(&held)]));
    d.take(RequestKind::Connect);
    assert!(d.take_events().is_empty());
}

#[test]
fn server_busy_on_subscribe_is_retried_with_backoff_not_fatal() {
    let mut cfg = Driver::cfg();
    cfg.connection_timeout = Some(10_000);
    let mut d = Driver::new(cfg);
    d.open_with_events(&[5]);
    let c = d.take(RequestKind::Connect);
    d.lose_session(&c);
    d.accept_handshake();
    let first = take_kind(&mut d, RequestKind::Connect);
    d.reply(&first, 200, batch(vec![connect_ok_advice(&first)]));
    let _held = take_kind(&mut d, RequestKind::Connect);
    // The automatic resubscribe is refused as "too busy": the session stays, and the resubscribe
    // is sent again after a back-off, still from the marker.
    let s = d.take(RequestKind::Subscribe);
    d.reply(
        &s,
        200,
        batch(vec![sub_err(
            &s,
            "503::Server is too busy, try again later",
        )]),
    );
    assert!(!d.s.is_closed(), "{:?}", d.take_events());
    d.nothing_sent();
    assert!(d.fire() > 0);
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/topic/X"), Some(5.0));
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    d.take_events();
    // An explicit subscribe refused as busy is retried too, and resolves when accepted.
    let (op, r) = d.start_subscribe("/topic/Y", Some(-1));
    d.reply(&r, 200, batch(vec![sub_err(&r, "503::Server is too busy")]));
    assert!(d.take_events().is_empty());
    d.fire();
    let r = d.take(RequestKind::Subscribe);
    d.reply(&r, 200, batch(vec![sub_ok(&r)]));
    assert_eq!(
        d.take_events(),
        vec![Event::OpDone {
            op,
            result: Ok(None)
        }]
    );
    // Refused for longer than the connection timeout: the operation fails with the server's error,
    // at the timeout (the last retry is sent at the deadline, not one back-off step past it).
    let start = d.now;
    let (op, mut r) = d.start_subscribe("/topic/Z", Some(-1));
    loop {
        d.reply(&r, 200, batch(vec![sub_err(&r, "503::Server is too busy")]));
        let ev = d.take_events();
        if let [Event::OpDone {
            op: done,
            result: Err(ProtoError::Server(e)),
        }] = &ev[..]
        {
            assert_eq!(*done, op);
            assert_eq!(e.code, Some(503));
            assert_eq!(d.now - start, 10_000, "failed at the connection timeout");
            break;
        }
        assert!(ev.is_empty(), "{ev:?}");
        assert!(d.now < start + 20_000, "still retrying at {}", d.now);
        d.fire();
        r = d.take(RequestKind::Subscribe);
    }
    assert!(!d.s.subscriptions().any(|c| c == "/topic/Z"));
    assert!(!d.s.is_closed());
}

#[test]
fn a_refused_subscribe_to_a_subscribed_channel_keeps_the_subscription_the_server_kept() {
    // Subscribing again to a subscribed channel with a replay id the server refuses: the server
    // keeps the old subscription, and so must the resubscribe after the next session loss.
    let mut d = Driver::new(Driver::cfg());
    d.open_with_events(&[5]);
    let c = d.take(RequestKind::Connect);
    let (op, r) = d.start_subscribe("/topic/X", Some(82));
    assert_eq!(replay_of(&r, "/topic/X"), Some(82.0));
    d.reply(
        &r,
        200,
        batch(vec![sub_err(
            &r,
            "400::The replayId {82} you provided was invalid.",
        )]),
    );
    let ev = d.take_events();
    assert!(
        matches!(&ev[..], [Event::OpDone { op: o, result: Err(ProtoError::Server(_)) }] if *o == op),
        "{ev:?}"
    );
    assert!(d.s.subscriptions().any(|c| c == "/topic/X"));
    d.lose_session(&c);
    d.accept_handshake();
    let s = take_kind(&mut d, RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/topic/X"), Some(5.0), "{}", s.body);
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    assert!(!d.s.is_closed());
}

#[test]
fn a_long_poll_lost_on_its_way_starts_a_new_session_that_replays_from_the_last_delivered_event() {
    // The server may have answered the failed long-poll with events and taken them off the
    // session's queue: only a new session, resubscribing from the last delivered event, gets
    // them again. Error statuses from the server itself carry no events: plain retry.
    for failure in [
        TransportFailure::Network("connection reset".into()),
        TransportFailure::Timeout,
        TransportFailure::Malformed("unexpected end of JSON input".into()),
        TransportFailure::HttpStatus(502),
        TransportFailure::HttpStatus(504),
    ] {
        let mut d = Driver::new(Driver::cfg());
        d.open();
        let c = d.take(RequestKind::Connect);
        d.subscribe_ok("/topic/X", Some(-1));
        d.reply(
            &c,
            200,
            events_batch("/topic/X", &[5, 6], WALL, connect_ok(&c)),
        );
        let c = d.take(RequestKind::Connect);
        d.take_events();
        d.fail(&c, failure.clone());
        let ev = d.take_events();
        assert_eq!(
            ev,
            vec![Event::Rehandshake {
                reason: ReconnectReason::of(&failure)
            }],
            "{failure:?}"
        );
        d.accept_handshake();
        let _first = take_kind(&mut d, RequestKind::Connect);
        let s = take_kind(&mut d, RequestKind::Subscribe);
        assert_eq!(replay_of(&s, "/topic/X"), Some(6.0), "{failure:?}");
    }
    for failure in [
        TransportFailure::HttpStatus(503),
        TransportFailure::HttpStatus(500),
    ] {
        let mut d = Driver::new(Driver::cfg());
        d.open();
        let c = d.take(RequestKind::Connect);
        d.subscribe_ok("/topic/X", Some(-1));
        d.fail(&c, failure.clone());
        let ev = d.take_events();
        assert!(
            matches!(ev[..], [Event::Reconnecting { .. }]),
            "{failure:?}: {ev:?}"
        );
        d.fire();
        d.take(RequestKind::Connect);
    }
}

#[test]
fn an_authenticator_that_never_answers_is_bounded_by_the_connection_timeout() {
    let mut cfg = Driver::cfg();
    cfg.connection_timeout = Some(5_000);
    let mut d = Driver::new(cfg);
    d.open();
    let c = d.take(RequestKind::Connect);
    d.now += 60_000;
    d.reject_token(&c);
    assert_eq!(d.take_events(), need_auth(1));
    // The authenticator is never heard of again: a failed login.
    assert_eq!(d.fire(), 5_000);
    let ev = d.take_events();
    assert!(
        ev.contains(&Event::Failed(ProtoError::Authentication(
            "could not log in again within the connection timeout".into()
        ))),
        "{ev:?}"
    );
    assert!(d.s.is_closed());
    // Its late answer changes nothing.
    d.s.handle_authenticated(d.now);
    d.pump();
    assert!(d.take_events().is_empty());
    d.nothing_sent();
}

#[test]
fn network_errors_on_connect_retry_with_backoff() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    d.fail(&c, TransportFailure::Network("connection reset".into()));
    let ev = d.take_events();
    let [Event::Reconnecting {
        reason: ReconnectReason::NetworkError,
        attempt: 1,
        delay,
    }] = ev[..]
    else {
        panic!("{ev:?}")
    };
    assert!((250..=500).contains(&delay));
    assert_eq!(d.s.state(), State::Reconnecting);
    d.nothing_sent();
    assert_eq!(d.fire(), delay);
    let c = d.take(RequestKind::Connect);
    d.fail(&c, TransportFailure::Timeout);
    let ev = d.take_events();
    let [Event::Reconnecting {
        reason: ReconnectReason::Timeout,
        attempt: 2,
        delay,
    }] = ev[..]
    else {
        panic!("{ev:?}")
    };
    assert!((500..=1000).contains(&delay));
    d.fire();
    let c = d.take(RequestKind::Connect);
    d.reply(&c, 503, batch(vec![]));
    assert!(matches!(
        d.take_events()[..],
        [Event::Reconnecting {
            reason: ReconnectReason::HttpStatus(503),
            attempt: 3,
            ..
        }]
    ));
    d.fire();
    let c = d.take(RequestKind::Connect);
    d.reply(&c, 200, batch(vec![MsgBuf::Other])); // no connect reply in the body
    assert!(matches!(
        d.take_events()[..],
        [Event::Reconnecting {
            reason: ReconnectReason::Malformed,
            attempt: 4,
            ..
        }]
    ));
    d.fire();
    let c = d.take(RequestKind::Connect);
    d.reply(&c, 200, batch(vec![connect_ok(&c)]));
    assert_eq!(d.take_events(), vec![Event::Connected]);
    assert_eq!(d.s.state(), State::Connected);
    assert_eq!(d.s.stats().reconnects, 4);
    // The back-off resets once a long-poll comes back (the retry's immediate reply is not enough).
    let c = d.take(RequestKind::Connect);
    d.reply(&c, 200, batch(vec![connect_ok(&c)]));
    let c = d.take(RequestKind::Connect);
    d.fail(&c, TransportFailure::Network("x".into()));
    assert!(matches!(
        d.take_events()[..],
        [Event::Reconnecting { attempt: 1, .. }]
    ));
}

#[test]
fn connection_timeout_fails_after_recovery_window() {
    let mut d = Driver::new(Config {
        connection_timeout: Some(10_000),
        ..Config::default()
    });
    d.open();
    let c = d.take(RequestKind::Connect);
    let (op, s) = d.start_subscribe("/topic/X", Some(-1));
    d.fail(&c, TransportFailure::Network("down".into()));
    d.take_events();
    let start = d.now;
    loop {
        d.fire();
        if d.s.is_closed() {
            break;
        }
        while let Some(r) = d.sent.pop_front() {
            assert_eq!(r.kind, RequestKind::Connect);
            d.fail(&r, TransportFailure::Network("down".into()));
        }
        assert!(d.now - start <= 10_000);
    }
    assert_eq!(d.now - start, 10_000, "fails exactly at the deadline");
    let ev = d.take_events();
    assert_eq!(
        ev.iter()
            .filter(|e| !matches!(e, Event::Reconnecting { .. }))
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            Event::OpDone {
                op,
                result: Err(ProtoError::TimeoutFailed(TransportFailure::Network(
                    "down".into()
                )))
            },
            Event::Failed(ProtoError::TimeoutFailed(TransportFailure::Network(
                "down".into()
            ))),
            Event::Closed
        ]
    );
    // the in-flight subscribe's late answer is ignored
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    assert!(d.take_events().is_empty());
    d.nothing_sent();
    assert_eq!(d.s.poll_timeout(), None);
}

#[test]
fn a_failure_burst_shorter_than_the_connection_timeout_is_ridden_out() {
    // Five 503s in a row, then the server answers: the back-off grows past what is left of the
    // connection timeout, but the last try goes out before the deadline instead of after it.
    for at_open in [true, false] {
        let mut d = Driver::new(Config {
            connection_timeout: Some(10_000),
            ..Config::default()
        });
        let mut r = if at_open {
            d.s.open(0).unwrap();
            d.pump();
            d.take(RequestKind::Handshake)
        } else {
            d.open();
            d.take(RequestKind::Connect)
        };
        let start = d.now;
        for _ in 0..5 {
            d.fail(&r, TransportFailure::HttpStatus(503));
            d.fire();
            r = d.sent.pop_front().expect("a retry before the deadline");
        }
        assert!(d.now - start < 10_000, "last try at {}", d.now - start);
        let ev = d.take_events();
        assert!(
            !ev.iter()
                .any(|e| matches!(e, Event::Failed(_) | Event::OpenFailed(_))),
            "{ev:?}"
        );
        if at_open {
            d.reply(&r, 200, batch(vec![hs_ok(&r)]));
            let c = d.take(RequestKind::Connect);
            d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
            assert!(d.take_events().contains(&Event::Opened));
        } else {
            d.reply(&r, 200, batch(vec![connect_ok_advice(&r)]));
        }
        assert_eq!(d.s.state(), State::Connected, "at_open: {at_open}");
    }
}

#[test]
fn open_network_errors_retry_until_connection_timeout() {
    let mut d = Driver::new(Config {
        connection_timeout: Some(5_000),
        ..Config::default()
    });
    d.s.open(0).unwrap();
    d.pump();
    let hs = d.take(RequestKind::Handshake);
    d.fail(&hs, TransportFailure::Network("refused".into()));
    let mut attempts = 1;
    while !d.s.is_closed() {
        d.fire();
        while let Some(r) = d.sent.pop_front() {
            attempts += 1;
            d.fail(&r, TransportFailure::Network("refused".into()));
        }
    }
    assert!(attempts >= 3, "retried: {attempts}");
    let ev = d.take_events();
    assert_eq!(
        &ev[ev.len() - 2..],
        &[
            Event::OpenFailed(ProtoError::TimeoutFailed(TransportFailure::Network(
                "refused".into()
            ))),
            Event::Closed
        ]
    );
    assert!(!ev.contains(&Event::Opened));
}

#[test]
fn a_redirect_at_open_fails_at_once() {
    // A 3xx (or a redirect whose status the runtime hides) is never followed: before the
    // session opened, instanceUrl is wrong and retrying cannot help.
    for f in [
        TransportFailure::HttpStatus(302),
        TransportFailure::HttpStatus(crate::proto::REDIRECT_HIDDEN),
    ] {
        let mut d = Driver::new(Driver::cfg());
        d.s.open(0).unwrap();
        d.pump();
        let hs = d.take(RequestKind::Handshake);
        d.fail(&hs, f.clone());
        assert_eq!(
            d.take_events(),
            vec![
                Event::Connecting,
                Event::OpenFailed(ProtoError::Transport(f)),
                Event::Closed
            ]
        );
    }
    let mut d = Driver::new(Driver::cfg());
    d.s.open(0).unwrap();
    d.pump();
    let hs = d.take(RequestKind::Handshake);
    d.reply(&hs, 307, batch(vec![]));
    assert!(matches!(
        d.take_events().as_slice(),
        [
            Event::Connecting,
            Event::OpenFailed(ProtoError::Transport(TransportFailure::HttpStatus(307))),
            Event::Closed
        ]
    ));
    assert!(TransportFailure::HttpStatus(307)
        .to_string()
        .contains("redirect (HTTP 307), which is not followed"));
}

#[test]
fn open_rejections_fail_immediately() {
    // 400 version error (with a Bayeux body on HTTP 400)
    let mut d = Driver::new(Driver::cfg());
    d.s.open(0).unwrap();
    d.pump();
    let hs = d.take(RequestKind::Handshake);
    let e = "400::API version in the URI is mandatory. URI format: '/cometd/65.0'";
    d.reply(
        &hs,
        400,
        batch(vec![MsgBuf::Meta(MetaBuf {
            error: Some(e.into()),
            ..meta("/meta/handshake", None, false)
        })]),
    );
    let ev = d.take_events();
    let [Event::Connecting, Event::OpenFailed(ProtoError::Server(se)), Event::Closed] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(se.code, Some(400));
    assert_eq!(
        se.message,
        "API version in the URI is mandatory. URI format: '/cometd/65.0'"
    );
    // unsupported connection type
    let mut d = Driver::new(Driver::cfg());
    d.s.open(0).unwrap();
    d.pump();
    let hs = d.take(RequestKind::Handshake);
    let MsgBuf::Meta(mut m) = hs_ok(&hs) else {
        unreachable!()
    };
    m.supported_connection_types_has_long_polling = Some(false);
    d.reply(&hs, 200, batch(vec![MsgBuf::Meta(m)]));
    assert_eq!(
        d.take_events(),
        vec![
            Event::Connecting,
            Event::OpenFailed(ProtoError::UnsupportedConnectionType),
            Event::Closed
        ]
    );
    // non-retryable HTTP status without a Bayeux body
    let mut d = Driver::new(Driver::cfg());
    d.s.open(0).unwrap();
    d.pump();
    let hs = d.take(RequestKind::Handshake);
    d.reply(&hs, 404, batch(vec![]));
    assert_eq!(
        d.take_events(),
        vec![
            Event::Connecting,
            Event::OpenFailed(ProtoError::Transport(TransportFailure::HttpStatus(404))),
            Event::Closed
        ]
    );
    // open again after a failure starts over
    d.s.open(d.now).unwrap();
    d.pump();
    let _hs = d.take(RequestKind::Handshake);
    assert_eq!(
        d.s.open(d.now),
        Err(ProtoError::InvalidOperation("client is already open"))
    );
}

#[test]
fn replay_rejected_falls_back_when_configured() {
    let mut d = Driver::new(Config {
        replay_fallback: Some(ALL_EVENTS),
        ..Driver::cfg()
    });
    d.open();
    let _c = d.take(RequestKind::Connect);
    let marker = ReplayMarker {
        replay_id: 82,
        date_ms: WALL - 1000.0,
    };
    let op =
        d.s.subscribe(d.now, WALL, "/topic/X", Some(82), Some(&marker))
            .unwrap();
    d.pump();
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/topic/X"), Some(82.0));
    let err = "400::The replayId {82} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.";
    d.reply(&s, 200, batch(vec![sub_err(&s, err)]));
    assert_eq!(
        d.take_events(),
        vec![Event::ReplayFallback {
            channel: "/topic/X".into(),
            replay_id: 82,
            fallback: -2,
            reason: FallbackReason::ReplayRejected
        }]
    );
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/topic/X"), Some(-2.0));
    // if the fallback itself is rejected there is no loop: the error surfaces
    d.reply(&s, 200, batch(vec![sub_err(&s, err)]));
    let ev = d.take_events();
    assert!(
        matches!(&ev[..], [Event::OpDone { op: o, result: Err(ProtoError::Server(e)) }] if *o == op && e.code == Some(400)),
        "{ev:?}"
    );
    assert_eq!(d.s.stats().fallbacks, 1);
    assert_eq!(d.s.subscriptions().count(), 0);
}

#[test]
fn replay_rejected_without_fallback_surfaces() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    let (op, s) = d.start_subscribe("/topic/X", Some(82));
    let err = "400::The replayId for channel {/topic/X} wasn't found using the provided replay ID map {{}}.";
    d.reply(&s, 200, batch(vec![sub_err(&s, err)]));
    let ev = d.take_events();
    assert!(
        matches!(&ev[..], [Event::OpDone { op: o, result: Err(ProtoError::Server(_)) }] if *o == op),
        "{ev:?}"
    );
    // an automatic resubscribe rejected without a fallback fails the client (never hangs silently)
    d.subscribe_ok("/topic/Y", Some(-1));
    d.reply(
        &c,
        200,
        events_batch("/topic/Y", &[3], WALL, connect_ok(&c)),
    );
    let c = d.take(RequestKind::Connect);
    d.lose_session(&c);
    d.accept_handshake();
    let _c = d.take(RequestKind::Connect);
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/topic/Y"), Some(3.0));
    d.take_events();
    d.reply(
        &s,
        200,
        batch(vec![sub_err(
            &s,
            "400::The replayId {3} you provided was invalid.",
        )]),
    );
    let ev = d.take_events();
    assert!(
        matches!(&ev[..], [Event::AbortAll, Event::Failed(ProtoError::Server(e)), Event::Closed] if e.code == Some(400)),
        "{ev:?}"
    );
}

#[test]
fn retention_check_up_front() {
    let mut d = Driver::new(Config {
        replay_fallback: Some(NEW_EVENTS),
        ..Driver::cfg()
    });
    d.open();
    let _c = d.take(RequestKind::Connect);
    let old = ReplayMarker {
        replay_id: 40,
        date_ms: WALL - 25.0 * HOUR,
    };
    // PushTopic: 24 h retention -> fallback before even trying
    let op =
        d.s.subscribe(d.now, WALL, "/topic/X", Some(40), Some(&old))
            .unwrap();
    d.pump();
    assert_eq!(
        d.take_events(),
        vec![Event::ReplayFallback {
            channel: "/topic/X".into(),
            replay_id: 40,
            fallback: -1,
            reason: FallbackReason::Retention
        }]
    );
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/topic/X"), Some(-1.0));
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    assert_eq!(
        d.take_events(),
        vec![Event::OpDone {
            op,
            result: Ok(None)
        }]
    );
    // platform event: 72 h retention -> the marker is still good
    d.s.subscribe(d.now, WALL, "/event/E__e", Some(40), Some(&old))
        .unwrap();
    d.pump();
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/event/E__e"), Some(40.0));
    assert!(d.take_events().is_empty());
    // no fallback configured: sent as is
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let _c = d.take(RequestKind::Connect);
    d.s.subscribe(d.now, WALL, "/topic/X", Some(40), Some(&old))
        .unwrap();
    d.pump();
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/topic/X"), Some(40.0));
}

#[test]
fn replay_fallback_used_on_auto_resubscribe_without_marker_or_value() {
    let mut d = Driver::new(Config {
        replay_fallback: Some(ALL_EVENTS),
        ..Driver::cfg()
    });
    d.open();
    let c = d.take(RequestKind::Connect);
    let r = d.subscribe_ok("/topic/X", None);
    assert!(
        body(&r).get("ext").is_none(),
        "explicit subscribe sends what the caller gave"
    );
    d.lose_session(&c);
    d.accept_handshake();
    let _c = d.take(RequestKind::Connect);
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/topic/X"), Some(-2.0));
}

#[test]
fn duplicates_after_resubscribe_are_not_delivered() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    d.subscribe_ok("/topic/X", Some(-2));
    d.reply(
        &c,
        200,
        events_batch("/topic/X", &[1, 2, 3], WALL, connect_ok(&c)),
    );
    assert_eq!(d.delivered, vec![0, 1, 2]);
    let c = d.take(RequestKind::Connect);
    // a server replaying overlapping events: 2 and 3 are duplicates, 4 is new
    let mut b = events_batch("/topic/X", &[2, 3, 4], WALL, connect_ok(&c));
    b.push_event("/topic/Other", Some(1), None); // a channel the client does not track: delivered as is
    b.push_event("/topic/X", None, None); // no replay id: cannot be a known duplicate
    d.reply(&c, 200, b);
    assert_eq!(d.delivered, vec![2, 4, 5]);
    assert_eq!(d.s.pending_count(), 6);
    assert_eq!(d.s.stats().events_delivered, 6);
    // an explicit subscribe restarts the filter (the caller asked for a replay)
    let _c = d.take(RequestKind::Connect);
    d.subscribe_ok("/topic/X", Some(-2));
    let c = d.sent.pop_front();
    assert!(c.is_none());
}

#[test]
fn events_in_control_responses_are_delivered_but_not_in_handshake_responses() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let _c = d.take(RequestKind::Connect);
    d.s.subscribe(d.now, WALL, "/topic/X", Some(-2), None)
        .unwrap();
    d.pump();
    let s = d.take(RequestKind::Subscribe);
    d.reply(&s, 200, events_batch("/topic/X", &[7], WALL, sub_ok(&s)));
    assert_eq!(d.delivered, vec![0]);
    assert_eq!(d.s.marker("/topic/X?f=1").map(|m| m.replay_id), Some(7));
}

#[test]
fn persist_markers_on_consumption_coalesced_never_backwards() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    let stored = ReplayMarker {
        replay_id: 4,
        date_ms: WALL + 4.0,
    };
    d.s.subscribe(d.now, WALL, "/topic/X", Some(4), Some(&stored))
        .unwrap();
    d.pump();
    let s = d.take(RequestKind::Subscribe);
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    d.take_events();
    let mut b = events_batch("/topic/X", &[5, 6, 7], WALL, connect_ok(&c));
    b.push_event("/event/Nope__e", Some(1), Some(WALL));
    d.reply(&c, 200, b);
    assert!(
        d.take_events().is_empty(),
        "nothing persisted before consumption"
    );
    d.consume(2);
    assert_eq!(
        d.take_events(),
        vec![Event::PersistMarker {
            channel: "/topic/X".into(),
            marker: ReplayMarker {
                replay_id: 6,
                date_ms: WALL + 6.0
            }
        }]
    );
    // two consumptions before the shell drains: one pending PersistMarker per channel, the newest
    d.s.handle_consumed(d.now, 1);
    d.s.handle_consumed(d.now, 1);
    d.pump();
    assert_eq!(
        d.take_events(),
        vec![Event::PersistMarker {
            channel: "/topic/X".into(),
            marker: ReplayMarker {
                replay_id: 7,
                date_ms: WALL + 7.0
            }
        }]
    );
    assert_eq!(d.s.pending_count(), 0);
    d.consume(10); // over-consumption is harmless
    assert!(d.take_events().is_empty());
    // replayed older events (after an explicit ALL_EVENTS subscribe) never move the marker back
    let c = d.take(RequestKind::Connect);
    d.subscribe_ok("/topic/X", Some(-2));
    d.reply(
        &c,
        200,
        events_batch("/topic/X", &[3], WALL, connect_ok(&c)),
    );
    assert_eq!(d.delivered, vec![0]);
    d.consume(1);
    assert!(d.take_events().is_empty());
}

/// Open with `max_pending: Some(3)`, subscribe /topic/X, and deliver events 1 to 4 in one reply
/// (a batch is delivered whole even if it overshoots the limit): the long-poll is paused.
fn buffer_full() -> Driver {
    let mut d = Driver::new(Config {
        max_pending: Some(3),
        ..Driver::cfg()
    });
    d.open_with_events(&[1, 2, 3, 4]);
    d
}

#[test]
fn prefetch_pause_and_resume() {
    let mut d = buffer_full();
    assert_eq!(d.delivered.len(), 4);
    assert_eq!(
        d.take_events(),
        vec![Event::Reconnecting {
            reason: ReconnectReason::BufferFullPause,
            attempt: 0,
            delay: 0
        }]
    );
    d.nothing_sent();
    assert_eq!(d.s.state(), State::Connected);
    d.now += 1_000;
    d.consume(1); // pending 3: still full
    d.nothing_sent();
    d.consume(1); // pending 2 < 3: resume at once
    let c = d.take(RequestKind::Connect);
    assert!(body(&c).get("advice").is_none());
    d.reply(
        &c,
        200,
        events_batch("/topic/X", &[5], WALL, connect_ok(&c)),
    );
    let ev = d.take_events();
    assert!(ev.contains(&Event::Connected), "{ev:?}");
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::Reconnecting {
                reason: ReconnectReason::BufferFullPause,
                ..
            }
        )),
        "paused again: {ev:?}"
    );
}

#[test]
fn taking_without_consuming_frees_the_prefetch_buffer_but_moves_no_marker() {
    let mut d = buffer_full();
    d.take_events(); // the buffer-full pause
    d.nothing_sent();
    // A batch of 2 in the application's hands: 2 left in the buffer, below the limit of 3.
    d.taken(2);
    assert_eq!(d.s.prefetched_count(), 2);
    assert_eq!(d.s.pending_count(), 4, "taken is not consumed");
    let c = d.take(RequestKind::Connect);
    assert!(
        d.take_events()
            .iter()
            .all(|e| !matches!(e, Event::PersistMarker { .. })),
        "no marker moves before consumption"
    );
    // Consuming what was taken moves the marker to the second event.
    d.consume(2);
    let ev = d.take_events();
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::PersistMarker { marker, .. } if marker.replay_id == 2
        )),
        "{ev:?}"
    );
    assert_eq!(d.s.prefetched_count(), 2);
    // The next reply fills the buffer again (2 + 2 >= 3): paused until more is taken. Taking more
    // than was delivered is capped at what was delivered.
    d.reply(
        &c,
        200,
        events_batch("/topic/X", &[5, 6], WALL, connect_ok(&c)),
    );
    d.take_events();
    d.nothing_sent();
    d.taken(100);
    assert_eq!(d.s.prefetched_count(), 0);
    d.take(RequestKind::Connect);
    d.consume(4);
    assert_eq!(d.s.pending_count(), 0);
    assert_eq!(d.s.prefetched_count(), 0);
}

#[test]
fn prefetch_pause_longer_than_max_pause_rehandshakes_from_markers() {
    let mut d = Driver::new(Config {
        max_pending: Some(2),
        max_pause: 25_000,
        ..Driver::cfg()
    });
    d.open_with_events(&[11, 12]);
    d.take_events();
    d.nothing_sent();
    d.now += 30_000;
    d.consume(2);
    let ev = d.take_events();
    assert!(
        ev.contains(&Event::Rehandshake {
            reason: ReconnectReason::BufferFullPause
        }),
        "{ev:?}"
    );
    // no dead connect: straight to a handshake, immediately
    d.accept_handshake();
    let c = d.take(RequestKind::Connect);
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(
        replay_of(&s, "/topic/X"),
        Some(12.0),
        "resume after the last buffered event"
    );
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
    assert!(d.take_events().contains(&Event::Connected));
}

#[test]
fn multiple_clients_advice_interval_is_honoured() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    let adv = Advice {
        reconnect: Some(Reconnect::Retry),
        interval: Some(2000),
        timeout: Some(110_000),
        multiple_clients: true,
    };
    d.reply(
        &c,
        200,
        batch(vec![MsgBuf::Meta(MetaBuf {
            advice: Some(adv),
            ..meta("/meta/connect", Some(mid(&c)), true)
        })]),
    );
    assert_eq!(
        d.take_events(),
        vec![Event::Reconnecting {
            reason: ReconnectReason::MultipleClients,
            attempt: 0,
            delay: 2000
        }]
    );
    d.nothing_sent();
    assert_eq!(d.fire(), 2000);
    let c = d.take(RequestKind::Connect);
    d.reply(
        &c,
        200,
        batch(vec![MsgBuf::Meta(MetaBuf {
            advice: Some(adv),
            ..meta("/meta/connect", Some(mid(&c)), true)
        })]),
    );
    assert!(d.take_events().is_empty(), "announced once");
    assert_eq!(d.fire(), 2000);
}

#[test]
fn close_flow() {
    let mut d = Driver::new(Driver::cfg());
    let c = d.open_subscribed("/topic/X");
    let (op, s) = d.start_subscribe("/topic/Y", Some(-1));
    let queued = d.s.unsubscribe(d.now, "/topic/X").unwrap();
    d.s.close(d.now);
    d.pump();
    let closed = ProtoError::InvalidOperation("client is closed");
    assert_eq!(
        d.take_events(),
        vec![
            Event::OpDone {
                op: queued,
                result: Err(closed.clone())
            },
            Event::OpDone {
                op,
                result: Err(closed.clone())
            },
            Event::AbortAll
        ]
    );
    assert_eq!(d.s.state(), State::Closing);
    // the disconnect waits for the control slot (the subscribe still in flight)
    d.nothing_sent();
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    assert!(d.take_events().is_empty());
    let disc = d.take(RequestKind::Disconnect);
    assert_eq!(
        disc.body,
        format!(
            r#"[{{"channel":"/meta/disconnect","clientId":"{CID}","id":"{}"}}]"#,
            mid(&disc)
        )
    );
    assert!(disc.timeout <= 10_000);
    // late long-poll outcome after the abort: ignored
    d.fail(&c, TransportFailure::Network("aborted".into()));
    assert!(d.take_events().is_empty());
    d.reply(&disc, 200, batch(vec![disconnect_ok(&disc)]));
    assert_eq!(d.take_events(), vec![Event::Closed]);
    assert!(d.s.is_closed());
    assert_eq!(d.s.connection_type(), None);
    d.s.close(d.now); // idempotent
    d.pump();
    assert!(d.take_events().is_empty());
    assert_eq!(
        d.s.subscribe(d.now, WALL, "/topic/X", None, None),
        Err(closed.clone())
    );
    assert_eq!(d.s.unsubscribe(d.now, "/topic/X"), Err(closed.clone()));
    assert_eq!(d.s.publish(d.now, "/u/x", "1"), Err(closed));
}

#[test]
fn close_disconnect_failure_still_closes_and_close_before_session_is_immediate() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let _c = d.take(RequestKind::Connect);
    d.s.close(d.now);
    d.pump();
    let disc = d.take(RequestKind::Disconnect);
    assert_eq!(d.take_events(), vec![Event::AbortAll]);
    d.fail(&disc, TransportFailure::Timeout);
    assert_eq!(d.take_events(), vec![Event::Closed]);

    let mut d = Driver::new(Driver::cfg());
    d.s.close(0);
    d.pump();
    assert_eq!(d.take_events(), vec![Event::Closed]);

    // Before the handshake is sent: closed at once.
    let mut d = Driver::new(Driver::cfg());
    d.s.open(0).unwrap();
    d.s.close(0);
    d.pump();
    d.nothing_sent();
    assert_eq!(d.take_events(), vec![Event::Connecting, Event::Closed]);
}

/// A session opened, its handshake sent, then closed: the driver and the handshake in flight.
fn closed_during_handshake() -> (Driver, Request) {
    let mut d = Driver::new(Driver::cfg());
    d.s.open(0).unwrap();
    d.pump();
    let hs = d.take(RequestKind::Handshake);
    d.s.close(0);
    d.pump();
    (d, hs)
}

#[test]
fn close_during_the_handshake_disconnects_the_session_the_reply_names() {
    let (mut d, hs) = closed_during_handshake();
    // The server may have made a session: the reply is awaited, not dropped.
    assert_eq!(d.take_events(), vec![Event::Connecting]);
    assert!(d.s.subscribe(0, 0.0, "/topic/X", None, None).is_err());
    d.nothing_sent();
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    let disc = d.take(RequestKind::Disconnect);
    assert_eq!(body(&disc).get("clientId").and_then(Value::str), Some(CID));
    d.nothing_sent();
    assert!(
        d.take_events().is_empty(),
        "no connect, no resubscribe, not opened"
    );
    d.reply(&disc, 200, batch(vec![disconnect_ok(&disc)]));
    assert_eq!(d.take_events(), vec![Event::Closed]);
    d.nothing_sent();

    // No reply within DISCONNECT_TIMEOUT: closed then (a late reply is ignored).
    let (mut d, hs) = closed_during_handshake();
    d.take_events();
    assert_eq!(d.fire(), DISCONNECT_TIMEOUT);
    assert_eq!(d.take_events(), vec![Event::Closed]);
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    d.nothing_sent();
    assert!(d.take_events().is_empty());

    // Refused, failed or without a clientId: nothing to disconnect.
    for outcome in 0..3 {
        let (mut d, hs) = closed_during_handshake();
        d.take_events();
        match outcome {
            0 => d.reply(
                &hs,
                200,
                batch(vec![hs_denied(&hs, "403::Handshake denied")]),
            ),
            1 => d.fail(&hs, TransportFailure::Timeout),
            _ => d.reply(
                &hs,
                200,
                batch(vec![MsgBuf::Meta(meta(
                    "/meta/handshake",
                    Some(mid(&hs)),
                    true,
                ))]),
            ),
        }
        assert_eq!(d.take_events(), vec![Event::Closed], "outcome {outcome}");
        d.nothing_sent();
    }
}

#[test]
fn persist_markers_are_emitted_before_closed() {
    let mut d = Driver::new(Driver::cfg());
    d.open_with_events(&[1]);
    let _c = d.take(RequestKind::Connect);
    d.s.handle_consumed(d.now, 1);
    d.s.close(d.now);
    let disc = d.s.poll_transmit(d.now).unwrap();
    d.s.handle_response_buf(
        d.now,
        disc.id,
        200,
        &batch(vec![MsgBuf::Meta(meta("/meta/disconnect", None, true))]),
    );
    d.pump();
    let ev = d.take_events();
    assert!(
        matches!(
            ev[..],
            [Event::PersistMarker { .. }, Event::AbortAll, Event::Closed]
        ),
        "{ev:?}"
    );
}

#[test]
fn publish_reports_reply_position() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let _c = d.take(RequestKind::Connect);
    assert!(matches!(
        d.s.publish(d.now, "/u/x", "  "),
        Err(ProtoError::InvalidArgument { name: "data", .. })
    ));
    let op = d.s.publish(d.now, "/u/x", r#"{"a":"b"}"#).unwrap();
    d.pump();
    let p = d.take(RequestKind::Publish);
    let id = mid(&p);
    assert_eq!(
        p.body,
        format!(r#"[{{"channel":"/u/x","clientId":"{CID}","id":"{id}","data":{{"a":"b"}}}}]"#)
    );
    let mut b = BatchBuf::new();
    b.push_other();
    b.push_meta(meta("/u/x", Some(id), true));
    d.reply(&p, 200, b);
    assert_eq!(
        d.take_events(),
        vec![Event::OpDone {
            op,
            result: Ok(Some(1))
        }]
    );
    // a failed publish
    let op = d.s.publish(d.now, "/u/x", "1").unwrap();
    d.pump();
    let p = d.take(RequestKind::Publish);
    d.reply(
        &p,
        200,
        batch(vec![MsgBuf::Meta(MetaBuf {
            error: Some("403::Publish denied".into()),
            ..meta("/u/x", Some(mid(&p)), false)
        })]),
    );
    let ev = d.take_events();
    assert!(
        matches!(&ev[..], [Event::OpDone { op: o, result: Err(ProtoError::Server(e)) }] if *o == op && e.code == Some(403)),
        "{ev:?}"
    );
    // publish is not retried after a transport failure
    let op = d.s.publish(d.now, "/u/x", "1").unwrap();
    d.pump();
    let p = d.take(RequestKind::Publish);
    d.fail(&p, TransportFailure::Timeout);
    assert_eq!(
        d.take_events(),
        vec![Event::OpDone {
            op,
            result: Err(ProtoError::Transport(TransportFailure::Timeout))
        }]
    );
    d.nothing_sent();
}

#[test]
fn subscribe_transport_failure_is_retried_with_backoff() {
    let mut d = Driver::new(Config {
        connection_timeout: Some(10_000),
        ..Config::default()
    });
    d.open();
    let _c = d.take(RequestKind::Connect);
    let (op, s) = d.start_subscribe("/topic/X", Some(-1));
    d.fail(&s, TransportFailure::Network("reset".into()));
    d.nothing_sent();
    let wait = d.fire();
    assert!(wait > 0);
    let s = d.take(RequestKind::Subscribe);
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    assert_eq!(
        d.take_events(),
        vec![Event::OpDone {
            op,
            result: Ok(None)
        }]
    );
    // a subscribe that keeps failing gives up after the connection timeout
    let op =
        d.s.subscribe(d.now, WALL, "/topic/Y", Some(-1), None)
            .unwrap();
    d.pump();
    let start = d.now;
    let mut s = d.take(RequestKind::Subscribe);
    loop {
        d.now += 3_000;
        d.fail(&s, TransportFailure::Timeout);
        if d.sent.is_empty() && !d.events.is_empty() {
            break;
        }
        d.fire();
        s = d.take(RequestKind::Subscribe);
    }
    assert!(d.now - start >= 10_000);
    assert_eq!(
        d.take_events(),
        vec![Event::OpDone {
            op,
            result: Err(ProtoError::Transport(TransportFailure::Timeout))
        }]
    );
    assert_eq!(d.s.subscriptions().collect::<Vec<_>>(), vec!["/topic/X"]);
}

#[test]
fn a_subscribe_whose_reply_never_comes_fails_within_the_connection_timeout() {
    // The request's own timeout is capped by the connection timeout, and the retry budget counts
    // from the first send: a stalled reply used to take 30 s to time out, then 30 s of retries.
    let mut cfg = Driver::cfg();
    cfg.connection_timeout = Some(2_000);
    cfg.request_timeout = 30_000;
    let mut d = Driver::new(cfg);
    d.open();
    let _c = d.take(RequestKind::Connect);
    let (op, s) = d.start_subscribe("/topic/Y", Some(-1));
    assert_eq!(s.timeout, 2_000);
    d.s.publish(d.now, "/u/Y", "{}").unwrap();
    d.pump();
    d.nothing_sent(); // one control request at a time: the publish waits
    d.now += s.timeout;
    d.fail(&s, TransportFailure::Timeout);
    assert_eq!(
        d.take_events(),
        vec![Event::OpDone {
            op,
            result: Err(ProtoError::Transport(TransportFailure::Timeout))
        }]
    );
    // The publish goes out at once, with the same bound.
    let pr = d.take(RequestKind::Publish);
    assert_eq!(pr.timeout, 2_000);
    // Without a connection timeout, request_timeout alone.
    let mut cfg = Driver::cfg();
    cfg.connection_timeout = None;
    let mut d = Driver::new(cfg);
    d.open();
    let _c = d.take(RequestKind::Connect);
    let (_op, s) = d.start_subscribe("/topic/Y", Some(-1));
    assert_eq!(s.timeout, 30_000);
}

#[test]
fn subscribe_server_errors_and_unknown_client_on_subscribe() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let _c = d.take(RequestKind::Connect);
    let (op, s) = d.start_subscribe("/topic/Nope", Some(-1));
    d.reply(
        &s,
        200,
        batch(vec![sub_err(
            &s,
            "400::The channel you requested to subscribe to does not exist {/topic/Nope}",
        )]),
    );
    let ev = d.take_events();
    assert!(
        matches!(&ev[..], [Event::OpDone { op: o, result: Err(ProtoError::Server(e)) }] if *o == op && e.message.contains("does not exist")),
        "{ev:?}"
    );
    assert_eq!(d.s.subscriptions().count(), 0);
    // unknown client on an explicit subscribe: re-handshake, then the subscribe is sent again
    let (op, s) = d.start_subscribe("/topic/X", Some(-1));
    d.reply(&s, 200, batch(vec![sub_err(&s, "403::Unknown client")]));
    let ev = d.take_events();
    assert!(
        ev.contains(&Event::Rehandshake {
            reason: ReconnectReason::UnknownClient
        }) && ev.contains(&Event::AbortAll),
        "{ev:?}"
    );
    d.accept_handshake();
    let _c = d.take(RequestKind::Connect);
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(
        body(&s).get("subscription").and_then(Value::str),
        Some("/topic/X")
    );
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    assert_eq!(
        d.take_events(),
        vec![Event::OpDone {
            op,
            result: Ok(None)
        }]
    );
}

#[test]
fn unsubscribe_removes_channel_from_resubscribe_set() {
    let mut d = Driver::new(Driver::cfg());
    let c = d.open_subscribed("/topic/X");
    d.subscribe_ok("/topic/Y", Some(-1));
    let op = d.s.unsubscribe(d.now, "/topic/X").unwrap();
    d.pump();
    assert_eq!(d.s.subscriptions().collect::<Vec<_>>(), vec!["/topic/Y"]);
    let u = d.take(RequestKind::Unsubscribe);
    assert_eq!(
        u.body,
        format!(
            r#"[{{"channel":"/meta/unsubscribe","clientId":"{CID}","subscription":"/topic/X","id":"{}"}}]"#,
            mid(&u)
        )
    );
    d.reply(
        &u,
        200,
        batch(vec![MsgBuf::Meta(meta(
            "/meta/unsubscribe",
            Some(mid(&u)),
            true,
        ))]),
    );
    assert_eq!(
        d.take_events(),
        vec![Event::OpDone {
            op,
            result: Ok(None)
        }]
    );
    d.lose_session(&c);
    d.accept_handshake();
    let _c = d.take(RequestKind::Connect);
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(
        body(&s).get("subscription").and_then(Value::str),
        Some("/topic/Y")
    );
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    d.nothing_sent();
}

#[test]
fn stale_and_unknown_responses_are_ignored() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    d.s.handle_response_buf(d.now, RequestId(999), 200, &batch(vec![connect_ok(&c)]));
    d.s.handle_failure(d.now, RequestId(998), TransportFailure::Timeout);
    d.pump();
    d.nothing_sent();
    assert!(d.take_events().is_empty());
    // a reply with a foreign id is not our reply
    let b = batch(vec![MsgBuf::Meta(meta(
        "/meta/connect",
        Some("12345".into()),
        true,
    ))]);
    d.reply(&c, 200, b);
    assert!(matches!(
        d.take_events()[..],
        [Event::Reconnecting {
            reason: ReconnectReason::Malformed,
            ..
        }]
    ));
    // the borrowed Batch API works the same way
    d.fire();
    let c = d.take(RequestKind::Connect);
    let id = mid(&c);
    let channels = ["/topic/X"];
    let msgs = [
        Msg::Other,
        Msg::Event {
            channel: 7,
            replay_id: Some(1),
            date_ms: None,
        }, // bad channel index: delivered untracked
        Msg::Meta(MetaView {
            channel: "/meta/connect",
            successful: Some(true),
            id: Some(&id),
            ..Default::default()
        }),
    ];
    d.s.handle_response(
        d.now,
        c.id,
        200,
        &Batch {
            channels: &channels,
            messages: &msgs,
        },
    );
    let mut out = vec![42];
    d.s.take_deliveries(&mut out);
    assert_eq!(out, vec![1]);
    d.pump();
    assert_eq!(d.take_events(), vec![Event::Connected]);
}

#[test]
fn connect_server_errors_with_none_advice_are_fatal_and_503_retries() {
    let mut d = Driver::new(Driver::cfg());
    d.open();
    let c = d.take(RequestKind::Connect);
    let MsgBuf::Meta(mut m) = connect_err(&c, "401::Authentication invalid", Reconnect::None)
    else {
        unreachable!()
    };
    m.failure_reason =
        Some("503::Server is too busy.  Please try your request again later.".into());
    d.reply(&c, 200, batch(vec![MsgBuf::Meta(m)]));
    let ev = d.take_events();
    assert_eq!(
        ev[0],
        Event::Rehandshake {
            reason: ReconnectReason::ServerBusy
        }
    );
    d.accept_handshake();
    let c = d.take(RequestKind::Connect);
    d.reply(
        &c,
        200,
        batch(vec![connect_err(
            &c,
            "403::Organization total events daily limit exceeded",
            Reconnect::None,
        )]),
    );
    let ev = d.take_events();
    assert!(
        matches!(&ev[..], [Event::Failed(ProtoError::Server(e)), Event::Closed] if e.code == Some(403)),
        "{ev:?}"
    );
}

#[test]
fn validation_of_arguments() {
    let mut d = Driver::new(Driver::cfg());
    assert!(matches!(
        d.s.subscribe(0, WALL, "/meta/connect", None, None),
        Err(ProtoError::InvalidArgument {
            name: "channel",
            ..
        })
    ));
    assert!(matches!(
        d.s.subscribe(0, WALL, "topic", None, None),
        Err(ProtoError::InvalidArgument { .. })
    ));
    assert!(matches!(
        d.s.publish(0, "", "1"),
        Err(ProtoError::InvalidArgument { .. })
    ));
    assert!(matches!(
        d.s.unsubscribe(0, "/*"),
        Err(ProtoError::InvalidArgument { .. })
    ));
    d.pump();
    assert!(d.take_events().is_empty());
}

#[test]
fn handle_timeout_extra_calls_are_noops() {
    let mut d = Driver::new(Config::default());
    d.open();
    let _c = d.take(RequestKind::Connect);
    for t in [0, 1, 100_000, 1_000_000] {
        d.s.handle_timeout(t);
    }
    d.pump();
    d.nothing_sent();
    assert!(d.take_events().is_empty());
    assert_eq!(d.s.state(), State::Connected);
}

#[test]
fn deterministic_transcript_for_a_seed() {
    fn run(seed: u64) -> Vec<Millis> {
        let mut d = Driver::new(Config {
            seed,
            ..Driver::cfg()
        });
        d.s.open(0).unwrap();
        d.pump();
        let mut out = Vec::new();
        for _ in 0..5 {
            let hs = d.take(RequestKind::Handshake);
            d.fail(&hs, TransportFailure::Network("x".into()));
            out.push(d.fire());
        }
        out
    }
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn lost_session_variants_rehandshake() {
    for e in [
        "400::Client 4xg15eeny70m2bbfjbxps2fqlt00 has established a session, but no BAYEUX_BROWSER cookie present",
        "403::Client has not completed handshake",
        "402::Unknown client",
    ] {
        let mut d = Driver::new(Driver::cfg());
        d.open();
        let c = d.take(RequestKind::Connect);
        let MsgBuf::Meta(mut m) = connect_err(&c, e, Reconnect::Retry) else { unreachable!() };
        m.advice = None;
        d.reply(&c, 200, batch(vec![MsgBuf::Meta(m)]));
        assert_eq!(d.take_events(), vec![Event::Rehandshake { reason: ReconnectReason::UnknownClient }], "{e}");
        let _hs = d.take(RequestKind::Handshake);
    }
}

/// Random inputs (replies, errors, garbage, failures, timers, user ops) never panic, and the core
/// never hands out more than one long-poll plus one control request at a time.
#[test]
fn random_inputs_keep_invariants() {
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }
    let errors = [
        "403::Unknown client",
        "401::Authentication invalid",
        "400::The replayId {1} you provided was invalid.",
        "403::Handshake denied",
        "503::busy",
        "garbage",
        "",
    ];
    let channels = ["/topic/A", "/event/B__e", "/u/C"];
    let mut opened_total = 0u32;
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let cfg = Config {
            max_pending: if seed % 2 == 0 { Some(3) } else { None },
            connection_timeout: if seed % 3 == 0 { None } else { Some(20_000) },
            replay_fallback: if seed % 5 == 0 { None } else { Some(-1) },
            seed,
            ..Config::default()
        };
        let mut s = Session::new(cfg);
        let mut now: Millis = 0;
        let mut outstanding: Vec<Request> = Vec::new();
        let mut need_auth = false;
        let _ = s.open(now);
        for _step in 0..400 {
            // drain: events first (AbortAll), then transmits; check the invariant
            while let Some(e) = s.poll_event() {
                match e {
                    Event::AbortAll => outstanding.retain(|r| r.kind != RequestKind::Connect),
                    Event::Closed => outstanding.clear(),
                    Event::NeedAuth => need_auth = true,
                    _ => {}
                }
            }
            while let Some(r) = s.poll_transmit(now) {
                assert!(
                    parse(&r.body).map(|v| v.is_array()).unwrap_or(false),
                    "bad body {}",
                    r.body
                );
                outstanding.push(r);
                let connects = outstanding
                    .iter()
                    .filter(|r| r.kind == RequestKind::Connect)
                    .count();
                let controls = outstanding.len() - connects;
                assert!(
                    connects <= 1 && controls <= 1,
                    "seed {seed}: {outstanding:?}"
                );
            }
            // liveness: an open session always has something to wait for
            if !s.is_closed()
                && s.state() != State::Idle
                && outstanding.is_empty()
                && s.poll_timeout().is_none()
            {
                let paused = s
                    .config()
                    .max_pending
                    .is_some_and(|n| s.prefetched_count() >= n);
                assert!(need_auth || paused, "seed {seed}: stuck in {:?}", s.state());
            }
            opened_total += u32::from(s.state() == State::Connected);
            match rng.pick(12) {
                0..=4 if !outstanding.is_empty() => {
                    let i = rng.pick(outstanding.len() as u64) as usize;
                    let r = outstanding.remove(i);
                    let id = mid(&r);
                    let chan = match r.kind {
                        RequestKind::Handshake => "/meta/handshake",
                        RequestKind::Connect => "/meta/connect",
                        RequestKind::Subscribe => "/meta/subscribe",
                        RequestKind::Unsubscribe => "/meta/unsubscribe",
                        RequestKind::Disconnect => "/meta/disconnect",
                        RequestKind::Publish => "/u/C",
                    };
                    let mut b = BatchBuf::new();
                    for _ in 0..rng.pick(4) {
                        let c = channels[rng.pick(3) as usize];
                        b.push_event(
                            c,
                            Some(rng.pick(20) as i64),
                            Some(WALL + rng.pick(100) as f64),
                        );
                    }
                    if rng.pick(10) == 0 {
                        b.push_meta(MetaBuf {
                            channel: "/meta/disconnect".into(),
                            ..Default::default()
                        });
                    }
                    let ok = rng.pick(3) != 0;
                    let reconnect = [
                        None,
                        Some(Reconnect::Retry),
                        Some(Reconnect::Handshake),
                        Some(Reconnect::None),
                    ][rng.pick(4) as usize];
                    let mut m = MetaBuf {
                        channel: chan.into(),
                        id: if rng.pick(4) == 0 { None } else { Some(id) },
                        successful: if rng.pick(8) == 0 { None } else { Some(ok) },
                        client_id: Some(CID.into()),
                        advice: if rng.pick(2) == 0 {
                            None
                        } else {
                            Some(Advice {
                                reconnect,
                                interval: Some(rng.pick(3) * 1000),
                                timeout: Some(110_000),
                                multiple_clients: rng.pick(5) == 0,
                            })
                        },
                        supported_connection_types_has_long_polling: Some(rng.pick(20) != 0),
                        ..Default::default()
                    };
                    if !ok {
                        m.error = Some(errors[rng.pick(errors.len() as u64) as usize].into());
                        if rng.pick(2) == 0 {
                            m.failure_reason =
                                Some(errors[rng.pick(errors.len() as u64) as usize].into());
                        }
                    }
                    if rng.pick(10) != 0 {
                        b.push_meta(m);
                    } else {
                        b.push_other();
                    }
                    let status = [200, 200, 200, 400, 401, 500, 429][rng.pick(7) as usize];
                    s.handle_response_buf(now, r.id, status, &b);
                    let mut out = Vec::new();
                    s.take_deliveries(&mut out);
                    assert!(out.iter().all(|p| (*p as usize) < b.messages.len()));
                }
                5 if !outstanding.is_empty() => {
                    let r = outstanding.remove(0);
                    let f = [
                        TransportFailure::Timeout,
                        TransportFailure::Network("x".into()),
                        TransportFailure::HttpStatus(502),
                        TransportFailure::HttpStatus(401),
                    ][rng.pick(4) as usize]
                        .clone();
                    s.handle_failure(now, r.id, f);
                }
                6 => {
                    now += rng.pick(40_000);
                    s.handle_timeout(now);
                }
                7 => {
                    let n = rng.pick(4) as usize;
                    if rng.pick(2) == 0 {
                        s.handle_consumed(now, n);
                    } else {
                        s.handle_taken(now, n);
                    }
                }
                8 => {
                    let c = channels[rng.pick(3) as usize];
                    let _ = match rng.pick(3) {
                        0 => s
                            .subscribe(now, WALL, c, Some(rng.pick(5) as i64 - 2), None)
                            .map(|_| ()),
                        1 => s.unsubscribe(now, c).map(|_| ()),
                        _ => s.publish(now, c, "{}").map(|_| ()),
                    };
                }
                9 if need_auth => {
                    need_auth = false;
                    if rng.pick(6) == 0 {
                        s.handle_auth_failed(now, "nope");
                    } else {
                        s.handle_authenticated(now);
                    }
                }
                10 if rng.pick(20) == 0 => s.close(now),
                11 if s.is_closed() => {
                    need_auth = false;
                    let _ = s.open(now);
                }
                _ => {
                    if let Some(t) = s.poll_timeout() {
                        now = now.max(t);
                        s.handle_timeout(now);
                    }
                }
            }
            assert!(s.pending_count() <= 400 * 4);
        }
    }
    assert!(
        opened_total > 1000,
        "the random walk reaches the connected state: {opened_total}"
    );
}

/// One line per request handed out and per event, in the order the shell sees them.
fn transcript_line(r: &Request) -> String {
    let b = body(r);
    let mut line = format!("-> {} #{}", r.kind.as_str(), mid(r));
    if let Some(sub) = b.get("subscription").and_then(Value::str) {
        line.push_str(&format!(" {sub}"));
        if let Some(n) = replay_of(r, replay_key(sub)) {
            line.push_str(&format!(" replay={n}"));
        }
    }
    if b.get("advice").is_some() {
        line.push_str(" advice.timeout=0");
    }
    line
}

impl Driver {
    fn record(&mut self, t: &mut Vec<String>) {
        for e in self.take_events() {
            t.push(format!("   {e:?}"));
        }
    }
    fn next_req(&mut self, t: &mut Vec<String>) -> Request {
        let r = self.sent.pop_front().expect("a request");
        t.push(transcript_line(&r));
        r
    }
}

#[test]
fn transcript_session_story() {
    let mut d = Driver::new(Driver::cfg());
    let mut t = Vec::new();
    d.s.open(0).unwrap();
    d.pump();
    d.record(&mut t);
    let hs = d.next_req(&mut t);
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    let c = d.next_req(&mut t);
    d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
    d.record(&mut t);
    let c = d.next_req(&mut t);
    d.s.subscribe(d.now, WALL, "/event/E__e", Some(-2), None)
        .unwrap();
    d.pump();
    let s = d.next_req(&mut t);
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    d.record(&mut t);
    d.reply(
        &c,
        200,
        events_batch("/event/E__e", &[100, 101], WALL, connect_ok(&c)),
    );
    t.push(format!("   deliver {:?}", d.delivered));
    d.consume(2);
    d.record(&mut t);
    let c = d.next_req(&mut t);
    d.lose_session(&c);
    d.record(&mut t);
    let hs = d.next_req(&mut t);
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    let c = d.next_req(&mut t);
    let s = d.next_req(&mut t);
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
    d.record(&mut t);
    let c = d.next_req(&mut t);
    d.reject_token(&c);
    d.record(&mut t);
    d.s.handle_authenticated(d.now);
    d.pump();
    d.record(&mut t);
    let hs = d.next_req(&mut t);
    d.reply(&hs, 200, batch(vec![hs_ok(&hs)]));
    let c = d.next_req(&mut t);
    let s = d.next_req(&mut t);
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    d.reply(&c, 200, batch(vec![connect_ok_advice(&c)]));
    d.record(&mut t);
    let _c = d.next_req(&mut t);
    d.s.close(d.now);
    d.pump();
    d.record(&mut t);
    let disc = d.next_req(&mut t);
    d.reply(&disc, 200, batch(vec![disconnect_ok(&disc)]));
    d.record(&mut t);
    d.nothing_sent();
    let expected = r#"
   Connecting
-> handshake #1
-> connect #2 advice.timeout=0
   Opened
   Connected
-> connect #3
-> subscribe #4 /event/E__e replay=-2
   OpDone { op: OpId(1), result: Ok(None) }
   deliver [0, 1]
   PersistMarker { channel: "/event/E__e", marker: ReplayMarker { replay_id: 101, date_ms: 1700000000101.0 } }
-> connect #5
   Rehandshake { reason: UnknownClient }
-> handshake #6
-> connect #7 advice.timeout=0
-> subscribe #8 /event/E__e replay=101
   Connected
-> connect #9
   Reconnecting { reason: AuthInvalid, attempt: 1, delay: 0 }
   NeedAuth
   Reauthenticated
-> handshake #10
-> connect #11 advice.timeout=0
-> subscribe #12 /event/E__e replay=101
   Connected
-> connect #13
   AbortAll
-> disconnect #14
   Closed"#;
    assert_eq!(t.join("\n"), expected.trim_start_matches('\n'));
}

#[test]
fn max_pending_zero_means_unbounded() {
    let mut d = Driver::new(Config {
        max_pending: Some(0),
        ..Driver::cfg()
    });
    d.open_with_events(&[1, 2]);
    let _c = d.take(RequestKind::Connect);
    assert!(d.take_events().is_empty());
}

#[test]
fn gap_free_resubscribe_without_a_marker_drops_only_pre_subscription_events() {
    // Subscribed for new events at WALL; nothing delivered yet; the session is lost. Resubscribing
    // with -1 would lose what was published during the outage, so the core resubscribes with -2 and
    // drops the retained events dated before the subscription (minus the clock-skew allowance).
    let mut d = Driver::new(Driver::cfg());
    let c = d.open_subscribed("/event/Gap__e");
    d.lose_session(&c);
    d.accept_handshake();
    let c = d.take(RequestKind::Connect);
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/event/Gap__e"), Some(-2.0));
    d.reply(&s, 200, batch(vec![sub_ok(&s)]));
    d.take_events();
    d.delivered.clear();
    let mut b = BatchBuf::new();
    b.push_event("/event/Gap__e", Some(1), Some(WALL - 3_600_000.0)); // an hour before: dropped
    b.push_event("/event/Gap__e", Some(2), Some(WALL - GAP_SKEW_MS - 1.0)); // just outside the allowance: dropped
    b.push_event("/event/Gap__e", Some(3), Some(WALL - 1_000.0)); // inside the allowance: delivered
    b.push_event("/event/Gap__e", Some(4), Some(WALL + 5_000.0)); // during the outage: delivered
    b.messages.push(connect_ok_advice(&c));
    d.reply(&c, 200, b);
    assert_eq!(d.delivered, vec![2, 3], "positions of replay ids 3 and 4");
    // once a marker exists, later resubscribes resume from it
    let c = d.take(RequestKind::Connect);
    d.lose_session(&c);
    // No long-poll of the new session has come back yet: the re-handshake backs off.
    d.nothing_sent();
    d.fire();
    d.accept_handshake();
    let _c = d.take(RequestKind::Connect);
    let s = d.take(RequestKind::Subscribe);
    assert_eq!(replay_of(&s, "/event/Gap__e"), Some(4.0));
}

#[test]
fn open_is_bounded_by_connection_timeout_while_the_handshake_hangs() {
    let mut cfg = Driver::cfg();
    cfg.connection_timeout = Some(1_000);
    let mut d = Driver::new(cfg);
    d.s.open(d.now).unwrap();
    d.pump();
    let _hs = d.take(RequestKind::Handshake); // never answered
    assert_eq!(d.s.poll_timeout(), Some(d.now + 1_000));
    d.now += 1_000;
    d.s.handle_timeout(d.now);
    d.pump();
    let ev = d.take_events();
    assert!(
        ev.contains(&Event::OpenFailed(ProtoError::Timeout)),
        "{ev:?}"
    );
    assert!(d.s.is_closed());
}

#[test]
fn resuming_after_a_buffer_full_pause_reports_connected() {
    let mut cfg = Driver::cfg();
    cfg.max_pending = Some(2);
    let mut d = Driver::new(cfg);
    d.open_with_events(&[1, 2, 3]);
    let ev = d.take_events();
    assert!(
        matches!(
            ev.as_slice(),
            [Event::Reconnecting {
                reason: ReconnectReason::BufferFullPause,
                ..
            }]
        ),
        "{ev:?}"
    );
    assert!(
        d.s.poll_transmit(d.now).is_none(),
        "paused: no connect while the buffer is full"
    );
    d.s.handle_consumed(d.now, 3);
    d.pump();
    let ev = d.take_events();
    assert!(ev.contains(&Event::Connected), "{ev:?}");
    let _c = d.take(RequestKind::Connect);
}

#[test]
fn an_unreachable_token_endpoint_is_retried_with_backoff_then_times_out() {
    let mut cfg = Driver::cfg();
    cfg.connection_timeout = Some(5_000);
    let mut d = Driver::new(cfg);
    d.open();
    let c = d.take(RequestKind::Connect);
    d.reject_token(&c);
    assert!(d.take_events().contains(&Event::NeedAuth));
    d.s.handle_auth_unreachable(d.now, ReconnectReason::HttpStatus(503));
    d.pump();
    let ev = d.take_events();
    assert!(
        matches!(
            ev.as_slice(),
            [Event::Reconnecting {
                reason: ReconnectReason::HttpStatus(503),
                ..
            }]
        ),
        "{ev:?}"
    );
    let at = d.s.poll_timeout().unwrap();
    assert!(at > d.now, "a back-off, never an immediate retry");
    d.now = at;
    d.s.handle_timeout(d.now);
    d.pump();
    assert_eq!(
        d.take_events(),
        vec![Event::NeedAuth],
        "the authenticator is asked again"
    );
    d.now += 5_000;
    d.s.handle_auth_unreachable(d.now, ReconnectReason::NetworkError);
    d.pump();
    let ev = d.take_events();
    assert!(
        ev.contains(&Event::Failed(ProtoError::Authentication(
            "could not log in again within the connection timeout".into()
        ))),
        "{ev:?}"
    );
}

#[test]
fn a_zero_advice_timeout_without_network_allowance_still_gives_the_long_poll_time() {
    let mut cfg = Driver::cfg();
    cfg.network_allowance = 0;
    let mut d = Driver::new(cfg);
    d.s.open(d.now).unwrap();
    d.pump();
    d.accept_handshake();
    let c = d.take(RequestKind::Connect);
    let mut b = BatchBuf::new();
    b.push_meta(MetaBuf {
        advice: Some(Advice {
            reconnect: Some(Reconnect::Retry),
            interval: Some(0),
            timeout: Some(0),
            multiple_clients: false,
        }),
        ..meta("/meta/connect", Some(mid(&c)), true)
    });
    d.reply(&c, 200, b);
    let c = d.take(RequestKind::Connect);
    assert_eq!(c.timeout, MIN_LONG_POLL_TIMEOUT);
}
