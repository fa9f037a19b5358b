//! Bayeux message projections (what the shell feeds in), requests (what the core hands out),
//! channel validation and hand-written JSON text building.

use super::error::ProtoError;

/// Milliseconds on the caller's monotonic clock.
pub type Millis = u64;

/// Identifies one HTTP request handed to the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// Identifies one user operation (subscribe/unsubscribe/publish) whose result the shell must report back to JS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpId(pub u64);

/// What a [`Request`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `/meta/handshake` (always alone in its body).
    Handshake,
    /// `/meta/connect`: the long-poll (always alone in its body).
    Connect,
    /// `/meta/subscribe`.
    Subscribe,
    /// `/meta/unsubscribe`.
    Unsubscribe,
    /// A publish on a non-meta channel.
    Publish,
    /// `/meta/disconnect`.
    Disconnect,
}

impl RequestKind {
    /// The Bayeux message type, usable as the optional URL suffix (`/cometd/62.0/connect`).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Handshake => "handshake",
            RequestKind::Connect => "connect",
            RequestKind::Subscribe => "subscribe",
            RequestKind::Unsubscribe => "unsubscribe",
            RequestKind::Publish => "publish",
            RequestKind::Disconnect => "disconnect",
        }
    }

    /// Whether a transport may send the request again when it cannot tell if the server got it
    /// (a reused keep-alive connection reset under it). A handshake, a subscribe, an unsubscribe
    /// or a disconnect done twice does no harm. A long-poll the server answered may have carried
    /// events it will not send again: its failure must reach the core (which starts a new session
    /// that replays them). A publish would be published twice.
    pub fn repeatable(self) -> bool {
        !matches!(self, RequestKind::Connect | RequestKind::Publish)
    }
}

/// A request the shell must POST to the CometD endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Report the outcome with this id (`handle_response` / `handle_failure`).
    pub id: RequestId,
    /// What the request is for.
    pub kind: RequestKind,
    /// JSON array text, ready to send (always an array; handshake alone; connect alone).
    pub body: String,
    /// Abort the request and report `TransportFailure::Timeout` after this long.
    pub timeout: Millis,
}

/// The `reconnect` field of a Bayeux advice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    /// `"retry"`: send the next connect (after `interval`).
    Retry,
    /// `"handshake"`: the session is gone; handshake again.
    Handshake,
    /// `"none"`: do not reconnect.
    None,
}

impl Reconnect {
    /// Parse the wire value (`"retry"`, `"handshake"`, `"none"`); anything else is `None` (ignored).
    pub fn from_wire(s: &str) -> Option<Reconnect> {
        match s {
            "retry" => Some(Reconnect::Retry),
            "handshake" => Some(Reconnect::Handshake),
            "none" => Some(Reconnect::None),
            _ => None,
        }
    }
}

/// A Bayeux advice, projected. Absent fields are `None`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Advice {
    /// `advice.reconnect`.
    pub reconnect: Option<Reconnect>,
    /// `advice.interval` in ms.
    pub interval: Option<u64>,
    /// `advice.timeout` in ms (the server's hold time).
    pub timeout: Option<u64>,
    /// `advice["multiple-clients"] === true`.
    pub multiple_clients: bool,
}

/// A `/meta/*` message (or any reply-like message without `data`), projected.
///
/// The shell should project every message that has no `data` but has a `successful` or `error`
/// field as `Msg::Meta`, whatever its channel: that is how publish acknowledgements are recognised.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct MetaView<'a> {
    /// `channel`.
    pub channel: &'a str,
    /// `successful` when it is a boolean.
    pub successful: Option<bool>,
    /// `error` when it is a string.
    pub error: Option<&'a str>,
    /// `clientId`.
    pub client_id: Option<&'a str>,
    /// Message id as string (the shell stringifies numbers).
    pub id: Option<&'a str>,
    /// `subscription` (a string; the first element if the server sent an array).
    pub subscription: Option<&'a str>,
    /// `advice`, if it is an object.
    pub advice: Option<Advice>,
    /// `ext.sfdc.failureReason`.
    pub failure_reason: Option<&'a str>,
    /// For handshake replies: whether `supportedConnectionTypes` contains `"long-polling"`
    /// (`None` when the field is absent).
    pub supported_connection_types_has_long_polling: Option<bool>,
}

/// What the shell tells the core about one message of a response (a projection, built cheaply in JS).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Msg<'a> {
    /// A non-/meta/ message that carries `data` (an event). `channel` indexes `Batch::channels`.
    Event {
        /// Index into `Batch::channels`.
        channel: u32,
        /// `data.event.replayId` when it is an integer.
        replay_id: Option<i64>,
        /// The event date in epoch ms (`data.event.createdDate`, CDC `commitTimestamp`, or
        /// `data.payload.CreatedDate`), when known.
        date_ms: Option<f64>,
    },
    /// A /meta/* message (reply, or unsolicited /meta/disconnect).
    Meta(MetaView<'a>),
    /// Anything else (a message with no channel, a non-object, ...).
    Other,
}

/// One response array, projected. `messages[i]` describes position i of the JSON array.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Batch<'a> {
    /// Distinct event channel names; `Msg::Event::channel` indexes this.
    pub channels: &'a [&'a str],
    /// One projection per array position.
    pub messages: &'a [Msg<'a>],
}

/// An owned [`MetaView`], for [`BatchBuf`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MetaBuf {
    /// `channel`.
    pub channel: String,
    /// `successful`.
    pub successful: Option<bool>,
    /// `error`.
    pub error: Option<String>,
    /// `clientId`.
    pub client_id: Option<String>,
    /// Message id as string.
    pub id: Option<String>,
    /// `subscription`.
    pub subscription: Option<String>,
    /// `advice`.
    pub advice: Option<Advice>,
    /// `ext.sfdc.failureReason`.
    pub failure_reason: Option<String>,
    /// See [`MetaView::supported_connection_types_has_long_polling`].
    pub supported_connection_types_has_long_polling: Option<bool>,
}

impl MetaBuf {
    /// Borrow as a [`MetaView`].
    pub fn view(&self) -> MetaView<'_> {
        MetaView {
            channel: &self.channel,
            successful: self.successful,
            error: self.error.as_deref(),
            client_id: self.client_id.as_deref(),
            id: self.id.as_deref(),
            subscription: self.subscription.as_deref(),
            advice: self.advice,
            failure_reason: self.failure_reason.as_deref(),
            supported_connection_types_has_long_polling: self
                .supported_connection_types_has_long_polling,
        }
    }
}

/// An owned [`Msg`], for [`BatchBuf`].
#[derive(Clone, Debug, PartialEq)]
pub enum MsgBuf {
    /// See [`Msg::Event`].
    Event {
        /// Index into `BatchBuf::channels`.
        channel: u32,
        /// `data.event.replayId`.
        replay_id: Option<i64>,
        /// Event date in epoch ms.
        date_ms: Option<f64>,
    },
    /// See [`Msg::Meta`].
    Meta(MetaBuf),
    /// See [`Msg::Other`].
    Other,
}

impl MsgBuf {
    /// Borrow as a [`Msg`].
    pub fn view(&self) -> Msg<'_> {
        match self {
            MsgBuf::Event {
                channel,
                replay_id,
                date_ms,
            } => Msg::Event {
                channel: *channel,
                replay_id: *replay_id,
                date_ms: *date_ms,
            },
            MsgBuf::Meta(m) => Msg::Meta(m.view()),
            MsgBuf::Other => Msg::Other,
        }
    }
}

/// An owned, reusable batch projection (alternative to [`Batch`]); feed it with
/// [`crate::proto::Session::handle_response_buf`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BatchBuf {
    /// Distinct event channel names.
    pub channels: Vec<String>,
    /// One projection per array position.
    pub messages: Vec<MsgBuf>,
}

impl BatchBuf {
    /// An empty batch.
    pub fn new() -> BatchBuf {
        BatchBuf::default()
    }

    /// Empty the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.channels.clear();
        self.messages.clear();
    }

    /// The index of `name` in `channels`, adding it if needed.
    pub fn channel_index(&mut self, name: &str) -> u32 {
        if let Some(i) = self.channels.iter().position(|c| c == name) {
            return u32::try_from(i).unwrap_or(u32::MAX);
        }
        self.channels.push(name.to_string());
        u32::try_from(self.channels.len() - 1).unwrap_or(u32::MAX)
    }

    /// Append an event message on `channel`.
    pub fn push_event(&mut self, channel: &str, replay_id: Option<i64>, date_ms: Option<f64>) {
        let channel = self.channel_index(channel);
        self.messages.push(MsgBuf::Event {
            channel,
            replay_id,
            date_ms,
        });
    }

    /// Append a meta message.
    pub fn push_meta(&mut self, meta: MetaBuf) {
        self.messages.push(MsgBuf::Meta(meta));
    }

    /// Append an unrecognised message.
    pub fn push_other(&mut self) {
        self.messages.push(MsgBuf::Other);
    }
}

/// Read access to a projected batch, implemented by [`Batch`] and [`BatchBuf`].
pub trait BatchSource {
    /// Number of messages (array positions).
    fn len(&self) -> usize;
    /// True when there are no messages.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The projection of position `i` (`Msg::Other` when out of range).
    fn msg(&self, i: usize) -> Msg<'_>;
    /// The channel name of an event channel index.
    fn channel(&self, idx: u32) -> Option<&str>;
}

impl BatchSource for Batch<'_> {
    fn len(&self) -> usize {
        self.messages.len()
    }
    fn msg(&self, i: usize) -> Msg<'_> {
        self.messages.get(i).copied().unwrap_or(Msg::Other)
    }
    fn channel(&self, idx: u32) -> Option<&str> {
        self.channels.get(idx as usize).copied()
    }
}

impl BatchSource for BatchBuf {
    fn len(&self) -> usize {
        self.messages.len()
    }
    fn msg(&self, i: usize) -> Msg<'_> {
        self.messages.get(i).map(MsgBuf::view).unwrap_or(Msg::Other)
    }
    fn channel(&self, idx: u32) -> Option<&str> {
        self.channels.get(idx as usize).map(String::as_str)
    }
}

/// Longest channel name accepted (Salesforce channel names are far shorter; filters add a little).
pub const MAX_CHANNEL_LEN: usize = 1024;

/// Check a channel name given by the application: non-empty, leading `/`, no `/meta` channel,
/// no root wildcard (`/*`, `/**`, which would include `/meta`), no control characters, at most
/// [`MAX_CHANNEL_LEN`] bytes.
pub fn validate_channel(channel: &str) -> Result<(), ProtoError> {
    let bad = |reason: &str| {
        Err(ProtoError::InvalidArgument {
            name: "channel",
            reason: reason.to_string(),
        })
    };
    if channel.is_empty() {
        return bad("channel name is empty");
    }
    if !channel.starts_with('/') {
        return bad("channel name must start with '/'");
    }
    if channel.len() > MAX_CHANNEL_LEN {
        return bad("channel name is too long");
    }
    if channel.chars().any(char::is_control) {
        return bad("channel name contains control characters");
    }
    if channel == "/meta" || channel.starts_with("/meta/") {
        return bad("/meta channels are reserved for the protocol");
    }
    if channel == "/*"
        || channel == "/**"
        || channel.starts_with("/*?")
        || channel.starts_with("/**?")
    {
        return bad("root wildcards are not allowed");
    }
    if channel.len() > 1 && channel[1..].starts_with('/') {
        return bad("channel name has an empty segment");
    }
    Ok(())
}

/// Append `s` to `out` as a JSON string literal (quotes included), escaping `"`, `\\`, control
/// characters and U+2028/U+2029.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_str(&mut out, s);
    out
}

pub(crate) fn handshake_body(id: &str) -> String {
    let mut b = String::from(
        r#"[{"channel":"/meta/handshake","version":"1.0","minimumVersion":"1.0","supportedConnectionTypes":["long-polling"],"id":"#,
    );
    push_json_str(&mut b, id);
    b.push_str(r#","ext":{"replay":true}}]"#);
    b
}

pub(crate) fn connect_body(client_id: &str, id: &str, first: bool) -> String {
    let mut b = String::from(r#"[{"channel":"/meta/connect","clientId":"#);
    push_json_str(&mut b, client_id);
    b.push_str(r#","connectionType":"long-polling","id":"#);
    push_json_str(&mut b, id);
    if first {
        b.push_str(r#","advice":{"timeout":0}"#);
    }
    b.push_str("}]");
    b
}

pub(crate) fn subscribe_body(
    client_id: &str,
    id: &str,
    channel: &str,
    replay_key: &str,
    replay: Option<i64>,
) -> String {
    let mut b = String::from(r#"[{"channel":"/meta/subscribe","clientId":"#);
    push_json_str(&mut b, client_id);
    b.push_str(r#","subscription":"#);
    push_json_str(&mut b, channel);
    b.push_str(r#","id":"#);
    push_json_str(&mut b, id);
    if let Some(r) = replay {
        b.push_str(r#","ext":{"replay":{"#);
        push_json_str(&mut b, replay_key);
        b.push(':');
        b.push_str(&r.to_string());
        b.push_str("}}");
    }
    b.push_str("}]");
    b
}

pub(crate) fn unsubscribe_body(client_id: &str, id: &str, channel: &str) -> String {
    let mut b = String::from(r#"[{"channel":"/meta/unsubscribe","clientId":"#);
    push_json_str(&mut b, client_id);
    b.push_str(r#","subscription":"#);
    push_json_str(&mut b, channel);
    b.push_str(r#","id":"#);
    push_json_str(&mut b, id);
    b.push_str("}]");
    b
}

pub(crate) fn publish_body(client_id: &str, id: &str, channel: &str, data_json: &str) -> String {
    let mut b = String::from(r#"[{"channel":"#);
    push_json_str(&mut b, channel);
    b.push_str(r#","clientId":"#);
    push_json_str(&mut b, client_id);
    b.push_str(r#","id":"#);
    push_json_str(&mut b, id);
    b.push_str(r#","data":"#);
    b.push_str(data_json.trim());
    b.push_str("}]");
    b
}

pub(crate) fn disconnect_body(client_id: &str, id: &str) -> String {
    let mut b = String::from(r#"[{"channel":"/meta/disconnect","clientId":"#);
    push_json_str(&mut b, client_id);
    b.push_str(r#","id":"#);
    push_json_str(&mut b, id);
    b.push_str("}]");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            json_str("a\"b\\c\n\t\u{1}\u{2028}é"),
            "\"a\\\"b\\\\c\\n\\t\\u0001\\u2028é\""
        );
        let v = crate::proto::testjson::parse(&json_str("x\u{0}\u{1f}\"\\/\r")).unwrap();
        assert_eq!(
            v,
            crate::proto::testjson::Value::Str("x\u{0}\u{1f}\"\\/\r".into())
        );
    }

    #[test]
    fn bodies_are_exact() {
        assert_eq!(
            handshake_body("1"),
            r#"[{"channel":"/meta/handshake","version":"1.0","minimumVersion":"1.0","supportedConnectionTypes":["long-polling"],"id":"1","ext":{"replay":true}}]"#
        );
        assert_eq!(
            connect_body("abc", "2", true),
            r#"[{"channel":"/meta/connect","clientId":"abc","connectionType":"long-polling","id":"2","advice":{"timeout":0}}]"#
        );
        assert_eq!(
            subscribe_body("abc", "3", "/topic/X?a='b\"'", "/topic/X", Some(-1)),
            r#"[{"channel":"/meta/subscribe","clientId":"abc","subscription":"/topic/X?a='b\"'","id":"3","ext":{"replay":{"/topic/X":-1}}}]"#
        );
        assert_eq!(
            publish_body("abc", "9", "/u/x", " {\"a\":1} "),
            r#"[{"channel":"/u/x","clientId":"abc","id":"9","data":{"a":1}}]"#
        );
        for b in [
            unsubscribe_body("a\"", "4", "/topic/\\"),
            disconnect_body("a", "5"),
            subscribe_body("a", "3", "/x", "/x", None),
        ] {
            let v = crate::proto::testjson::parse(&b).unwrap();
            assert!(v.is_array());
        }
    }

    #[test]
    fn channel_validation() {
        for ok in [
            "/topic/X",
            "/event/Low_Ink__e",
            "/data/ChangeEvents",
            "/u/notifications/X",
            "/topic/X?Name='a b'",
        ] {
            assert_eq!(validate_channel(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "topic/X",
            "/meta/connect",
            "/meta",
            "/*",
            "/**",
            "/x\n",
            "//x",
        ] {
            assert!(
                matches!(
                    validate_channel(bad),
                    Err(ProtoError::InvalidArgument {
                        name: "channel",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        assert!(validate_channel(&format!("/{}", "a".repeat(2000))).is_err());
    }

    #[test]
    fn batchbuf_views() {
        let mut b = BatchBuf::new();
        b.push_event("/topic/X", Some(1), None);
        b.push_event("/topic/X", Some(2), Some(5.0));
        b.push_meta(MetaBuf {
            channel: "/meta/connect".into(),
            successful: Some(true),
            ..Default::default()
        });
        b.push_other();
        assert_eq!(b.channels.len(), 1);
        assert_eq!(BatchSource::len(&b), 4);
        assert_eq!(
            b.msg(1),
            Msg::Event {
                channel: 0,
                replay_id: Some(2),
                date_ms: Some(5.0)
            }
        );
        assert!(matches!(b.msg(2), Msg::Meta(m) if m.channel == "/meta/connect"));
        assert_eq!(b.msg(99), Msg::Other);
        assert_eq!(b.channel(0), Some("/topic/X"));
        b.clear();
        assert!(BatchSource::is_empty(&b));
    }
}
