//! The Switchboard server: tokio transports, call control, HTTP API and metrics.
