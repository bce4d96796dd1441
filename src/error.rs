//! The error type shared by every public operation.

use std::fmt;

/// Everything that can go wrong. Each variant maps one-to-one onto a C result code.
///
/// Errors that come from an operation carrying an ack id keep that id (see [`Error::ack_id`]),
/// so a caller can retry the operation idempotently with the same id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An argument was rejected before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The client access URL could not be parsed or has the wrong scheme.
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    /// The operation needs an open connection and there is none.
    #[error("not connected{}", fmt_ack(.ack_id))]
    NotConnected {
        /// The ack id the operation used, if it had one.
        ack_id: Option<u64>,
    },
    /// No ack (or `connected` frame, or invoke response) arrived in time.
    #[error("timed out{}", fmt_ack(.ack_id))]
    Timeout {
        /// The ack id the operation used, if it had one.
        ack_id: Option<u64>,
    },
    /// The service answered the operation with a negative ack (e.g. `Forbidden`).
    // The Python package takes the service's message back out of this text
    // (`service_message` in bindings/python/webpubsub_client/_core.py): keep the two in step.
    #[error("service rejected ack {ack_id}: {name}{}", fmt_detail(.message))]
    Ack {
        /// The ack id of the rejected operation.
        ack_id: u64,
        /// The service's error name, e.g. `Forbidden`, `InternalServerError`.
        name: String,
        /// The service's human readable message.
        message: String,
    },
    /// The transport failed (DNS, TCP, TLS, WebSocket).
    #[error("connection error: {message}{}", fmt_ack(.ack_id))]
    Connection {
        /// What failed.
        message: String,
        /// The ack id the operation used, if it had one.
        ack_id: Option<u64>,
    },
    /// The service answered the WebSocket upgrade with an HTTP error status (e.g. 401).
    #[error("handshake rejected with HTTP status {status}{}", status_hint(*.status))]
    HandshakeRejected {
        /// The HTTP status code.
        status: u16,
    },
    /// The operation was cancelled because the client was stopped.
    #[error("client stopped{}", fmt_ack(.ack_id))]
    Stopped {
        /// The ack id the operation used, if it had one.
        ack_id: Option<u64>,
    },
    /// `start` was called while the client is already started.
    #[error("client already started")]
    AlreadyStarted,
    /// The service sent something that violates the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The URL provider failed, panicked or returned an unusable URL.
    #[error("URL provider: {0}")]
    UrlProvider(String),
    /// The offline queue has no room for the operation (see
    /// [`crate::ClientOptions::offline_queue`]); nothing was sent.
    #[error("offline queue full: {0}")]
    QueueFull(String),
    /// The service refused to open a group stream (`streamClosed` answering the start, e.g.
    /// `Forbidden`, `BadRequest`).
    #[error("the service refused the stream: {name}{}", fmt_detail(.message))]
    StreamRefused {
        /// The service's error name.
        name: String,
        /// The service's human readable message.
        message: String,
    },
    /// The group stream is over: closed by the service with an error, ended, aborted, broken
    /// by a protocol violation, or lost with a connection that could not be recovered.
    #[error("stream closed: {name}{}", fmt_detail(.message))]
    StreamClosed {
        /// Why: the service's error name (`IdleTimeout`, ...), or the client's own
        /// (`ProtocolViolation`, `ConnectionLost`, `Stopped`, `Ended`, `Aborted`).
        name: String,
        /// Detail.
        message: String,
    },
    /// A message is larger than the configured maximum.
    #[error("payload too large: {size} bytes exceeds the limit of {limit}")]
    PayloadTooLarge {
        /// The size of the message.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 => " (the access token is missing, invalid or expired)",
        403 => " (the connection was refused by the service or its connect handler)",
        404 => " (no client endpoint at this URL: check host and hub)",
        _ => "",
    }
}

/// `": message"`, or nothing when the service gave no message.
fn fmt_detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn fmt_ack(ack_id: &Option<u64>) -> AckSuffix {
    AckSuffix(*ack_id)
}

struct AckSuffix(Option<u64>);

impl fmt::Display for AckSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (ack id {id})"),
            None => Ok(()),
        }
    }
}

impl Error {
    /// The ack id of the operation this error came from, if any.
    pub fn ack_id(&self) -> Option<u64> {
        match self {
            Error::NotConnected { ack_id }
            | Error::Timeout { ack_id }
            | Error::Connection { ack_id, .. }
            | Error::Stopped { ack_id } => *ack_id,
            Error::Ack { ack_id, .. } => Some(*ack_id),
            _ => None,
        }
    }

    /// The same error, tagged with the ack id of the operation it failed.
    pub fn with_ack_id(self, id: u64) -> Error {
        match self {
            Error::NotConnected { .. } => Error::NotConnected { ack_id: Some(id) },
            Error::Timeout { .. } => Error::Timeout { ack_id: Some(id) },
            Error::Connection { message, .. } => Error::Connection {
                message,
                ack_id: Some(id),
            },
            Error::Stopped { .. } => Error::Stopped { ack_id: Some(id) },
            other => other,
        }
    }

    /// A transport error without an ack id.
    pub fn connection(message: impl Into<String>) -> Error {
        Error::Connection {
            message: message.into(),
            ack_id: None,
        }
    }

    /// True for failures where sending the same operation again, with the same ack id, may
    /// succeed: no answer in time, a lost or missing connection, and the service's
    /// `InternalServerError`. Every other negative ack (`Forbidden`, `BadRequest`, ...) is the
    /// service's final word. Automatic operation retries happen only for these.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::NotConnected { .. } | Error::Connection { .. } => true,
            Error::Ack { name, .. } => name == "InternalServerError",
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_id_is_kept_and_shown() {
        let e = Error::Timeout { ack_id: None }.with_ack_id(7);
        assert_eq!(e.ack_id(), Some(7));
        assert_eq!(e.to_string(), "timed out (ack id 7)");
        let e = Error::Ack {
            ack_id: 3,
            name: "Forbidden".into(),
            message: "no".into(),
        };
        assert_eq!(e.ack_id(), Some(3));
        assert_eq!(e.to_string(), "service rejected ack 3: Forbidden: no");
        let bare = Error::Ack {
            ack_id: 4,
            name: "Forbidden".into(),
            message: String::new(),
        };
        assert_eq!(bare.to_string(), "service rejected ack 4: Forbidden");
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let ack = |name: &str| Error::Ack {
            ack_id: 1,
            name: name.into(),
            message: String::new(),
        };
        assert!(ack("InternalServerError").is_retryable());
        for name in ["Forbidden", "BadRequest", "Unknown", "SomethingNew"] {
            assert!(!ack(name).is_retryable(), "{name}");
        }
        assert!(Error::Timeout { ack_id: None }.is_retryable());
        assert!(Error::connection("lost").is_retryable());
        assert!(!Error::Stopped { ack_id: None }.is_retryable());
        assert!(!Error::UrlProvider("x".into()).is_retryable());
    }
}
