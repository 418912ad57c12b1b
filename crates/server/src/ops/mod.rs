//! Running the server as a service: the Prometheus registry, logs, signals and service-manager
//! notifications, what the process asks of the kernel (open files, socket buffers), admission of
//! new calls against the RTP ports and descriptors left (`headroom`), and the
//! call journal that keeps records whole across a crash or a stop.

pub mod headroom;
pub mod journal;
pub mod logging;
pub mod metrics;
pub mod os_limits;
pub mod service;
