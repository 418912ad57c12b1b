//! The server as a service: Unix signals in, service-manager notifications out.
//!
//! Notifications follow `sd_notify(3)` (the `sd-notify` crate): `READY=1` once SIP and HTTP
//! are bound and the database answers, `RELOADING=1` … `READY=1` around a SIGHUP reload,
//! `STOPPING=1` when SIGTERM or SIGINT arrives, and a `STATUS=` line that `systemctl status`
//! shows. Without `$NOTIFY_SOCKET` (not started by systemd with `Type=notify`) they do nothing.
//!
//! Signals: SIGTERM and SIGINT stop the server gracefully; SIGHUP reloads what can change
//! under a running server (the client directory and the `[tls]` certificate) and never stops
//! it.

use std::sync::atomic::{AtomicBool, Ordering};

use sd_notify::NotifyState;
use tracing::{debug, info};

/// Sends notifications to the service manager and remembers whether `READY=1` went out.
#[derive(Debug, Default)]
pub struct Notifier {
    ready: AtomicBool,
}

impl Notifier {
    fn send(states: &[NotifyState<'_>]) {
        // `false`: keep $NOTIFY_SOCKET for the notifications that follow.
        if let Err(e) = sd_notify::notify(false, states) {
            debug!("service manager notification not sent: {e}");
        }
    }

    /// `READY=1` with a status line; only the first call announces readiness.
    pub fn ready(&self, status: &str) {
        if !self.ready.swap(true, Ordering::AcqRel) {
            info!(status, "ready");
        }
        Notifier::send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// Whether `READY=1` was sent.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// A `STATUS=` line alone.
    pub fn status(&self, status: &str) {
        Notifier::send(&[NotifyState::Status(status)]);
    }

    /// `RELOADING=1`, dated as systemd's `Type=notify-reload` wants it.
    pub fn reloading(&self) {
        let mut states = vec![
            NotifyState::Reloading,
            NotifyState::Status("reloading the client directory"),
        ];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        Notifier::send(&states);
    }

    /// After a reload: back to `READY=1` if the server had announced readiness, else only a
    /// status line (readiness still waits for the database).
    pub fn reloaded(&self, status: &str) {
        if self.is_ready() {
            Notifier::send(&[NotifyState::Ready, NotifyState::Status(status)]);
        } else {
            self.status(status);
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self, status: &str) {
        Notifier::send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }
}

/// What a signal asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGHUP.
    Reload,
    /// SIGTERM or SIGINT (named for the log).
    Stop(&'static str),
}

/// The signals the server handles, registered once at start so that a SIGHUP arriving
/// while the server starts does not end it (SIGHUP's default action).
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the handlers (needs a running tokio runtime).
    pub fn register() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next request.
    pub async fn next(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Stop("SIGTERM"),
            _ = self.int.recv() => Request::Stop("SIGINT"),
            _ = self.hup.recv() => Request::Reload,
        }
    }
}
