//! The errors of the WebRTC leg.

/// What went wrong with a WebRTC leg.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The `rtc` stack refused a step (the step named, then its reason).
    #[error("WebRTC {step}: {reason}")]
    Rtc { step: &'static str, reason: String },
    /// The browser's answer chose no G.711 codec.
    #[error("the WebRTC answer accepts neither PCMU nor PCMA")]
    NoCommonCodec,
    /// The leg is closed.
    #[error("the WebRTC leg is closed")]
    Closed,
    /// A socket could not be set up.
    #[error("WebRTC socket: {0}")]
    Io(#[from] std::io::Error),
}

impl WebRtcError {
    /// Maps an `rtc` error into [`WebRtcError::Rtc`] for `step`.
    pub(crate) fn rtc<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> WebRtcError {
        move |e| WebRtcError::Rtc {
            step,
            reason: e.to_string(),
        }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, WebRtcError>;
