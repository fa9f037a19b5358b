//! The Bayeux/CometD session state machine with Salesforce's rules.
//!
//! See the module docs of [`crate::proto`] for the calling contract.

use std::collections::VecDeque;

use super::backoff::Backoff;
use super::error::{is_redirect, ProtoError, ServerError, TransportFailure};
use super::message::{
    connect_body, disconnect_body, handshake_body, publish_body, subscribe_body, unsubscribe_body,
    validate_channel, BatchBuf, BatchSource, MetaView, Millis, Msg, OpId, Reconnect, Request,
    RequestId, RequestKind,
};
use super::replay::{
    is_replay_error, replay_key, FallbackReason, ReplayMarker, ALL_EVENTS, NEW_EVENTS,
};

/// Default `advice.timeout` (the server's hold time) until the server says otherwise.
pub const DEFAULT_ADVICE_TIMEOUT: Millis = 110_000;
/// Consecutive re-authentication rounds whose handshake is still rejected before giving up.
pub const MAX_AUTH_ROUNDS: u32 = 3;
/// Longest wait for the reply to `/meta/disconnect` on close.
pub const DISCONNECT_TIMEOUT: Millis = 10_000;
/// The shortest timeout of a long-poll request, whatever the advice and the network allowance.
pub const MIN_LONG_POLL_TIMEOUT: Millis = 1_000;

/// The last retry before the connection timeout goes out this long (or a tenth of the timeout,
/// if less) before it, so that its answer can still count.
const LAST_TRY_MARGIN: Millis = 1_000;
/// Clock-skew allowance of a gap-free resubscribe (see `queue_resubscribes`): retained events up to
/// this long before the original subscription are delivered rather than risk dropping a new one.
pub const GAP_SKEW_MS: f64 = 60_000.0;

/// Configuration of a [`Session`].
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Value sent as ext.replay when the client has no marker for a channel on an *automatic*
    /// resubscribe and the caller gave no explicit value; also the replay value used when the server
    /// rejects a replay id, and when a stored marker is past retention. Normally None.
    /// `Some(-1)` NEW_EVENTS or `Some(-2)` ALL_EVENTS, `None` = no fallback.
    pub replay_fallback: Option<i64>,
    /// Prefetch buffer limit (aiosfstream `max_pending_count`); `None` (or `Some(0)`) = unbounded.
    pub max_pending: Option<usize>,
    /// Give up (re)connecting after this long; `None` = retry forever. aiosfstream default 10 000.
    pub connection_timeout: Option<Millis>,
    /// Added to advice.timeout for the long-poll request timeout; default 10 000.
    pub network_allowance: Millis,
    /// Timeout for requests other than long-polls (handshake, the first connect, subscribe,
    /// unsubscribe, publish), never longer than `connection_timeout`; default 30 000.
    pub request_timeout: Millis,
    /// First back-off delay; default 500.
    pub backoff_base: Millis,
    /// Longest back-off delay; default 30 000.
    pub backoff_cap: Millis,
    /// Longest the long-poll may pause on a full buffer before the session is considered dead
    /// (Salesforce sweeps after 40 s); default 25 000.
    pub max_pause: Millis,
    /// Jitter seed.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            replay_fallback: None,
            max_pending: None,
            connection_timeout: Some(10_000),
            network_allowance: 10_000,
            request_timeout: 30_000,
            backoff_base: 500,
            backoff_cap: 30_000,
            max_pause: 25_000,
            seed: 0x5eed,
        }
    }
}

/// Coarse connection state, for observers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, `open()` not called yet.
    Idle,
    /// Handshaking (first open, or re-handshake, or waiting for re-authentication).
    Handshaking,
    /// Connected: the long-poll loop runs (or is paused on a full buffer).
    Connected,
    /// Recovering from a failure (back-off, retries).
    Reconnecting,
    /// `close()` called; waiting for the `/meta/disconnect` reply.
    Closing,
    /// Closed (by `close()` or by a fatal error).
    Closed,
}

impl State {
    /// A short stable name (`"idle"`, `"handshaking"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Handshaking => "handshaking",
            State::Connected => "connected",
            State::Reconnecting => "reconnecting",
            State::Closing => "closing",
            State::Closed => "closed",
        }
    }
}

/// What kept a recovering session out, for the error of a connection timeout.
#[derive(Clone, Debug, PartialEq)]
enum Trouble {
    /// The server refused (handshake denied, server busy).
    Refused(ServerError),
    /// The request failed (network, HTTP status, timeout, malformed response).
    Failed(TransportFailure),
}

/// Why the core is reconnecting or re-handshaking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconnectReason {
    /// A request failed at the network level.
    NetworkError,
    /// A request timed out.
    Timeout,
    /// The server answered with an HTTP error status.
    HttpStatus(u16),
    /// The server no longer knows the client (`403::Unknown client`, advice `handshake`).
    UnknownClient,
    /// The server sent `/meta/disconnect` (or advised `reconnect: none` on a successful connect).
    ServerDisconnect,
    /// The server saw several clients on one browser cookie (`multiple-clients` advice, 2 s polling).
    MultipleClients,
    /// The server rejected the token; re-authenticating.
    AuthInvalid,
    /// The server is busy / denied the handshake temporarily / failed a request with advice retry.
    ServerBusy,
    /// The long-poll is paused because the prefetch buffer is full.
    BufferFullPause,
    /// The response body was unusable.
    Malformed,
}

impl ReconnectReason {
    /// A short human text (never a secret).
    pub fn as_str(self) -> &'static str {
        match self {
            ReconnectReason::NetworkError => "network error",
            ReconnectReason::Timeout => "request timed out",
            ReconnectReason::HttpStatus(_) => "HTTP error status",
            ReconnectReason::UnknownClient => "unknown client",
            ReconnectReason::ServerDisconnect => "server disconnect",
            ReconnectReason::MultipleClients => "multiple clients on one browser cookie",
            ReconnectReason::AuthInvalid => "authentication invalid",
            ReconnectReason::ServerBusy => "server busy",
            ReconnectReason::BufferFullPause => "buffer full, long-poll paused",
            ReconnectReason::Malformed => "malformed response",
        }
    }

    pub(crate) fn of(f: &TransportFailure) -> ReconnectReason {
        match f {
            TransportFailure::Network(_) => ReconnectReason::NetworkError,
            TransportFailure::Timeout => ReconnectReason::Timeout,
            TransportFailure::HttpStatus(s) => ReconnectReason::HttpStatus(*s),
            TransportFailure::Malformed(_) => ReconnectReason::Malformed,
        }
    }
}

/// Outputs of the core other than requests and deliveries. Drain with [`Session::poll_event`].
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The first connect succeeded: `open()` completed.
    Opened,
    /// `open()` failed (fatal); `Closed` follows.
    OpenFailed(ProtoError),
    /// Status: the client is handshaking for the first time.
    Connecting,
    /// Status: connected (after `Opened`, and again after each recovery).
    Connected,
    /// Status: recovering; the next attempt happens after `delay` ms.
    Reconnecting {
        /// Why.
        reason: ReconnectReason,
        /// Consecutive failure count (0 for a pause).
        attempt: u32,
        /// Delay before the next attempt, in ms.
        delay: Millis,
    },
    /// Status: the session is re-established with a new handshake (then every channel is resubscribed).
    Rehandshake {
        /// Why.
        reason: ReconnectReason,
    },
    /// The shell must call the authenticator, then `handle_authenticated` / `handle_auth_failed`.
    NeedAuth,
    /// A fresh token was obtained after `NeedAuth`.
    Reauthenticated,
    /// A subscribe used `fallback` instead of `replay_id`.
    ReplayFallback {
        /// The subscription (as given by the application).
        channel: String,
        /// The replay id that was replaced.
        replay_id: i64,
        /// The replay value used instead.
        fallback: i64,
        /// Why.
        reason: FallbackReason,
    },
    /// Result of subscribe/unsubscribe/publish. For publish, `Ok(Some(position))` is the index of
    /// the reply message in the batch; otherwise `Ok(None)`.
    OpDone {
        /// The operation.
        op: OpId,
        /// Its result.
        result: Result<Option<u32>, ProtoError>,
    },
    /// Persist this marker for `channel` (the replay key: the channel without filter). Coalesced:
    /// at most one pending per channel (the newest); never moves backwards.
    PersistMarker {
        /// Replay key of the channel.
        channel: String,
        /// The marker of the newest consumed event.
        marker: ReplayMarker,
    },
    /// Fatal: the client is closed (`Closed` follows); receive() must raise this error after
    /// draining the buffer.
    Failed(ProtoError),
    /// The client is closed. Emitted exactly once per open (also after `Failed` / `OpenFailed`).
    Closed,
    /// Abort the in-flight long-poll (`RequestKind::Connect`); its outcome will be ignored.
    AbortAll,
}

/// Counters, for observers and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stats {
    /// Handshake requests sent.
    pub handshakes: u64,
    /// Connect requests sent.
    pub connects: u64,
    /// Connect retries after a failure.
    pub reconnects: u64,
    /// Re-handshakes (after the first handshake).
    pub rehandshakes: u64,
    /// Successful re-authentications.
    pub reauths: u64,
    /// Replay fallbacks used.
    pub fallbacks: u64,
    /// Events delivered to the buffer.
    pub events_delivered: u64,
    /// `now` of the last successful connect reply (0 = never).
    pub last_connect_at: Millis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Handshaking,
    AwaitingAuth,
    Connected,
    Closing,
    Closed,
}

#[derive(Clone, Debug, PartialEq)]
enum ConnectSlot {
    Idle,
    Due {
        at: Millis,
        first: bool,
    },
    InFlight {
        id: RequestId,
        msg_id: String,
        first: bool,
    },
    Paused {
        since: Millis,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum HsSlot {
    None,
    Due(Millis),
    InFlight,
}

#[derive(Clone, Debug, PartialEq)]
enum JobKind {
    Subscribe {
        channel: String,
        replay: Option<i64>,
        op: Option<OpId>,
    },
    Unsubscribe {
        channel: String,
        op: OpId,
    },
    Publish {
        channel: String,
        data: String,
        op: OpId,
    },
}

#[derive(Clone, Debug, PartialEq)]
struct Job {
    kind: JobKind,
    ready_at: Millis,
    attempts: u32,
    /// When it was first sent: its retries stop `connection_timeout` after.
    first_sent: Option<Millis>,
}

impl Job {
    fn new(kind: JobKind, now: Millis) -> Job {
        Job {
            kind,
            ready_at: now,
            attempts: 0,
            first_sent: None,
        }
    }
    fn op(&self) -> Option<OpId> {
        match &self.kind {
            JobKind::Subscribe { op, .. } => *op,
            JobKind::Unsubscribe { op, .. } | JobKind::Publish { op, .. } => Some(*op),
        }
    }
    fn is_auto(&self) -> bool {
        matches!(self.kind, JobKind::Subscribe { op: None, .. })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum CtlWhat {
    Handshake,
    Job(Job),
    Disconnect,
    /// The request's operation was already resolved (close); only the slot is busy.
    Orphan,
}

#[derive(Clone, Debug, PartialEq)]
struct Ctl {
    id: RequestId,
    msg_id: String,
    what: CtlWhat,
}

#[derive(Clone, Debug, PartialEq)]
struct SubEntry {
    channel: String,
    replay: Option<i64>,
    confirmed: bool,
    /// Wall-clock time (epoch ms) of the explicit subscribe; 0 when unknown.
    since_wall: f64,
    /// While an explicit subscribe to an already confirmed channel is pending: the subscription
    /// it replaces, restored if the server refuses it (the server keeps the old one).
    replaced: Option<Replaced>,
}

#[derive(Clone, Debug, PartialEq)]
struct Replaced {
    replay: Option<i64>,
    since_wall: f64,
    floor: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
struct ChanState {
    key: String,
    /// Last marker delivered to the buffer.
    marker: Option<ReplayMarker>,
    /// Highest replay id delivered since the last explicit subscribe (dedupe floor, resubscribe point).
    floor: Option<i64>,
    /// Newest marker handed out for persistence (or given by the application).
    persisted: Option<ReplayMarker>,
    /// Gap-free resubscribe of a channel that has no marker yet: it was resubscribed with
    /// `ALL_EVENTS`, and retained events dated before this (epoch ms) are older than the original
    /// subscription, so they are not delivered. Cleared by the first delivered event.
    gap_filter: Option<f64>,
}

/// The sans-IO Bayeux session. See [`crate::proto`] for the calling contract.
#[derive(Debug)]
pub struct Session {
    config: Config,
    backoff: Backoff,
    phase: Phase,
    opened: bool,
    client_id: Option<String>,
    msg_counter: u64,
    req_counter: u64,
    op_counter: u64,
    advice_reconnect: Reconnect,
    advice_interval: Millis,
    advice_timeout: Millis,
    connect: ConnectSlot,
    hs: HsSlot,
    control: Option<Ctl>,
    queue: VecDeque<Job>,
    subs: Vec<SubEntry>,
    chans: Vec<ChanState>,
    delivered: VecDeque<Option<(usize, ReplayMarker)>>,
    /// How many of `delivered`, from the front, the application has taken out of the prefetch
    /// buffer without consuming them yet (a batch in hand, unacknowledged messages): they no longer
    /// count against `max_pending`, but their markers wait for `handle_consumed`.
    taken: usize,
    deliveries: Vec<u32>,
    events: VecDeque<Event>,
    failures: u32,
    auth_rounds: u32,
    recovering_since: Option<Millis>,
    /// The latest failure while recovering: what a connection timeout reports, so that
    /// "concurrent user limit", "connection refused" or "HTTP 503" is not hidden behind it.
    last_trouble: Option<Trouble>,
    /// When to ask the authenticator again after the token endpoint could not be reached.
    auth_due: Option<Millis>,
    degraded: bool,
    pause_announced: bool,
    multiple_clients_announced: bool,
    disconnect_sent: bool,
    /// Closing with a handshake in flight: when to stop waiting for its reply.
    closing_deadline: Option<Millis>,
    stats: Stats,
}

impl Session {
    /// A new, idle session.
    pub fn new(config: Config) -> Session {
        let backoff = Backoff::new(config.backoff_base, config.backoff_cap, config.seed);
        Session {
            config,
            backoff,
            phase: Phase::Idle,
            opened: false,
            client_id: None,
            msg_counter: 0,
            req_counter: 0,
            op_counter: 0,
            advice_reconnect: Reconnect::Retry,
            advice_interval: 0,
            advice_timeout: DEFAULT_ADVICE_TIMEOUT,
            connect: ConnectSlot::Idle,
            hs: HsSlot::None,
            control: None,
            queue: VecDeque::new(),
            subs: Vec::new(),
            chans: Vec::new(),
            delivered: VecDeque::new(),
            taken: 0,
            deliveries: Vec::new(),
            events: VecDeque::new(),
            failures: 0,
            auth_rounds: 0,
            recovering_since: None,
            last_trouble: None,
            auth_due: None,
            degraded: false,
            pause_announced: false,
            multiple_clients_announced: false,
            disconnect_sent: false,
            closing_deadline: None,
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ------------------------------------------------------------------------------------------
    // application commands
    // ------------------------------------------------------------------------------------------

    /// Start: handshake, then first connect (immediate reply expected), then the long-poll loop.
    /// Emits `Event::Opened` once the first connect succeeded, or `Event::OpenFailed(err)` (fatal,
    /// client closed). `Err(InvalidOperation)` if not in the initial/closed state.
    pub fn open(&mut self, now: Millis) -> Result<(), ProtoError> {
        match self.phase {
            Phase::Idle | Phase::Closed => {}
            _ => return Err(ProtoError::InvalidOperation("client is already open")),
        }
        if self.phase == Phase::Closed {
            // A closed session keeps its markers but starts over otherwise.
            self.subs.clear();
            self.queue.clear();
        }
        self.opened = false;
        self.client_id = None;
        self.failures = 0;
        self.auth_rounds = 0;
        // Opening is bounded by connection_timeout like any recovery: a server that never answers
        // the handshake fails open() with Timeout instead of hanging on the request timeout.
        self.recovering_since = Some(now);
        self.degraded = false;
        self.pause_announced = false;
        self.multiple_clients_announced = false;
        self.disconnect_sent = false;
        self.reset_advice();
        self.connect = ConnectSlot::Idle;
        self.phase = Phase::Handshaking;
        self.hs = HsSlot::Due(now);
        self.events.push_back(Event::Connecting);
        Ok(())
    }

    /// Subscribe. `replay`: the ext.replay value to send for this channel (None = omit ext.replay).
    /// `marker`: the stored marker of the channel if any; if its date is older than the channel's
    /// retention at `wall_ms` and a `replay_fallback` is configured, the fallback is sent instead and
    /// `Event::ReplayFallback{reason: Retention}` is emitted. The result arrives as `Event::OpDone`.
    ///
    /// Subscribing to an already subscribed channel sends the subscribe again (as aiosfstream does);
    /// the channel's duplicate filter restarts from this subscribe.
    pub fn subscribe(
        &mut self,
        now: Millis,
        wall_ms: f64,
        channel: &str,
        replay: Option<i64>,
        marker: Option<&ReplayMarker>,
    ) -> Result<OpId, ProtoError> {
        self.check_usable()?;
        validate_channel(channel)?;
        let ci = self.chan_index(replay_key(channel));
        let old_floor = self.chans.get(ci).and_then(|c| c.floor);
        if let Some(c) = self.chans.get_mut(ci) {
            c.floor = None;
            c.gap_filter = None;
            if let Some(m) = marker {
                if c.persisted.as_ref().map_or(true, |p| m.is_newer_than(p)) {
                    c.persisted = Some(m.clone());
                }
            }
        }
        let mut send = replay;
        if let (Some(m), Some(fb), Some(r)) = (marker, self.config.replay_fallback, replay) {
            if r >= 0 && m.is_expired(channel, wall_ms) {
                send = Some(fb);
                self.stats.fallbacks += 1;
                self.events.push_back(Event::ReplayFallback {
                    channel: channel.to_string(),
                    replay_id: r,
                    fallback: fb,
                    reason: FallbackReason::Retention,
                });
            }
        }
        let since_wall = if wall_ms.is_finite() && wall_ms > 0.0 {
            wall_ms
        } else {
            0.0
        };
        match self.subs.iter_mut().find(|s| s.channel == channel) {
            Some(s) => {
                if s.confirmed && s.replaced.is_none() {
                    s.replaced = Some(Replaced {
                        replay: s.replay,
                        since_wall: s.since_wall,
                        floor: old_floor,
                    });
                }
                s.replay = send;
                s.since_wall = since_wall;
            }
            None => self.subs.push(SubEntry {
                channel: channel.to_string(),
                replay: send,
                confirmed: false,
                since_wall,
                replaced: None,
            }),
        }
        let op = self.next_op();
        self.queue.push_back(Job::new(
            JobKind::Subscribe {
                channel: channel.to_string(),
                replay: send,
                op: Some(op),
            },
            now,
        ));
        Ok(op)
    }

    /// Unsubscribe; the channel leaves the resubscribe set at once. Result as `Event::OpDone`.
    pub fn unsubscribe(&mut self, now: Millis, channel: &str) -> Result<OpId, ProtoError> {
        self.check_usable()?;
        validate_channel(channel)?;
        self.subs.retain(|s| s.channel != channel);
        self.queue.retain(|j| {
            !(j.is_auto()
                && matches!(&j.kind, JobKind::Subscribe { channel: c, .. } if c == channel))
        });
        let op = self.next_op();
        self.queue.push_back(Job::new(
            JobKind::Unsubscribe {
                channel: channel.to_string(),
                op,
            },
            now,
        ));
        Ok(op)
    }

    /// Publish; `data_json` is already-serialised JSON text of the data (JS did JSON.stringify).
    /// A publish is not retried after a transport failure (it is not idempotent).
    pub fn publish(
        &mut self,
        now: Millis,
        channel: &str,
        data_json: &str,
    ) -> Result<OpId, ProtoError> {
        self.check_usable()?;
        validate_channel(channel)?;
        if data_json.trim().is_empty() {
            return Err(ProtoError::InvalidArgument {
                name: "data",
                reason: "data is empty".into(),
            });
        }
        let op = self.next_op();
        self.queue.push_back(Job::new(
            JobKind::Publish {
                channel: channel.to_string(),
                data: data_json.to_string(),
                op,
            },
            now,
        ));
        Ok(op)
    }

    /// Graceful close: `/meta/disconnect` if a session exists, then `Event::Closed`. Idempotent.
    /// Pending operations complete with `Err(InvalidOperation("client is closed"))`.
    pub fn close(&mut self, now: Millis) {
        match self.phase {
            Phase::Closed | Phase::Closing => return,
            Phase::Idle => {
                self.fail_ops(&ProtoError::InvalidOperation("client is closed"));
                self.finish_close();
                return;
            }
            _ => {}
        }
        self.fail_ops(&ProtoError::InvalidOperation("client is closed"));
        self.abort_connect();
        self.hs = HsSlot::None;
        let has_session = self.phase == Phase::Connected && self.client_id.is_some();
        // A handshake in flight may have made a session on the server already: its reply is
        // awaited (at most DISCONNECT_TIMEOUT, as a disconnect's), and a session it names is
        // disconnected, not left to count against the org's concurrent clients until the server
        // sweeps it.
        let handshake_in_flight = self.phase == Phase::Handshaking
            && matches!(
                self.control,
                Some(Ctl {
                    what: CtlWhat::Handshake,
                    ..
                })
            );
        if has_session || handshake_in_flight {
            self.phase = Phase::Closing;
            self.disconnect_sent = false;
            self.closing_deadline =
                handshake_in_flight.then(|| now.saturating_add(DISCONNECT_TIMEOUT));
        } else {
            self.finish_close();
        }
    }

    /// The application took `count` more delivered events out of the prefetch buffer (in delivery
    /// order) without consuming them yet: a batch in hand, messages not acknowledged. They stop
    /// counting against `max_pending` (as in the seed, where `max_pending_count` bounds the
    /// queue), so a paused long-poll may resume; their markers wait for `handle_consumed`. A
    /// count beyond what was delivered is capped.
    pub fn handle_taken(&mut self, now: Millis, count: usize) {
        self.taken = self.taken.saturating_add(count).min(self.delivered.len());
        self.maybe_resume(now);
    }

    /// The application consumed `count` delivered events (in delivery order), taken or not.
    /// Markers of consumed events become `Event::PersistMarker`s (coalesced per channel, never
    /// backwards). May resume a paused long-poll.
    pub fn handle_consumed(&mut self, now: Millis, count: usize) {
        let n = count.min(self.delivered.len());
        self.taken = self.taken.saturating_sub(n);
        let mut newest: Vec<(usize, ReplayMarker)> = Vec::new();
        for _ in 0..n {
            if let Some(Some((ci, m))) = self.delivered.pop_front() {
                match newest.iter_mut().find(|(c, _)| *c == ci) {
                    Some((_, cur)) => {
                        if m.is_newer_than(cur) {
                            *cur = m;
                        }
                    }
                    None => newest.push((ci, m)),
                }
            }
        }
        for (ci, m) in newest {
            let Some(c) = self.chans.get_mut(ci) else {
                continue;
            };
            if c.persisted.as_ref().is_some_and(|p| !m.is_newer_than(p)) {
                continue;
            }
            c.persisted = Some(m.clone());
            let key = c.key.clone();
            let existing = self.events.iter_mut().find_map(|e| match e {
                Event::PersistMarker { channel, marker } if *channel == key => Some(marker),
                _ => None,
            });
            match existing {
                Some(slot) => *slot = m,
                None => self.events.push_back(Event::PersistMarker {
                    channel: key,
                    marker: m,
                }),
            }
        }
        self.maybe_resume(now);
    }

    /// The authenticator produced a fresh token (after `Event::NeedAuth`): handshake + resubscribe.
    pub fn handle_authenticated(&mut self, now: Millis) {
        if self.phase != Phase::AwaitingAuth {
            return;
        }
        self.stats.reauths += 1;
        self.events.push_back(Event::Reauthenticated);
        // The first handshake after a re-auth is immediate; if the server keeps rejecting fresh
        // tokens, back off between rounds.
        let delay = if self.auth_rounds <= 1 {
            0
        } else {
            self.backoff.delay(self.auth_rounds - 1)
        };
        self.phase = Phase::Handshaking;
        self.hs = HsSlot::Due(now.saturating_add(delay));
    }

    /// The authenticator could not reach the token endpoint (a network failure, a timeout, or an
    /// overloaded endpoint's 429/5xx: not a rejection), for the `reason` the `Reconnecting` event
    /// names: ask again after a back-off (`Event::NeedAuth` once more), until `connection_timeout`
    /// since the first such failure, then `Failed(Authentication(..))`.
    pub fn handle_auth_unreachable(&mut self, now: Millis, reason: ReconnectReason) {
        if self.phase != Phase::AwaitingAuth || self.note_failure(now) {
            return;
        }
        self.failures += 1;
        let backoff = self.backoff.delay(self.failures);
        let at = self.retry_at(now, backoff);
        self.events.push_back(Event::Reconnecting {
            reason,
            attempt: self.failures,
            delay: at.saturating_sub(now),
        });
        self.auth_due = Some(at);
    }

    /// Re-authentication failed (the token endpoint rejected the credentials): fatal.
    pub fn handle_auth_failed(&mut self, _now: Millis, message: &str) {
        if matches!(self.phase, Phase::Closed | Phase::Idle) {
            return;
        }
        self.fatal(ProtoError::Authentication(message.to_string()));
    }

    // ------------------------------------------------------------------------------------------
    // I/O results
    // ------------------------------------------------------------------------------------------

    /// A response for request `id` arrived and parsed as a JSON array. `status` is the HTTP status.
    /// `batch` is any [`BatchSource`]: a [`Batch`](super::Batch) of projected messages, or a view that projects
    /// each position when asked (the shell reads its per-response arrays directly).
    pub fn handle_response<B: BatchSource>(
        &mut self,
        now: Millis,
        id: RequestId,
        status: u16,
        batch: &B,
    ) {
        self.on_response(now, id, status, batch);
    }

    /// Same as [`Session::handle_response`] with an owned [`BatchBuf`].
    pub fn handle_response_buf(
        &mut self,
        now: Millis,
        id: RequestId,
        status: u16,
        batch: &BatchBuf,
    ) {
        self.on_response(now, id, status, batch);
    }

    /// The request failed without a usable Bayeux body.
    pub fn handle_failure(&mut self, now: Millis, id: RequestId, failure: TransportFailure) {
        self.deliveries.clear();
        if let ConnectSlot::InFlight { id: cid, .. } = &self.connect {
            if *cid == id {
                self.connect = ConnectSlot::Idle;
                self.connect_failed(now, failure);
                return;
            }
        }
        if self.control.as_ref().is_some_and(|c| c.id == id) {
            let Some(ctl) = self.control.take() else {
                return;
            };
            match ctl.what {
                CtlWhat::Handshake if self.phase == Phase::Closing => self.finish_close(),
                CtlWhat::Handshake => {
                    self.hs = HsSlot::None;
                    self.handshake_transport_failed(now, failure);
                }
                CtlWhat::Job(job) => self.job_failed(now, job, failure),
                CtlWhat::Disconnect => self.finish_close(),
                CtlWhat::Orphan => {}
            }
        }
    }

    /// Timers: call when `poll_timeout()` passes. Extra calls are no-ops.
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.phase == Phase::Closing && self.closing_deadline.is_some_and(|d| now >= d) {
            // The handshake's reply did not come in time: nothing to disconnect that we know of.
            self.finish_close();
            return;
        }
        if self.phase == Phase::AwaitingAuth && self.auth_due.is_some_and(|at| at <= now) {
            self.auth_due = None;
            self.events.push_back(Event::NeedAuth);
        }
        if let Some(deadline) = self.recovery_deadline() {
            if now >= deadline {
                self.timed_out();
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // outputs
    // ------------------------------------------------------------------------------------------

    /// The next request to send, if any is due at `now`. Call until `None` after every input.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Millis) -> Option<Request> {
        match self.phase {
            Phase::Closing => {
                if self.control.is_none() && !self.disconnect_sent {
                    let cid = self.client_id.clone()?;
                    self.disconnect_sent = true;
                    let msg_id = self.next_msg_id();
                    let body = disconnect_body(&cid, &msg_id);
                    return Some(self.control_request(
                        RequestKind::Disconnect,
                        body,
                        msg_id,
                        CtlWhat::Disconnect,
                        self.config.request_timeout.min(DISCONNECT_TIMEOUT),
                    ));
                }
                None
            }
            Phase::Handshaking => {
                if self.control.is_some() {
                    return None;
                }
                match self.hs {
                    HsSlot::Due(at) if at <= now => {
                        self.hs = HsSlot::InFlight;
                        self.stats.handshakes += 1;
                        let msg_id = self.next_msg_id();
                        let body = handshake_body(&msg_id);
                        Some(self.control_request(
                            RequestKind::Handshake,
                            body,
                            msg_id,
                            CtlWhat::Handshake,
                            self.request_timeout(),
                        ))
                    }
                    _ => None,
                }
            }
            Phase::Connected => {
                let cid = self.client_id.clone()?;
                if let ConnectSlot::Due { at, first } = self.connect {
                    if at <= now {
                        let msg_id = self.next_msg_id();
                        let body = connect_body(&cid, &msg_id, first);
                        let id = self.next_req();
                        self.connect = ConnectSlot::InFlight { id, msg_id, first };
                        self.stats.connects += 1;
                        let timeout = if first {
                            self.request_timeout()
                        } else {
                            // Never shorter than MIN_LONG_POLL_TIMEOUT: a server advising timeout 0
                            // with no network allowance must not make every long-poll time out at once.
                            self.advice_timeout
                                .saturating_add(self.config.network_allowance)
                                .max(MIN_LONG_POLL_TIMEOUT)
                        };
                        return Some(Request {
                            id,
                            kind: RequestKind::Connect,
                            body,
                            timeout,
                        });
                    }
                }
                if self.control.is_some() {
                    return None;
                }
                if self.queue.front().is_some_and(|j| j.ready_at <= now) {
                    let mut job = self.queue.pop_front()?;
                    job.first_sent.get_or_insert(now);
                    let msg_id = self.next_msg_id();
                    let (kind, body) = match &job.kind {
                        JobKind::Subscribe {
                            channel, replay, ..
                        } => (
                            RequestKind::Subscribe,
                            subscribe_body(&cid, &msg_id, channel, replay_key(channel), *replay),
                        ),
                        JobKind::Unsubscribe { channel, .. } => (
                            RequestKind::Unsubscribe,
                            unsubscribe_body(&cid, &msg_id, channel),
                        ),
                        JobKind::Publish { channel, data, .. } => (
                            RequestKind::Publish,
                            publish_body(&cid, &msg_id, channel, data),
                        ),
                    };
                    return Some(self.control_request(
                        kind,
                        body,
                        msg_id,
                        CtlWhat::Job(job),
                        self.request_timeout(),
                    ));
                }
                None
            }
            Phase::Idle | Phase::AwaitingAuth | Phase::Closed => None,
        }
    }

    /// The next time `handle_timeout` / `poll_transmit` has work to do, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut t: Option<Millis> = None;
        let mut add = |x: Millis| t = Some(t.map_or(x, |y| y.min(x)));
        match self.phase {
            Phase::Handshaking => {
                if let (HsSlot::Due(at), None) = (&self.hs, &self.control) {
                    add(*at);
                }
            }
            Phase::Connected => {
                if let ConnectSlot::Due { at, .. } = self.connect {
                    add(at);
                }
                if self.control.is_none() {
                    if let Some(j) = self.queue.front() {
                        add(j.ready_at);
                    }
                }
            }
            Phase::AwaitingAuth => {
                if let Some(at) = self.auth_due {
                    add(at);
                }
            }
            Phase::Closing => {
                if let Some(at) = self.closing_deadline {
                    add(at);
                }
            }
            _ => {}
        }
        if let Some(d) = self.recovery_deadline() {
            add(d);
        }
        t
    }

    /// The next event, if any. Drain after every input.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Positions (indices into the last handled batch) of the event messages to deliver to the
    /// app, in order. `out` is cleared first. Drain right after `handle_response`.
    pub fn take_deliveries(&mut self, out: &mut Vec<u32>) {
        out.clear();
        out.append(&mut self.deliveries);
    }

    // ------------------------------------------------------------------------------------------
    // getters
    // ------------------------------------------------------------------------------------------

    /// Coarse state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Idle => State::Idle,
            Phase::Handshaking | Phase::AwaitingAuth if !self.opened => State::Handshaking,
            Phase::Handshaking => State::Handshaking,
            Phase::AwaitingAuth => State::Reconnecting,
            Phase::Connected if !self.opened => State::Handshaking,
            Phase::Connected
                if self.degraded && !matches!(self.connect, ConnectSlot::Paused { .. }) =>
            {
                State::Reconnecting
            }
            Phase::Connected => State::Connected,
            Phase::Closing => State::Closing,
            Phase::Closed => State::Closed,
        }
    }

    /// True once closed (by `close()` or a fatal error).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The current Bayeux client id.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// Confirmed + pending explicit subscriptions.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.subs.iter().map(|s| s.channel.as_str())
    }

    /// Delivered but not consumed events.
    pub fn pending_count(&self) -> usize {
        self.delivered.len()
    }

    /// Delivered events still in the prefetch buffer (neither taken nor consumed): what
    /// `max_pending` bounds.
    pub fn prefetched_count(&self) -> usize {
        self.delivered.len().saturating_sub(self.taken)
    }

    /// `Some("long-polling")` while open.
    pub fn connection_type(&self) -> Option<&'static str> {
        if self.opened
            && matches!(
                self.phase,
                Phase::Connected | Phase::Handshaking | Phase::AwaitingAuth | Phase::Closing
            )
        {
            Some("long-polling")
        } else {
            None
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The last marker delivered to the buffer for `channel` (filter ignored).
    pub fn marker(&self, channel: &str) -> Option<ReplayMarker> {
        let key = replay_key(channel);
        self.chans
            .iter()
            .find(|c| c.key == key)
            .and_then(|c| c.marker.clone())
    }

    // ------------------------------------------------------------------------------------------
    // internals
    // ------------------------------------------------------------------------------------------

    fn check_usable(&self) -> Result<(), ProtoError> {
        match self.phase {
            Phase::Closed | Phase::Closing => Err(ProtoError::InvalidOperation("client is closed")),
            _ => Ok(()),
        }
    }

    fn next_msg_id(&mut self) -> String {
        self.msg_counter += 1;
        self.msg_counter.to_string()
    }

    fn next_req(&mut self) -> RequestId {
        self.req_counter += 1;
        RequestId(self.req_counter)
    }

    fn next_op(&mut self) -> OpId {
        self.op_counter += 1;
        OpId(self.op_counter)
    }

    /// The timeout of a request that is not a long-poll: a reply that has not come within the
    /// connection timeout will not help the client meet it (a stalled subscribe reply used to
    /// hold an explicit operation, and every operation queued behind it, for 30 s and more).
    /// A tiny connection timeout still leaves a request the long-poll's minimum.
    fn request_timeout(&self) -> Millis {
        match self.config.connection_timeout {
            Some(ct) => self
                .config
                .request_timeout
                .min(ct.max(MIN_LONG_POLL_TIMEOUT)),
            None => self.config.request_timeout,
        }
    }

    fn control_request(
        &mut self,
        kind: RequestKind,
        body: String,
        msg_id: String,
        what: CtlWhat,
        timeout: Millis,
    ) -> Request {
        let id = self.next_req();
        self.control = Some(Ctl { id, msg_id, what });
        Request {
            id,
            kind,
            body,
            timeout,
        }
    }

    fn chan_index(&mut self, key: &str) -> usize {
        if let Some(i) = self.chans.iter().position(|c| c.key == key) {
            return i;
        }
        self.chans.push(ChanState {
            key: key.to_string(),
            marker: None,
            floor: None,
            persisted: None,
            gap_filter: None,
        });
        self.chans.len() - 1
    }

    fn reset_advice(&mut self) {
        self.advice_reconnect = Reconnect::Retry;
        self.advice_interval = 0;
    }

    fn recovery_deadline(&self) -> Option<Millis> {
        if !matches!(
            self.phase,
            Phase::Handshaking | Phase::Connected | Phase::AwaitingAuth
        ) {
            return None;
        }
        let since = self.recovering_since?;
        let ct = self.config.connection_timeout?;
        Some(since.saturating_add(ct))
    }

    /// When to try again after a failure, `delay` after `now`: never so late that the last try
    /// has no time to be answered before the connection timeout (a short 503 burst used to fail
    /// the client with half its budget unused, the next try scheduled past the deadline). Once
    /// that last try is behind, at the deadline itself, where the timeout fails the session.
    fn retry_at(&self, now: Millis, delay: Millis) -> Millis {
        let at = now.saturating_add(delay);
        let (Some(since), Some(ct)) = (self.recovering_since, self.config.connection_timeout)
        else {
            return at;
        };
        let deadline = since.saturating_add(ct);
        let last_try = deadline.saturating_sub((ct / 10).min(LAST_TRY_MARGIN));
        if at <= last_try {
            at
        } else if now < last_try {
            last_try
        } else {
            deadline.max(now)
        }
    }

    /// Mark a failure; returns true (after failing the session) if the connection timeout elapsed.
    fn note_failure(&mut self, now: Millis) -> bool {
        let since = *self.recovering_since.get_or_insert(now);
        if let Some(ct) = self.config.connection_timeout {
            if now.saturating_sub(since) >= ct {
                self.timed_out();
                return true;
            }
        }
        false
    }

    fn abort_connect(&mut self) {
        if matches!(self.connect, ConnectSlot::InFlight { .. }) {
            self.events.push_back(Event::AbortAll);
        }
        self.connect = ConnectSlot::Idle;
    }

    fn fail_ops(&mut self, err: &ProtoError) {
        for job in std::mem::take(&mut self.queue) {
            if let Some(op) = job.op() {
                self.events.push_back(Event::OpDone {
                    op,
                    result: Err(err.clone()),
                });
            }
        }
        if let Some(ctl) = &mut self.control {
            if let CtlWhat::Job(job) = &ctl.what {
                if let Some(op) = job.op() {
                    self.events.push_back(Event::OpDone {
                        op,
                        result: Err(err.clone()),
                    });
                }
                ctl.what = CtlWhat::Orphan;
            }
        }
    }

    fn finish_close(&mut self) {
        self.phase = Phase::Closed;
        self.closing_deadline = None;
        self.client_id = None;
        self.connect = ConnectSlot::Idle;
        self.hs = HsSlot::None;
        self.control = None;
        self.queue.clear();
        self.subs.clear();
        self.recovering_since = None;
        self.events.push_back(Event::Closed);
    }

    /// The connection timeout passed while recovering: fail with what kept the client out (the
    /// server's last refusal, the last transport failure), or as a failed login when it was
    /// waiting for the authenticator (which did not answer, or could not reach its endpoint).
    fn timed_out(&mut self) {
        let err = if self.phase == Phase::AwaitingAuth {
            ProtoError::Authentication(
                "could not log in again within the connection timeout".to_owned(),
            )
        } else {
            match self.last_trouble.take() {
                Some(Trouble::Refused(e)) => ProtoError::TimeoutRefused(e),
                Some(Trouble::Failed(f)) => ProtoError::TimeoutFailed(f),
                None => ProtoError::Timeout,
            }
        };
        self.fatal(err);
    }

    /// Unrecoverable: report, resolve pending operations, close.
    fn fatal(&mut self, err: ProtoError) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.fail_ops(&err);
        self.abort_connect();
        if self.opened {
            self.events.push_back(Event::Failed(err));
        } else {
            self.events.push_back(Event::OpenFailed(err));
        }
        self.finish_close();
    }

    fn need_auth(&mut self, now: Millis, err: &ServerError) {
        if self.auth_rounds >= MAX_AUTH_ROUNDS {
            let msg = format!(
                "the server rejected the credentials after {} re-authentications: {}",
                self.auth_rounds,
                err.failure_reason.as_deref().unwrap_or(&err.message)
            );
            self.fatal(ProtoError::Authentication(msg));
            return;
        }
        self.auth_rounds += 1;
        self.abort_connect();
        self.client_id = None;
        self.hs = HsSlot::None;
        self.phase = Phase::AwaitingAuth;
        // A fresh recovery window for the new token: an authenticator that never answers is then
        // bounded by the connection timeout like any other way of not getting back.
        self.recovering_since = Some(now);
        self.degraded = true;
        self.events.push_back(Event::Reconnecting {
            reason: ReconnectReason::AuthInvalid,
            attempt: self.auth_rounds,
            delay: 0,
        });
        self.events.push_back(Event::NeedAuth);
    }

    fn rehandshake(&mut self, now: Millis, reason: ReconnectReason, is_failure: bool) {
        if self.phase != Phase::Connected {
            return;
        }
        self.abort_connect();
        self.client_id = None;
        self.stats.rehandshakes += 1;
        self.degraded = true;
        self.events.push_back(Event::Rehandshake { reason });
        let delay = if is_failure {
            if self.note_failure(now) {
                return;
            }
            let d = if self.failures == 0 {
                self.advice_interval
            } else {
                self.backoff.delay(self.failures)
            };
            self.failures += 1;
            self.retry_at(now, d).saturating_sub(now)
        } else {
            0
        };
        self.phase = Phase::Handshaking;
        self.hs = HsSlot::Due(now.saturating_add(delay));
    }

    fn on_response<B: BatchSource>(&mut self, now: Millis, id: RequestId, status: u16, b: &B) {
        self.deliveries.clear();
        let is_connect =
            matches!(&self.connect, ConnectSlot::InFlight { id: cid, .. } if *cid == id);
        let is_control = !is_connect && self.control.as_ref().is_some_and(|c| c.id == id);
        if !is_connect && !is_control {
            return; // stale or unknown request: ignored
        }
        let is_handshake = is_control
            && matches!(
                self.control.as_ref().map(|c| &c.what),
                Some(CtlWhat::Handshake)
            );
        let is_disconnect = is_control
            && matches!(
                self.control.as_ref().map(|c| &c.what),
                Some(CtlWhat::Disconnect)
            );
        let mut server_disconnect = false;
        if !is_handshake {
            // A batch is usually thousands of events of one channel: resolve each channel index
            // of the batch to a subscription once, not once per event.
            let mut last: Option<(u32, Option<usize>)> = None;
            for i in 0..b.len() {
                match b.msg(i) {
                    Msg::Event {
                        channel,
                        replay_id,
                        date_ms,
                    } => {
                        let ci = match last {
                            Some((idx, ci)) if idx == channel => ci,
                            _ => {
                                let ci = b.channel(channel).and_then(|n| self.chan_of(n));
                                last = Some((channel, ci));
                                ci
                            }
                        };
                        self.accept_event(i, ci, replay_id, date_ms);
                    }
                    Msg::Meta(m) if m.channel == "/meta/disconnect" && !is_disconnect => {
                        server_disconnect = true
                    }
                    _ => {}
                }
            }
        }
        if is_connect {
            let ConnectSlot::InFlight { msg_id, first, .. } =
                std::mem::replace(&mut self.connect, ConnectSlot::Idle)
            else {
                return;
            };
            match find_reply(b, "/meta/connect", &msg_id, status) {
                Ok((_, m)) => self.on_connect_reply(now, &m, first, server_disconnect),
                Err(f) => {
                    if server_disconnect {
                        self.rehandshake(now, ReconnectReason::ServerDisconnect, true);
                    } else {
                        self.connect_failed(now, f);
                    }
                }
            }
            return;
        }
        let Some(ctl) = self.control.take() else {
            return;
        };
        match ctl.what {
            CtlWhat::Orphan => {}
            CtlWhat::Disconnect => self.finish_close(),
            CtlWhat::Handshake if self.phase == Phase::Closing => {
                // close() was called while it was in flight: disconnect the session it made.
                let cid = find_reply(b, "/meta/handshake", &ctl.msg_id, status)
                    .ok()
                    .filter(|(_, m)| m.successful == Some(true))
                    .and_then(|(_, m)| m.client_id.filter(|c| !c.is_empty()).map(str::to_owned));
                match cid {
                    Some(cid) => {
                        self.client_id = Some(cid);
                        self.closing_deadline = None; // the disconnect has its own timeout
                    }
                    None => self.finish_close(),
                }
            }
            CtlWhat::Handshake => {
                self.hs = HsSlot::None;
                match find_reply(b, "/meta/handshake", &ctl.msg_id, status) {
                    Ok((_, m)) => self.on_handshake_reply(now, &m, status),
                    Err(f) => self.handshake_transport_failed(now, f),
                }
            }
            CtlWhat::Job(job) => {
                let reply_channel = match &job.kind {
                    JobKind::Subscribe { .. } => "/meta/subscribe",
                    JobKind::Unsubscribe { .. } => "/meta/unsubscribe",
                    JobKind::Publish { channel, .. } => channel.as_str(),
                };
                match find_reply(b, reply_channel, &ctl.msg_id, status) {
                    Ok((pos, m)) => self.on_job_reply(now, job, pos, &m),
                    Err(f) => self.job_failed(now, job, f),
                }
                if server_disconnect {
                    self.rehandshake(now, ReconnectReason::ServerDisconnect, true);
                }
            }
        }
    }

    /// The subscription an event channel belongs to (by its replay key).
    fn chan_of(&self, name: &str) -> Option<usize> {
        let key = replay_key(name);
        self.chans.iter().position(|c| c.key == key)
    }

    fn accept_event(
        &mut self,
        pos: usize,
        ci: Option<usize>,
        replay_id: Option<i64>,
        date_ms: Option<f64>,
    ) {
        let Ok(pos) = u32::try_from(pos) else { return };
        match (ci, replay_id) {
            (Some(ci), Some(r)) => {
                let Some(c) = self.chans.get_mut(ci) else {
                    return;
                };
                if c.floor.is_some_and(|f| r <= f) {
                    return; // duplicate of an event already delivered since the last explicit subscribe
                }
                let date = date_ms.filter(|d| d.is_finite() && *d > 0.0).unwrap_or(0.0);
                if let Some(since) = c.gap_filter {
                    if date > 0.0 && date < since {
                        return; // retained before the original subscription (gap-free resubscribe)
                    }
                    c.gap_filter = None;
                }
                c.floor = Some(r);
                let m = ReplayMarker {
                    replay_id: r,
                    date_ms: date,
                };
                c.marker = Some(m.clone());
                self.delivered.push_back(Some((ci, m)));
            }
            _ => self.delivered.push_back(None),
        }
        self.deliveries.push(pos);
        self.stats.events_delivered += 1;
    }

    fn merge_advice(&mut self, m: &MetaView<'_>) {
        if let Some(a) = m.advice {
            if let Some(r) = a.reconnect {
                self.advice_reconnect = r;
            }
            if let Some(i) = a.interval {
                self.advice_interval = i;
            }
            if let Some(t) = a.timeout {
                self.advice_timeout = t;
            }
        }
    }

    fn on_connect_reply(
        &mut self,
        now: Millis,
        m: &MetaView<'_>,
        first: bool,
        server_disconnect: bool,
    ) {
        self.merge_advice(m);
        if m.successful == Some(true) {
            self.stats.last_connect_at = now;
            self.recovering_since = None;
            self.last_trouble = None;
            if !first {
                // Only a long-poll that comes back proves the session works. The immediate reply
                // to the first connect of a session does not: a resubscribe can still come back
                // `403::Unknown client`, and with the back-off reset here each round would
                // re-handshake at once, a storm Salesforce ends with its concurrent-client limit.
                self.failures = 0;
                self.auth_rounds = 0;
            }
            if !self.opened {
                self.opened = true;
                self.degraded = false;
                self.events.push_back(Event::Opened);
                self.events.push_back(Event::Connected);
            } else if self.degraded {
                self.degraded = false;
                self.events.push_back(Event::Connected);
            }
            if server_disconnect || self.advice_reconnect == Reconnect::None {
                self.rehandshake(now, ReconnectReason::ServerDisconnect, true);
                return;
            }
            if self.advice_reconnect == Reconnect::Handshake {
                self.rehandshake(now, ReconnectReason::UnknownClient, true);
                return;
            }
            let mc = m.advice.is_some_and(|a| a.multiple_clients);
            if mc && !self.multiple_clients_announced {
                self.multiple_clients_announced = true;
                self.events.push_back(Event::Reconnecting {
                    reason: ReconnectReason::MultipleClients,
                    attempt: 0,
                    delay: self.advice_interval,
                });
            } else if !mc && m.advice.is_some() {
                self.multiple_clients_announced = false;
            }
            self.schedule_next_connect(now);
            return;
        }
        // failed connect
        let err = ServerError::new(m.channel, m.error, m.failure_reason);
        let advice = m.advice.and_then(|a| a.reconnect);
        if server_disconnect || is_unknown_client(&err) || advice == Some(Reconnect::Handshake) {
            let reason = if server_disconnect {
                ReconnectReason::ServerDisconnect
            } else {
                ReconnectReason::UnknownClient
            };
            self.rehandshake(now, reason, true);
        } else if err.failure_code() == Some(503) || err.code == Some(503) {
            self.last_trouble = Some(Trouble::Refused(err));
            if advice == Some(Reconnect::None) {
                self.rehandshake(now, ReconnectReason::ServerBusy, true);
            } else {
                self.retry_connect(now, ReconnectReason::ServerBusy);
            }
        } else if is_auth_error(&err) {
            self.need_auth(now, &err);
        } else if advice == Some(Reconnect::None) {
            self.fatal(ProtoError::Server(err));
        } else {
            self.last_trouble = Some(Trouble::Refused(err));
            self.retry_connect(now, ReconnectReason::ServerBusy);
        }
    }

    fn schedule_next_connect(&mut self, now: Millis) {
        if self.buffer_full() {
            self.connect = ConnectSlot::Paused { since: now };
            if !self.pause_announced {
                self.pause_announced = true;
                self.degraded = true;
                self.events.push_back(Event::Reconnecting {
                    reason: ReconnectReason::BufferFullPause,
                    attempt: 0,
                    delay: 0,
                });
            }
        } else {
            self.connect = ConnectSlot::Due {
                at: now.saturating_add(self.advice_interval),
                first: false,
            };
        }
    }

    fn buffer_full(&self) -> bool {
        self.config
            .max_pending
            .is_some_and(|n| n > 0 && self.prefetched_count() >= n)
    }

    fn maybe_resume(&mut self, now: Millis) {
        let ConnectSlot::Paused { since } = self.connect else {
            return;
        };
        if self.buffer_full() || self.phase != Phase::Connected {
            return;
        }
        let announced = std::mem::take(&mut self.pause_announced);
        if now.saturating_sub(since) > self.config.max_pause {
            // The server has dropped (or is about to drop) the session: skip the dead connect and
            // start over from the in-memory markers.
            self.connect = ConnectSlot::Idle;
            self.rehandshake(now, ReconnectReason::BufferFullPause, false);
        } else {
            self.connect = ConnectSlot::Due {
                at: now,
                first: false,
            };
            if announced {
                // Observers saw "reconnecting (bufferFull)": tell them polling runs again.
                self.events.push_back(Event::Connected);
            }
        }
    }

    fn retry_connect(&mut self, now: Millis, reason: ReconnectReason) {
        if self.note_failure(now) {
            return;
        }
        self.failures += 1;
        let backoff = self.backoff.delay(self.failures);
        let delay = self.retry_at(now, backoff).saturating_sub(now);
        self.stats.reconnects += 1;
        self.degraded = true;
        self.events.push_back(Event::Reconnecting {
            reason,
            attempt: self.failures,
            delay,
        });
        // The retry asks for an immediate reply (`advice.timeout: 0`, as CometD's clients do when
        // not connected): a retry the server held for up to 110 s would outlast the connection
        // timeout, and the session would be failed while it works.
        self.connect = ConnectSlot::Due {
            at: now.saturating_add(delay),
            first: true,
        };
    }

    fn connect_failed(&mut self, now: Millis, failure: TransportFailure) {
        self.last_trouble = Some(Trouble::Failed(failure.clone()));
        if failure == TransportFailure::HttpStatus(401) {
            let err = ServerError::new("/meta/connect", Some("401::HTTP 401"), None);
            self.need_auth(now, &err);
            return;
        }
        if !self.subs.is_empty() && reply_may_be_lost(&failure) {
            // The server may have answered this long-poll with events that never arrived: it
            // has taken them off the session's queue, and Salesforce has no acknowledgement
            // extension, so the same session would never send them again. A new session
            // resubscribes from the last delivered event of each channel and gets them replayed.
            self.rehandshake(now, ReconnectReason::of(&failure), true);
            return;
        }
        self.retry_connect(now, ReconnectReason::of(&failure));
    }

    fn on_handshake_reply(&mut self, now: Millis, m: &MetaView<'_>, status: u16) {
        if m.successful == Some(true) {
            let Some(cid) = m.client_id.filter(|c| !c.is_empty()) else {
                self.handshake_transport_failed(
                    now,
                    TransportFailure::Malformed("handshake reply without clientId".into()),
                );
                return;
            };
            if m.supported_connection_types_has_long_polling == Some(false) {
                self.fatal(ProtoError::UnsupportedConnectionType);
                return;
            }
            // Salesforce's handshake reply carries no advice: never keep an old "handshake" advice.
            self.reset_advice();
            if let Some(a) = m.advice {
                if let Some(i) = a.interval {
                    self.advice_interval = i;
                }
                if let Some(t) = a.timeout {
                    self.advice_timeout = t;
                }
            }
            self.client_id = Some(cid.to_string());
            self.phase = Phase::Connected;
            self.connect = ConnectSlot::Due {
                at: now,
                first: true,
            };
            self.queue_resubscribes(now);
            return;
        }
        let err = ServerError::new(m.channel, m.error, m.failure_reason);
        if is_auth_error(&err) {
            self.need_auth(now, &err);
        } else if !is_retryable_denial(&err)
            && (!self.opened || err.code == Some(400) || status == 400)
        {
            self.fatal(ProtoError::Server(err));
        } else {
            self.last_trouble = Some(Trouble::Refused(err));
            self.handshake_retry(now, ReconnectReason::ServerBusy);
        }
    }

    fn handshake_transport_failed(&mut self, now: Millis, failure: TransportFailure) {
        self.last_trouble = Some(Trouble::Failed(failure.clone()));
        match failure {
            TransportFailure::HttpStatus(401) => {
                let err = ServerError::new("/meta/handshake", Some("401::HTTP 401"), None);
                self.need_auth(now, &err);
            }
            // Refused for good before the session ever opened: a client error status, or a
            // redirect (not followed; instanceUrl is wrong).
            TransportFailure::HttpStatus(s)
                if !self.opened
                    && (((400..500).contains(&s) && s != 408 && s != 429) || is_redirect(s)) =>
            {
                self.fatal(ProtoError::Transport(TransportFailure::HttpStatus(s)));
            }
            f => self.handshake_retry(now, ReconnectReason::of(&f)),
        }
    }

    fn handshake_retry(&mut self, now: Millis, reason: ReconnectReason) {
        if self.phase != Phase::Handshaking {
            self.phase = Phase::Handshaking;
        }
        if self.note_failure(now) {
            return;
        }
        self.failures += 1;
        let backoff = self.backoff.delay(self.failures);
        let at = self.retry_at(now, backoff);
        self.degraded = true;
        self.events.push_back(Event::Reconnecting {
            reason,
            attempt: self.failures,
            delay: at.saturating_sub(now),
        });
        self.hs = HsSlot::Due(at);
    }

    fn resubscribe_value(&self, s: &SubEntry) -> Option<i64> {
        let key = replay_key(&s.channel);
        let floor = self
            .chans
            .iter()
            .find(|c| c.key == key)
            .and_then(|c| c.floor);
        floor.or(s.replay).or(self.config.replay_fallback)
    }

    fn queue_resubscribes(&mut self, now: Millis) {
        self.queue.retain(|j| !j.is_auto());
        let mut jobs: Vec<Job> = Vec::new();
        let mut gap_filters: Vec<(String, f64)> = Vec::new();
        for s in self.subs.iter().filter(|s| s.confirmed) {
            let mut replay = self.resubscribe_value(s);
            let key = replay_key(&s.channel);
            let has_floor = self.chans.iter().any(|c| c.key == key && c.floor.is_some());
            // A channel subscribed for new events that has delivered nothing yet has no replay id to
            // resume from: events published during the outage would be lost with -1. Resubscribe with
            // ALL_EVENTS and drop the retained events older than the original subscription instead.
            if !has_floor && matches!(s.replay, None | Some(NEW_EVENTS)) && s.since_wall > 0.0 {
                replay = Some(ALL_EVENTS);
                gap_filters.push((key.to_string(), s.since_wall - GAP_SKEW_MS));
            }
            jobs.push(Job::new(
                JobKind::Subscribe {
                    channel: s.channel.clone(),
                    replay,
                    op: None,
                },
                now,
            ));
        }
        for (key, since) in gap_filters {
            if let Some(c) = self.chans.iter_mut().find(|c| c.key == key) {
                c.gap_filter = Some(since);
            }
        }
        for j in jobs.into_iter().rev() {
            self.queue.push_front(j);
        }
        // Queued user operations may have been waiting with a back-off: the new session is ready now.
        for j in self.queue.iter_mut() {
            j.ready_at = j.ready_at.min(now);
        }
    }

    fn on_job_reply(&mut self, now: Millis, job: Job, pos: usize, m: &MetaView<'_>) {
        let pos32 = u32::try_from(pos).ok();
        if m.successful == Some(true) {
            match &job.kind {
                JobKind::Subscribe { channel, op, .. } => {
                    if let Some(s) = self.subs.iter_mut().find(|s| s.channel == *channel) {
                        s.confirmed = true;
                        if op.is_some() {
                            s.replaced = None;
                        }
                    }
                    if let Some(op) = op {
                        self.events.push_back(Event::OpDone {
                            op: *op,
                            result: Ok(None),
                        });
                    }
                }
                JobKind::Unsubscribe { op, .. } => self.events.push_back(Event::OpDone {
                    op: *op,
                    result: Ok(None),
                }),
                JobKind::Publish { op, .. } => self.events.push_back(Event::OpDone {
                    op: *op,
                    result: Ok(pos32),
                }),
            }
            return;
        }
        let err = ServerError::new(m.channel, m.error, m.failure_reason);
        if is_unknown_client(&err)
            || m.advice.and_then(|a| a.reconnect) == Some(Reconnect::Handshake)
        {
            self.requeue_after_session_loss(job);
            self.rehandshake(now, ReconnectReason::UnknownClient, true);
            return;
        }
        if is_auth_error(&err) {
            self.requeue_after_session_loss(job);
            if self.phase == Phase::Connected {
                self.need_auth(now, &err);
            }
            return;
        }
        if matches!(job.kind, JobKind::Subscribe { .. }) && is_retryable_denial(&err) {
            // `503` / "server too busy": temporary, as for handshakes and connects. An automatic
            // resubscribe that failed the session here would end it for good.
            self.retry_job(now, job, ProtoError::Server(err));
            return;
        }
        match job.kind {
            JobKind::Subscribe {
                channel,
                replay,
                op,
            } => {
                if is_replay_error(err.code, &err.message) {
                    if let Some(fb) = self.config.replay_fallback.filter(|fb| Some(*fb) != replay) {
                        self.stats.fallbacks += 1;
                        self.events.push_back(Event::ReplayFallback {
                            channel: channel.clone(),
                            replay_id: replay.unwrap_or(fb),
                            fallback: fb,
                            reason: FallbackReason::ReplayRejected,
                        });
                        if let Some(s) = self.subs.iter_mut().find(|s| s.channel == channel) {
                            s.replay = Some(fb);
                        }
                        if let Some(c) = self
                            .chans
                            .iter_mut()
                            .find(|c| c.key == replay_key(&channel))
                        {
                            c.floor = None;
                        }
                        self.queue.push_front(Job::new(
                            JobKind::Subscribe {
                                channel,
                                replay: Some(fb),
                                op,
                            },
                            now,
                        ));
                        return;
                    }
                }
                match op {
                    Some(op) => {
                        self.forget_refused_subscribe(&channel);
                        self.events.push_back(Event::OpDone {
                            op,
                            result: Err(ProtoError::Server(err)),
                        });
                    }
                    None => self.fatal(ProtoError::Server(err)),
                }
            }
            JobKind::Unsubscribe { op, .. } | JobKind::Publish { op, .. } => {
                self.events.push_back(Event::OpDone {
                    op,
                    result: Err(ProtoError::Server(err)),
                });
            }
        }
    }

    /// An explicit subscribe failed: a channel that was not subscribed leaves the resubscribe set;
    /// one that was keeps the subscription the server kept (its replay value, and the duplicate
    /// floor unless events arrived since).
    fn forget_refused_subscribe(&mut self, channel: &str) {
        let Some(i) = self.subs.iter().position(|s| s.channel == channel) else {
            return;
        };
        if !self.subs[i].confirmed {
            self.subs.remove(i);
            return;
        }
        let Some(old) = self.subs[i].replaced.take() else {
            return;
        };
        self.subs[i].replay = old.replay;
        self.subs[i].since_wall = old.since_wall;
        let key = replay_key(channel);
        if let Some(c) = self.chans.iter_mut().find(|c| c.key == key) {
            if c.floor.is_none() {
                c.floor = old.floor;
            }
        }
    }

    /// The session died under a control request: keep explicit operations for the next session;
    /// automatic resubscribes are regenerated after the handshake.
    fn requeue_after_session_loss(&mut self, job: Job) {
        match &job.kind {
            JobKind::Subscribe { op: None, .. } => {}
            JobKind::Unsubscribe { op, .. } => {
                // The new session will not resubscribe this channel: done.
                self.events.push_back(Event::OpDone {
                    op: *op,
                    result: Ok(None),
                });
            }
            _ => self.queue.push_front(job),
        }
    }

    fn job_failed(&mut self, now: Millis, job: Job, failure: TransportFailure) {
        if matches!(self.phase, Phase::Closed | Phase::Closing) {
            return;
        }
        if failure == TransportFailure::HttpStatus(401) {
            self.requeue_after_session_loss(job);
            if self.phase == Phase::Connected {
                let err = ServerError::new("/meta/subscribe", Some("401::HTTP 401"), None);
                self.need_auth(now, &err);
            }
            return;
        }
        if let JobKind::Publish { op, .. } = job.kind {
            self.events.push_back(Event::OpDone {
                op,
                result: Err(ProtoError::Transport(failure)),
            });
            return;
        }
        self.retry_job(now, job, ProtoError::Transport(failure));
    }

    /// Send a subscribe or unsubscribe again after a back-off, until the connection timeout has
    /// passed since it was first sent; then an explicit operation fails with `err`, and an
    /// automatic resubscribe fails the session (with `TimeoutFailed` after transport failures).
    fn retry_job(&mut self, now: Millis, mut job: Job, err: ProtoError) {
        let first = *job.first_sent.get_or_insert(now);
        if self
            .config
            .connection_timeout
            .is_some_and(|ct| now.saturating_sub(first) >= ct)
        {
            match job.op() {
                Some(op) => {
                    if let JobKind::Subscribe { channel, .. } = &job.kind {
                        self.forget_refused_subscribe(channel);
                    }
                    self.events.push_back(Event::OpDone {
                        op,
                        result: Err(err),
                    });
                }
                None => self.fatal(match err {
                    ProtoError::Transport(f) => ProtoError::TimeoutFailed(f),
                    e => e,
                }),
            }
            return;
        }
        job.attempts += 1;
        job.ready_at = now.saturating_add(self.backoff.delay(job.attempts));
        if let Some(ct) = self.config.connection_timeout {
            // The last try goes out at the deadline, not one back-off step (up to 30 s) past it.
            job.ready_at = job.ready_at.min(first.saturating_add(ct));
        }
        self.queue.push_front(job);
    }
}

/// Whether a long-poll that failed this way may have carried events the client never read: the
/// connection failed or timed out, the body was cut or unreadable, or a gateway (502, 504) stood
/// between the client and a server that may have answered. An error status from the server
/// itself (503 and the like) carries no events.
fn reply_may_be_lost(failure: &TransportFailure) -> bool {
    match failure {
        TransportFailure::Network(_)
        | TransportFailure::Timeout
        | TransportFailure::Malformed(_) => true,
        TransportFailure::HttpStatus(s) => *s == 502 || *s == 504,
    }
}

/// The server lost (or never had) our session: `403::Unknown client`, `403::Client has not
/// completed handshake`, `400::Client .. has established a session, but no BAYEUX_BROWSER cookie present`.
fn is_unknown_client(err: &ServerError) -> bool {
    let m = err.message.to_ascii_lowercase();
    m.contains("unknown client")
        || m.contains("not completed handshake")
        || m.contains("cookie present")
}

fn is_auth_error(err: &ServerError) -> bool {
    err.failure_code() == Some(401) || (err.code == Some(401) && err.failure_code().is_none())
}

fn is_retryable_denial(err: &ServerError) -> bool {
    let fr = err.failure_reason.as_deref().unwrap_or("");
    let lower = fr.to_ascii_lowercase();
    err.failure_code() == Some(503)
        || err.code == Some(503)
        || lower.contains("concurrent user limit")
        || lower.contains("denial of service")
        || lower.contains("too busy")
        || fr.starts_with("SERVER_UNAVAILABLE")
}

/// Find the reply to our request in a batch: the first meta message on `channel` whose id is ours
/// (or absent). Non-2xx statuses other than Bayeux-carrying 4xx are transport failures.
fn find_reply<'b, B: BatchSource>(
    b: &'b B,
    channel: &str,
    msg_id: &str,
    status: u16,
) -> Result<(usize, MetaView<'b>), TransportFailure> {
    let usable = (200..300).contains(&status)
        || ((400..500).contains(&status) && status != 408 && status != 429);
    if !usable {
        return Err(TransportFailure::HttpStatus(status));
    }
    for i in 0..b.len() {
        if let Msg::Meta(m) = b.msg(i) {
            if m.channel == channel && m.id.map_or(true, |id| id == msg_id) {
                return Ok((i, m));
            }
        }
    }
    if (200..300).contains(&status) {
        Err(TransportFailure::Malformed(format!(
            "no reply on {channel} in the response"
        )))
    } else {
        Err(TransportFailure::HttpStatus(status))
    }
}
