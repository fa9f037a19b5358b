//! Replay markers, retention rules and per-channel replay bookkeeping helpers.

/// ReplayOption NEW_EVENTS: only events published after subscribing.
pub const NEW_EVENTS: i64 = -1;
/// ReplayOption ALL_EVENTS: every event still in the retention window, then new ones.
pub const ALL_EVENTS: i64 = -2;

const HOUR_MS: u64 = 3_600_000;

/// The position of an event in its channel's stream: its replay id and its date.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayMarker {
    /// `data.event.replayId`.
    pub replay_id: i64,
    /// The event date in epoch ms; `0.0` when the event carried no date (unknown).
    pub date_ms: f64,
}

impl ReplayMarker {
    /// True if `self` is strictly later than `other`: by date when both dates are known and
    /// differ, else by replay id. Markers never move backwards by this order.
    pub fn is_newer_than(&self, other: &ReplayMarker) -> bool {
        let known = self.date_ms > 0.0 && other.date_ms > 0.0;
        if known && self.date_ms != other.date_ms {
            self.date_ms > other.date_ms
        } else {
            self.replay_id > other.replay_id
        }
    }

    /// True if the marker's date is known and older than the retention of `channel` at `wall_ms`.
    pub fn is_expired(&self, channel: &str, wall_ms: f64) -> bool {
        self.date_ms > 0.0
            && wall_ms.is_finite()
            && wall_ms - self.date_ms > retention_ms(channel) as f64
    }
}

/// Why the core replaced a replay id by `Config::replay_fallback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// The server rejected the replay id (`400::The replayId {..} you provided was invalid`, or not found in the map).
    ReplayRejected,
    /// The stored marker is older than the channel's retention window, so it was not even tried.
    Retention,
}

impl FallbackReason {
    /// A short stable name (`"replay-rejected"`, `"retention"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::ReplayRejected => "replay-rejected",
            FallbackReason::Retention => "retention",
        }
    }
}

/// The channel name used as the key of `ext.replay` and of stored markers: the channel without any
/// PushTopic filter query (`/topic/X?Name='a'` → `/topic/X`).
pub fn replay_key(channel: &str) -> &str {
    match channel.find('?') {
        Some(i) => &channel[..i],
        None => channel,
    }
}

/// How long Salesforce keeps events of `channel`: 72 h for platform events (`/event/`) and change
/// events (`/data/`), 24 h for PushTopic (`/topic/`), generic (`/u/`) and anything else.
pub fn retention_ms(channel: &str) -> u64 {
    if channel.starts_with("/event/") || channel.starts_with("/data/") {
        72 * HOUR_MS
    } else {
        24 * HOUR_MS
    }
}

/// True if a subscribe error message is about the replay id (invalid / not found in the map).
pub fn is_replay_error(code: Option<u16>, message: &str) -> bool {
    code == Some(400) && message.to_ascii_lowercase().contains("replayid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_retention() {
        assert_eq!(replay_key("/topic/X?Name='a'"), "/topic/X");
        assert_eq!(replay_key("/event/E__e"), "/event/E__e");
        assert_eq!(retention_ms("/topic/X"), 24 * HOUR_MS);
        assert_eq!(retention_ms("/u/X"), 24 * HOUR_MS);
        assert_eq!(retention_ms("/event/E__e"), 72 * HOUR_MS);
        assert_eq!(retention_ms("/data/ChangeEvents"), 72 * HOUR_MS);
    }

    #[test]
    fn marker_order() {
        let m = |id, d| ReplayMarker {
            replay_id: id,
            date_ms: d,
        };
        assert!(m(5, 2000.0).is_newer_than(&m(9, 1000.0)));
        assert!(!m(9, 1000.0).is_newer_than(&m(5, 2000.0)));
        assert!(m(6, 1000.0).is_newer_than(&m(5, 1000.0)));
        assert!(!m(5, 1000.0).is_newer_than(&m(5, 1000.0)));
        assert!(m(6, 0.0).is_newer_than(&m(5, 1000.0)));
    }

    #[test]
    fn expiry() {
        let now = 1_700_000_000_000.0;
        let m = ReplayMarker {
            replay_id: 1,
            date_ms: now - 25.0 * HOUR_MS as f64,
        };
        assert!(m.is_expired("/topic/X", now));
        assert!(!m.is_expired("/event/X__e", now));
        assert!(!ReplayMarker {
            replay_id: 1,
            date_ms: 0.0
        }
        .is_expired("/topic/X", now));
    }

    #[test]
    fn replay_errors() {
        assert!(is_replay_error(
            Some(400),
            "The replayId {82} you provided was invalid."
        ));
        assert!(is_replay_error(Some(400), "The replayId for channel {/topic/x} wasn't found using the provided replay ID map {{}}."));
        assert!(!is_replay_error(
            Some(400),
            "The channel you requested to subscribe to does not exist {/topic/X}"
        ));
        assert!(!is_replay_error(Some(403), "replayId"));
    }
}
