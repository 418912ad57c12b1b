//! Running the server as a service: the Prometheus registry, logs, signals and service-manager
//! notifications, and the call journal that keeps records whole across a crash or a stop.

pub mod journal;
pub mod logging;
pub mod metrics;
pub mod service;
