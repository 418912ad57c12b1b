//! Test harness for Switchboard: throwaway, real PostgreSQL clusters.
//!
//! [`PgCluster::start`] runs `initdb` and `pg_ctl start` from the newest
//! `/usr/lib/postgresql/*/bin` as the `postgres` OS user, in a temporary directory, on a free
//! port of 127.0.0.1, with `fsync=off` (a test cluster needs no durability). Dropping the value
//! stops the server and removes the directory. [`PgCluster::shared`] starts one cluster per test
//! process and stops it when the process exits; each test then takes its own database with
//! [`PgCluster::fresh_database`].
//!
//! This crate is for tests and benchmarks only (`publish = false`). It is not a PostgreSQL client
//! library: it shells out to `psql` for the few statements a harness needs, and it contains no
//! Switchboard logic.
//!
//! When no PostgreSQL binaries are installed, [`PgCluster::start`] returns
//! [`TestkitError::NoPostgres`], which says to install the `postgresql` package.

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Where Debian puts the server binaries, one directory per major version.
const PG_LIB: &str = "/usr/lib/postgresql";
/// Environment variable that overrides the binary directory.
pub const PG_BIN_ENV: &str = "SWITCHBOARD_PG_BIN";
/// The OS user that owns and runs test clusters (`initdb` refuses to run as root).
const PG_USER: &str = "postgres";
/// How many ports to try when another process grabs the one we picked.
const START_ATTEMPTS: u32 = 3;

/// What can go wrong while running a test cluster.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// No `initdb` was found.
    #[error(
        "no PostgreSQL server binaries under {PG_LIB}/*/bin: install the `postgresql` package \
         (apt-get install -y postgresql) or set {PG_BIN_ENV}"
    )]
    NoPostgres,
    /// A file-system or process-spawning error.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL tool exited with a failure status.
    #[error("{what} failed ({status}): {output}")]
    Tool {
        /// The command that failed.
        what: String,
        /// Its exit status.
        status: String,
        /// Its standard error and output, and the server log tail when relevant.
        output: String,
    },
    /// The shared cluster failed to start earlier in this process.
    #[error("the shared PostgreSQL cluster could not start: {0}")]
    Shared(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
    let what = what.into();
    move |source| TestkitError::Io { what, source }
}

/// A running (or stopped) throwaway PostgreSQL cluster.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    running: AtomicBool,
}

impl fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCluster")
            .field("bin", &self.bin)
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish()
    }
}

/// The newest PostgreSQL binary directory (`ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1`).
pub fn find_pg_bin() -> Result<PathBuf, TestkitError> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() {
            Ok(dir)
        } else {
            Err(TestkitError::NoPostgres)
        };
    }
    let entries = std::fs::read_dir(PG_LIB).map_err(|_| TestkitError::NoPostgres)?;
    let mut best: Option<(Vec<u64>, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Version sort: "9.6" < "15" < "16".
        let version: Vec<u64> = name.split('.').filter_map(|p| p.parse().ok()).collect();
        let bin = entry.path().join("bin");
        if version.is_empty() || !bin.join("initdb").is_file() {
            continue;
        }
        if best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin).ok_or(TestkitError::NoPostgres)
}

fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_err("bind a probe socket"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("read the probe socket address"))?
        .port();
    Ok(port)
}

fn run(what: &str, cmd: &mut Command) -> Result<Output, TestkitError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("spawn {what}")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(TestkitError::Tool {
            what: what.to_owned(),
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        })
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", PG_USER, "--"]).arg(program);
    cmd
}

impl PgCluster {
    /// Creates and starts a new cluster. Takes about a second.
    pub fn start() -> Result<PgCluster, TestkitError> {
        let bin = find_pg_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("switchboard-pg-")
            .tempdir()
            .map_err(io_err("create the cluster directory"))?;
        run(
            "chown",
            Command::new("chown")
                .arg(format!("{PG_USER}:{PG_USER}"))
                .arg(dir.path()),
        )?;
        run(
            "initdb",
            as_postgres(&bin.join("initdb"))
                .arg("-D")
                .arg(dir.path().join("data"))
                .args(["-A", "trust", "-U", PG_USER, "--no-sync", "-E", "UTF8"]),
        )?;
        let mut cluster = PgCluster {
            bin,
            dir,
            port: 0,
            running: AtomicBool::new(false),
        };
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(TestkitError::NoPostgres))
    }

    /// One cluster for the whole test process, started on first use. It is stopped and removed
    /// by a small watcher process when this process exits (statics are never dropped).
    /// Do not stop it: fault tests take their own cluster with [`PgCluster::start`].
    pub fn shared() -> Result<&'static PgCluster, TestkitError> {
        static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            let cluster = PgCluster::start().map_err(|e| e.to_string())?;
            cluster.spawn_reaper().map_err(|e| e.to_string())?;
            Ok(cluster)
        });
        shared.as_ref().map_err(|e| TestkitError::Shared(e.clone()))
    }

    fn spawn_reaper(&self) -> Result<(), TestkitError> {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             runuser -u {PG_USER} -- '{pg_ctl}' -D '{data}' -m immediate -w stop >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data_dir().display(),
            dir = self.dir.path().display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err("spawn the cluster watcher"))?;
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data, socket and server log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server is running (as far as this handle knows).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// A `postgres://` URL for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one SQL statement with `psql` against `database` and returns its unaligned,
    /// tuples-only output (`|` between columns, one row a line).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, TestkitError> {
        let out = run(
            "psql",
            Command::new(self.bin.join("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-U", PG_USER])
                .arg("-p")
                .arg(self.port.to_string())
                .args(["-d", database, "-c", sql]),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Creates `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, TestkitError> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    /// Creates a database with a unique name (`prefix` plus process id and a counter) and
    /// returns its URL. Each test takes its own, so tests can share one cluster.
    pub fn fresh_database(&self, prefix: &str) -> Result<String, TestkitError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let clean: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        self.create_database(&format!("{clean}_{}_{n}", std::process::id()))
    }

    /// Stops the server (fast shutdown: clients are disconnected). Data is kept.
    pub fn stop(&self) -> Result<(), TestkitError> {
        run(
            "pg_ctl stop",
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "stop"]),
        )?;
        self.running.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Starts the server again on the same port after [`PgCluster::stop`].
    pub fn start_server(&self) -> Result<(), TestkitError> {
        let log = self.dir.path().join("log");
        let result = run(
            "pg_ctl start",
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(&log)
                .arg("-w")
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                    self.port,
                    self.dir.path().display()
                ))
                .arg("start"),
        );
        match result {
            Ok(_) => {
                self.running.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(TestkitError::Tool {
                what,
                status,
                output,
            }) => {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(10).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(TestkitError::Tool {
                    what,
                    status,
                    output: format!("{output}\nserver log:\n{}", tail.join("\n")),
                })
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running.load(Ordering::SeqCst) {
            // Best effort: the directory is removed right after by `TempDir`.
            let _ = run(
                "pg_ctl stop",
                as_postgres(&self.bin.join("pg_ctl"))
                    .arg("-D")
                    .arg(self.data_dir())
                    .args(["-m", "immediate", "-w", "stop"]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_starts_answers_stops_and_restarts() {
        let pg = PgCluster::start().unwrap();
        let url = pg.fresh_database("testkit").unwrap();
        let db = url.rsplit('/').next().unwrap().to_owned();
        assert_eq!(pg.psql(&db, "SELECT 40 + 2").unwrap(), "42");
        pg.stop().unwrap();
        assert!(
            pg.psql(&db, "SELECT 1").is_err(),
            "a stopped cluster answered"
        );
        pg.start_server().unwrap();
        assert_eq!(pg.psql(&db, "SELECT 1").unwrap(), "1");
        let dir = pg.dir().to_owned();
        drop(pg);
        assert!(!dir.exists(), "the cluster directory was not removed");
    }

    #[test]
    fn shared_cluster_is_reused() {
        let a = PgCluster::shared().unwrap();
        let b = PgCluster::shared().unwrap();
        assert_eq!(a.port(), b.port());
        assert_eq!(a.psql("postgres", "SELECT 1").unwrap(), "1");
    }
}
