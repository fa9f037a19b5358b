//! Shared server state: configuration, sessions, the event store, counters and fault injection.

use crate::oauth::{OAuth, TokenStatus};
use crate::store::{Body, Published, Store};
use crate::util::Clock;
use crate::Config;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the server keeps serving).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One subscription of a session.
#[derive(Debug)]
pub struct Sub {
    /// The subscription as the client sent it (may carry a PushTopic filter).
    pub subscription: String,
    /// Next absolute sequence number to deliver from the channel.
    pub cursor: u64,
}

/// A held `/meta/connect`.
#[derive(Debug)]
pub struct Hold {
    /// Generation of the connect that holds.
    pub gen: u64,
    /// Woken on new events, supersession, expiry or server-initiated disconnect.
    pub waker: Arc<Notify>,
}

/// A Bayeux session (one clientId).
#[derive(Debug)]
pub struct Session {
    /// The clientId.
    pub client_id: String,
    /// The `BAYEUX_BROWSER` cookie it is bound to.
    pub browser: String,
    /// The authenticated user.
    pub username: String,
    /// The user's id (`005…`).
    pub user_id: String,
    /// Subscriptions by channel (without filter).
    pub subs: BTreeMap<String, Sub>,
    /// Whether the first connect has been answered.
    pub connected: bool,
    /// The held connect, if any.
    pub hold: Option<Hold>,
    /// Connect generation counter.
    pub gen: u64,
    /// Real time of the last reply or request (for the sweep).
    pub last_activity: Instant,
    /// A server-initiated `/meta/disconnect` is due.
    pub disconnect_pending: bool,
}

/// Mutable state behind one lock.
#[derive(Debug)]
pub struct Inner {
    /// The event store.
    pub store: Store,
    /// Sessions by clientId.
    pub sessions: HashMap<String, Session>,
    /// The clientId holding a connect, per `BAYEUX_BROWSER`.
    pub held_by_browser: HashMap<String, String>,
    /// PushTopics registered via the control API: name → entity.
    pub pushtopics: BTreeMap<String, String>,
    /// StreamingChannel records: id → `/u/` channel name.
    pub streaming_channels: BTreeMap<String, String>,
}

impl Inner {
    /// Removes a session, its subscriptions and wakes its held connect.
    pub fn remove_session(&mut self, client_id: &str) -> bool {
        let Some(s) = self.sessions.remove(client_id) else {
            return false;
        };
        for ch in s.subs.keys() {
            if let Some(c) = self.store.channels.get_mut(ch) {
                c.subscribers.remove(client_id);
            }
        }
        if self.held_by_browser.get(&s.browser).map(String::as_str) == Some(client_id) {
            self.held_by_browser.remove(&s.browser);
        }
        if let Some(h) = s.hold {
            h.waker.notify_one();
        }
        true
    }

    /// Wakes the held connects of every subscriber of `channel`.
    pub fn wake_subscribers(&self, channel: &str) {
        if let Some(c) = self.store.channels.get(channel) {
            for cid in &c.subscribers {
                if let Some(h) = self.sessions.get(cid).and_then(|s| s.hold.as_ref()) {
                    h.waker.notify_one();
                }
            }
        }
    }

    /// Publishes and wakes subscribers.
    pub fn publish(
        &mut self,
        channel: &str,
        body: &Body,
        count: u64,
        now_ms: u64,
    ) -> Option<Published> {
        let p = self.store.publish(channel, body, count, now_ms)?;
        self.wake_subscribers(channel);
        Some(p)
    }
}

/// Counters reported by `/_sfemu/stats`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Successful handshakes.
    pub handshakes: AtomicU64,
    /// Denied handshakes.
    pub failed_handshakes: AtomicU64,
    /// `/meta/connect` requests.
    pub connects: AtomicU64,
    /// Events delivered to clients.
    pub delivered: AtomicU64,
}

/// Injected faults for the next CometD requests.
#[derive(Debug, Default)]
pub struct Faults {
    /// HTTP status and remaining count.
    pub fail: Option<(u16, u64)>,
    /// The `Location` of a failure status that is a redirect (3xx).
    pub location: String,
    /// Delay in ms and remaining count.
    pub delay: Option<(u64, u64)>,
    /// Responses carrying events still to cut: each is aborted after half of its body, once its
    /// events have left the session's queue (a connection lost while the reply was on its way).
    pub cut: u64,
}

/// Tracks live TCP connections so they can all be dropped.
#[derive(Debug, Default)]
pub struct Conns {
    /// Next connection id.
    pub next: AtomicU64,
    /// Abort handles by connection id.
    pub live: Mutex<HashMap<u64, tokio::task::AbortHandle>>,
}

impl Conns {
    /// Aborts every connection except `keep`; returns how many.
    pub fn drop_all(&self, keep: Option<u64>) -> usize {
        let mut live = lock(&self.live);
        let ids: Vec<u64> = live
            .keys()
            .copied()
            .filter(|id| Some(*id) != keep)
            .collect();
        for id in &ids {
            if let Some(h) = live.remove(id) {
                h.abort();
            }
        }
        ids.len()
    }
}

/// The id of the TCP connection a request came on (request extension).
#[derive(Clone, Copy, Debug)]
pub struct ConnId(pub u64);

/// Everything the handlers share.
pub struct App {
    /// Configuration.
    pub cfg: Config,
    /// OAuth (token checks).
    pub oauth: OAuth,
    /// The movable clock.
    pub clock: Arc<Clock>,
    /// Sessions and store.
    pub inner: Mutex<Inner>,
    /// Counters.
    pub counters: Counters,
    /// Fault injection.
    pub faults: Mutex<Faults>,
    /// Live connections.
    pub conns: Conns,
    /// The fixed channel list (`--channels`), if any.
    pub allowed: Option<HashSet<String>>,
}

impl App {
    /// Time on the movable clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Locks the shared state.
    pub fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Checks a token (None → no credentials presented).
    pub fn check(&self, token: Option<&str>) -> Option<TokenStatus> {
        token.map(|t| self.oauth.check_token(t))
    }

    /// Whether a /topic or /event channel exists (fixed list mode), or any name in open mode.
    pub fn channel_allowed(&self, inner: &Inner, channel: &str) -> bool {
        let Some(list) = &self.allowed else {
            return true;
        };
        if let Some(name) = channel.strip_prefix("/topic/") {
            return list.contains(channel)
                || list.contains(name)
                || inner.pushtopics.contains_key(name);
        }
        if let Some(name) = channel.strip_prefix("/event/") {
            return list.contains(channel) || list.contains(name);
        }
        true
    }
}

/// Counter increment helper.
pub fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Counter read helper.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
