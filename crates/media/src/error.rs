//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the media plane.
///
/// Nothing a peer sends can panic this crate: malformed RTP, SDP or telephone-event payloads
/// come back as one of these variants (or are counted and dropped on the hot path).
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A datagram that is not a valid RTP packet.
    #[error("invalid RTP packet: {0}")]
    Rtp(String),
    /// An RFC 4733 telephone-event payload that cannot be decoded.
    #[error("invalid telephone-event payload: {0}")]
    TelephoneEvent(&'static str),
    /// A session description that does not parse (line numbers start at 1).
    #[error("invalid SDP at line {line}: {reason}")]
    Sdp {
        /// 1-based line number, 0 for whole-document problems.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The remote side offered no audio codec that Switchboard speaks.
    #[error("no acceptable audio in SDP: {0}")]
    NoCommonCodec(String),
    /// `[media] rtp_ports` is not a usable range.
    #[error("invalid RTP port range [{first}, {last}]: {reason}")]
    BadPortRange {
        /// First port of the range.
        first: u16,
        /// Last port of the range (inclusive).
        last: u16,
        /// Why it is unusable.
        reason: &'static str,
    },
    /// Every even port of the range is in use (or could not be bound).
    #[error("RTP port range [{first}, {last}] exhausted")]
    PortsExhausted {
        /// First port of the range.
        first: u16,
        /// Last port of the range (inclusive).
        last: u16,
    },
    /// A socket or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A prompt or music file is missing or not 8 kHz mono 16-bit PCM WAV.
    #[error("sound file {path}: {reason}")]
    Sound {
        /// The file.
        path: PathBuf,
        /// Why it cannot be played.
        reason: String,
    },
    /// A recording file could not be created or written.
    #[error("recording {path}: {reason}")]
    Recording {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The session's media task has stopped (closed, or its runtime shut down).
    #[error("media session closed")]
    SessionClosed,
    /// The session's control queue is full (the media task is not keeping up).
    #[error("media session busy")]
    SessionBusy,
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, MediaError>;

impl MediaError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        MediaError::Io {
            what: what.into(),
            source,
        }
    }
}
