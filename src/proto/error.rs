//! Typed errors of the protocol core and the Bayeux `code:args:message` error parser.

use core::fmt;

/// Why an HTTP request handed to the shell produced no usable Bayeux body.
#[derive(Clone, Debug, PartialEq)]
pub enum TransportFailure {
    /// The request could not be performed (DNS, TCP reset, fetch rejected, ...). The text is for humans.
    Network(String),
    /// The request did not complete within [`crate::proto::Request::timeout`].
    Timeout,
    /// The server answered with this HTTP status and no usable Bayeux reply.
    HttpStatus(u16),
    /// The body was not a JSON array of Bayeux messages (or lacked the expected reply).
    Malformed(String),
}

/// The status of [`TransportFailure::HttpStatus`] for a redirect whose status the runtime hides
/// (a browser's `opaqueredirect` response). Redirects are never followed.
pub const REDIRECT_HIDDEN: u16 = 0;

/// Whether `status` is a redirect (never followed: the request's credentials stay with the server
/// they were meant for).
pub fn is_redirect(status: u16) -> bool {
    status == REDIRECT_HIDDEN || (300..400).contains(&status)
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportFailure::Network(m) => write!(f, "network error: {m}"),
            TransportFailure::Timeout => f.write_str("the request timed out"),
            TransportFailure::HttpStatus(REDIRECT_HIDDEN) => f.write_str(
                "the server answered with a redirect, which is not followed (check instanceUrl)",
            ),
            TransportFailure::HttpStatus(s) if is_redirect(*s) => write!(
                f,
                "the server answered with a redirect (HTTP {s}), which is not followed (check instanceUrl)"
            ),
            TransportFailure::HttpStatus(s) => write!(f, "unexpected HTTP status {s}"),
            TransportFailure::Malformed(m) => write!(f, "malformed response: {m}"),
        }
    }
}

/// A Bayeux reply with `successful: false`, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerError {
    /// The channel of the failed reply (`/meta/subscribe`, ...).
    pub channel: String,
    /// The raw `error` field, if the reply had one.
    pub error: Option<String>,
    /// The three-digit Bayeux error code (`403` in `403::Unknown client`).
    pub code: Option<u16>,
    /// The comma-separated arguments between the first two colons.
    pub args: Vec<String>,
    /// The human-readable message (everything after the second colon, colons included).
    pub message: String,
    /// Salesforce's `ext.sfdc.failureReason`, if present.
    pub failure_reason: Option<String>,
}

impl ServerError {
    /// Parse a Bayeux error string `code:args:message` (§7.1 of the protocol digest).
    ///
    /// The string is split on its first two colons only, so a message that itself contains colons is
    /// kept whole. Anything that does not start with a three-digit code followed by two colons is
    /// returned as `(None, [], whole text)`.
    pub fn parse(error: &str) -> (Option<u16>, Vec<String>, String) {
        let mut parts = error.splitn(3, ':');
        let (Some(code), Some(args), Some(message)) = (parts.next(), parts.next(), parts.next())
        else {
            return (None, Vec::new(), error.to_string());
        };
        let code_ok = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
        if !code_ok {
            return (None, Vec::new(), error.to_string());
        }
        let code: Option<u16> = code.parse().ok();
        let args = args
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        (code, args, message.to_string())
    }

    /// Build a server error from a failed reply's fields.
    ///
    /// When `error` is absent the message falls back to the failure reason, then to a generic text.
    pub fn new(channel: &str, error: Option<&str>, failure_reason: Option<&str>) -> ServerError {
        let (code, args, message) = match error {
            Some(e) => ServerError::parse(e),
            None => match failure_reason {
                Some(fr) => {
                    let (c, a, m) = ServerError::parse(fr);
                    (c, a, m)
                }
                None => (None, Vec::new(), String::from("request failed")),
            },
        };
        ServerError {
            channel: channel.to_string(),
            error: error.map(str::to_string),
            code,
            args,
            message,
            failure_reason: failure_reason.map(str::to_string),
        }
    }

    /// The code of `failure_reason` (`401` in `401::Authentication invalid`), if it has one.
    pub fn failure_code(&self) -> Option<u16> {
        self.failure_reason
            .as_deref()
            .and_then(|fr| ServerError::parse(fr).0)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(f, "{} failed: {e}", self.channel)?,
            None => write!(f, "{} failed: {}", self.channel, self.message)?,
        }
        if let Some(fr) = &self.failure_reason {
            write!(f, " ({fr})")?;
        }
        Ok(())
    }
}

/// Every error the protocol core reports.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum ProtoError {
    /// The operation is not allowed in the current state ("client is closed", "client is already open").
    InvalidOperation(&'static str),
    /// An argument given by the caller is invalid (bad channel name, empty data, ...).
    InvalidArgument {
        /// The name of the argument.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The server answered a request with `successful: false`.
    Server(ServerError),
    /// A request failed at the transport level and could not be retried.
    Transport(TransportFailure),
    /// The connection could not be (re-)established within `Config::connection_timeout`, and
    /// nothing failed meanwhile: the request under way has not been answered (a server, or a
    /// network, that drops traffic silently).
    Timeout,
    /// As `Timeout`, while the server kept refusing (handshake denied, server busy): its latest
    /// refusal.
    TimeoutRefused(ServerError),
    /// As `Timeout`, after requests kept failing (connection refused, HTTP 503, ...): the latest
    /// failure.
    TimeoutFailed(TransportFailure),
    /// Authentication failed: the authenticator failed, or the server kept rejecting fresh tokens.
    Authentication(String),
    /// The handshake reply did not offer the `long-polling` connection type.
    UnsupportedConnectionType,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::InvalidOperation(m) => f.write_str(m),
            ProtoError::InvalidArgument { name, reason } => write!(f, "invalid {name}: {reason}"),
            ProtoError::Server(e) => write!(f, "{e}"),
            ProtoError::Transport(t) => write!(f, "{t}"),
            ProtoError::Timeout => f.write_str(
                "could not (re)connect within the connection timeout; the server has not answered",
            ),
            ProtoError::TimeoutRefused(e) => write!(
                f,
                "could not (re)connect within the connection timeout; the server's last answer: {e}"
            ),
            ProtoError::TimeoutFailed(t) => write!(
                f,
                "could not (re)connect within the connection timeout; the last failure: {t}"
            ),
            ProtoError::Authentication(m) => write!(f, "authentication failed: {m}"),
            ProtoError::UnsupportedConnectionType => {
                f.write_str("the server does not offer the long-polling connection type")
            }
        }
    }
}

impl std::error::Error for ProtoError {}
impl std::error::Error for TransportFailure {}
impl std::error::Error for ServerError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_unknown_client() {
        assert_eq!(
            ServerError::parse("403::Unknown client"),
            (Some(403), vec![], "Unknown client".to_string())
        );
    }

    #[test]
    fn parse_args_slot() {
        assert_eq!(
            ServerError::parse("403:denied_by_security_policy:create_denied"),
            (
                Some(403),
                vec!["denied_by_security_policy".to_string()],
                "create_denied".to_string()
            )
        );
        assert_eq!(
            ServerError::parse("403:xj3s,/foo/bar:Subscription denied"),
            (
                Some(403),
                vec!["xj3s".to_string(), "/foo/bar".to_string()],
                "Subscription denied".to_string()
            )
        );
    }

    #[test]
    fn parse_keeps_colons_in_message() {
        let e = "400::The replayId {82} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.";
        let (c, a, m) = ServerError::parse(e);
        assert_eq!(c, Some(400));
        assert!(a.is_empty());
        assert_eq!(m, &e[5..]);
        let (c, _, m) = ServerError::parse(
            "400::API version in the URI is mandatory. URI format: '/cometd/65.0'",
        );
        assert_eq!(c, Some(400));
        assert_eq!(
            m,
            "API version in the URI is mandatory. URI format: '/cometd/65.0'"
        );
    }

    #[test]
    fn parse_garbage() {
        for g in [
            "",
            "garbage",
            "40::x",
            "abc::x",
            "4033::x",
            "403:only-one-colon",
            "SERVER_UNAVAILABLE",
        ] {
            assert_eq!(ServerError::parse(g), (None, vec![], g.to_string()), "{g}");
        }
    }

    #[test]
    fn new_uses_failure_reason_when_no_error() {
        let e = ServerError::new(
            "/meta/handshake",
            Some("403::Handshake denied"),
            Some("401::Authentication invalid"),
        );
        assert_eq!(e.code, Some(403));
        assert_eq!(e.failure_code(), Some(401));
        let e = ServerError::new("/meta/connect", None, None);
        assert_eq!(e.message, "request failed");
        assert_eq!(e.code, None);
    }
}
