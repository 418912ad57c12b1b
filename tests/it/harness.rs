//! Test harness: runs the real `switchboard` binary on free loopback ports with a config
//! written to a temporary directory, and real peers (SIPp) against it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test target.
pub fn switchboard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_switchboard"))
}

/// Repository root (for tests/data).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A path under tests/data.
pub fn data(path: &str) -> PathBuf {
    repo_root().join("tests/data").join(path)
}

/// A loopback port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port found")
}

/// The demo company with all ports replaced by free ones.
pub struct Ports {
    pub sip: u16,
    pub http: u16,
}

impl Ports {
    pub fn new() -> Ports {
        Ports {
            sip: free_port(),
            http: free_port(),
        }
    }
}

/// A config for tests: the demo company on the given ports.
pub fn demo_config(ports: &Ports) -> String {
    let demo = std::fs::read_to_string(repo_root().join("config/demo.toml")).expect("demo config");
    demo.replace("127.0.0.1:5060", &format!("127.0.0.1:{}", ports.sip))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", ports.http))
}

/// A running server; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    /// The server's working directory (database, spool), removed on drop.
    #[allow(dead_code)]
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    pub log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the binary with `config` and waits until `/healthz` answers and SIP is bound.
    pub fn start(config: &str, ports: Ports) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Server::start_in(dir, config, ports)
    }

    pub fn start_in(dir: tempfile::TempDir, config: &str, ports: Ports) -> Server {
        let config_path = dir.path().join("switchboard.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut child = Command::new(switchboard_bin())
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .env("RUST_LOG", "info,switchboard=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let server = Server {
            child,
            dir,
            ports,
            log,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http_get(self.ports.http, "/healthz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not come up; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.sip))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        wait_with_timeout(&mut self.child, Duration::from_secs(20)).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("server did not stop on SIGTERM; log:\n{}", self.log())
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), "TERM");
            if wait_with_timeout(&mut self.child, Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Runs the switchboard binary with arguments (for CLI tests).
pub fn run_cli(args: &[&str], cwd: &Path) -> Output {
    Command::new(switchboard_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run switchboard")
}

/// Is SIPp installed? Tests that need it say why they skip when it is not.
pub fn have_sipp() -> bool {
    Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs SIPp with a scenario from tests/data/sipp against `target`, bounded by `timeout`.
/// Returns (exit status, stdout+stderr, path of the message trace).
pub fn sipp(
    scenario: &str,
    target: SocketAddr,
    extra: &[&str],
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let local_port = free_port();
    let trace = dir.path().join("messages.log");
    let mut cmd = Command::new("timeout");
    cmd.arg(timeout.as_secs().to_string())
        .arg("sipp")
        .arg(target.to_string())
        .arg("-sf")
        .arg(data(&format!("sipp/{scenario}")))
        .args(["-i", "127.0.0.1", "-p", &local_port.to_string()])
        .args(["-m", "1", "-nostdin", "-timeout_error"])
        .args([
            "-timeout",
            &format!("{}s", timeout.as_secs().saturating_sub(1).max(1)),
        ])
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(&trace)
        .args(extra)
        .current_dir(dir.path());
    let out = cmd.output().expect("run sipp");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let messages = std::fs::read_to_string(&trace).unwrap_or_default();
    (out.status, text, messages)
}
