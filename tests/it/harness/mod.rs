//! Test harness: runs the real `switchboard` binary on free loopback ports with a config
//! written to a temporary directory, and real peers (SIPp; baresip in `baresip.rs`) against
//! it.

mod baresip;
mod ports;
mod rtp;

pub use baresip::*;
pub use ports::*;
pub use rtp::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
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

/// The demo company with all ports replaced by free ones.
pub struct Ports {
    pub sip: u16,
    pub http: u16,
    /// The first of the 80 RTP ports of the server's range.
    pub rtp: u16,
}

impl Ports {
    pub fn new() -> Ports {
        Ports {
            sip: free_port(),
            http: free_port(),
            rtp: server_rtp_range(),
        }
    }
}

/// A config for tests: the demo company on the given ports, with an RTP range of its own
/// (tests run in parallel processes; `ports.rs` says which ranges tests use).
pub fn demo_config(ports: &Ports) -> String {
    let demo = std::fs::read_to_string(repo_root().join("config/demo.toml")).expect("demo config");
    demo.replace("127.0.0.1:5060", &format!("127.0.0.1:{}", ports.sip))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", ports.http))
        .replace(
            "rtp_ports = [20000, 29999]",
            &format!("rtp_ports = [{}, {}]", ports.rtp, ports.rtp + 79),
        )
}

/// A running server; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    /// The server's working directory (database, spool), removed on drop.
    #[allow(dead_code)]
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    pub log: Arc<Mutex<String>>,
    /// Environment given to the process beyond the harness's own.
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts the binary with `config` and waits until `/healthz` answers and SIP is bound.
    pub fn start(config: &str, ports: Ports) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Server::start_in(dir, config, ports)
    }

    pub fn start_in(dir: tempfile::TempDir, config: &str, ports: Ports) -> Server {
        Server::start_with_env(dir, config, ports, Vec::new())
    }

    /// As `start_in`, with more environment variables (e.g. `NOTIFY_SOCKET`).
    pub fn start_with_env(
        dir: tempfile::TempDir,
        config: &str,
        ports: Ports,
        env: Vec<(String, String)>,
    ) -> Server {
        let config_path = dir.path().join("switchboard.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log = Arc::new(Mutex::new(String::new()));
        let child = spawn_server(dir.path(), &log, &env);
        let server = Server {
            child,
            dir,
            ports,
            log,
            env,
        };
        server.wait_ready();
        server
    }

    /// SIGKILL: no shutdown, no flush (what a crash looks like).
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the binary again in the same directory with the same configuration.
    pub fn restart(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill_hard();
        }
        self.log
            .lock()
            .expect("log lock")
            .push_str("---- restart ----\n");
        self.child = spawn_server(self.dir.path(), &self.log, &self.env);
        self.wait_ready();
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

/// Runs the binary as systemd would with `StateDirectory=`: its state (database, spool,
/// recordings) goes to `$STATE_DIRECTORY`, here the test's directory.
fn spawn_server(dir: &Path, log: &Arc<Mutex<String>>, env: &[(String, String)]) -> Child {
    let mut child = Command::new(switchboard_bin())
        .arg("--config")
        .arg(dir.join("switchboard.toml"))
        .current_dir(dir)
        .env("RUST_LOG", "info,switchboard=debug")
        .env("STATE_DIRECTORY", dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchboard");
    let stderr = child.stderr.take().expect("stderr");
    let sink = Arc::clone(log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = sink.lock().expect("log lock");
            log.push_str(&line);
            log.push('\n');
        }
    });
    child
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

/// The sum of a metric's samples in a Prometheus scrape, over the series whose labels contain
/// every one of `labels` (e.g. `queue="sales"`).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Puts `agents` on a break through the API: logged in but not taking calls, so calls to their
/// queues wait (with nobody logged in at all a call is refused as `no_agent`).
pub fn put_on_break(server: &Server, agents: &[&str]) {
    for agent in agents {
        let (status, body) = api_post(
            server.ports.http,
            &format!("/api/v1/agents/{agent}/state"),
            r#"{"state": "break"}"#,
        )
        .expect("state change");
        assert_eq!(status, 200, "{agent} on break: {body}");
    }
}

/// A minimal HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, None, None)
}

/// One HTTP/1.1 request on loopback (`Connection: close`), with an optional bearer token and
/// JSON body: (status, body, de-chunked).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let body = json.map_or_else(String::new, |j| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{j}",
            j.len()
        )
    });
    let end = if json.is_some() { "" } else { "\r\n" };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n{body}{end}"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head_end = response.find("\r\n\r\n").map_or(response.len(), |i| i + 4);
    let (head, body) = response.split_at(head_end);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
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

/// A test goes without `peer`, which is not installed. Outside CI it is skipped and says why;
/// under `CI=true` it fails, because the test command installs every peer and a peer that is
/// still missing means the suite is not testing what it claims.
pub fn peer_missing(peer: &str) {
    if in_ci() {
        panic!("{peer} is not installed and CI=true: tests/run.sh installs it, so the run fails");
    }
    eprintln!("SKIPPED: {peer} is not installed; tests/run.sh installs it");
}

/// Runs under CI (`CI=true`), where the test command installed every peer.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True (after saying so) when SIPp is missing and the test must skip; see [`peer_missing`].
pub fn without_sipp() -> bool {
    if have_sipp() {
        return false;
    }
    peer_missing("sipp (Debian package sip-tester)");
    true
}

/// True (after saying so) when SIPp or baresip is missing; see [`peer_missing`].
pub fn without_baresip() -> bool {
    if without_sipp() {
        return true;
    }
    if have_baresip() {
        return false;
    }
    peer_missing("baresip (Debian package baresip-core)");
    true
}

/// Is SIPp installed? Tests that need it call [`without_sipp`].
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
    sipp_at(scenario, target, free_port(), extra, timeout)
}

/// An agent softphone played by SIPp: its contact is registered with digest auth, then a
/// SIPp UAS answers calls on that address and echoes their RTP (`-rtp_echo`).
pub struct SippAgent {
    child: Child,
    dir: tempfile::TempDir,
}

impl SippAgent {
    /// Registers `id` (password `<id>-secret` as in the demo config) and starts answering.
    /// `scenario`: None for SIPp's built-in `uas`, or a file under tests/data/sipp.
    pub fn start(server: &Server, id: &str, scenario: Option<&str>) -> SippAgent {
        SippAgent::start_many(server, &[id], scenario)
    }

    /// Several agents whose softphones share one SIPp UAS (one address, many calls at once).
    pub fn start_many(server: &Server, ids: &[&str], scenario: Option<&str>) -> SippAgent {
        SippAgent::start_with(server, ids, scenario, &[])
    }

    /// As [`SippAgent::start_many`], with extra SIPp arguments (e.g. `-key target finance`).
    pub fn start_with(
        server: &Server,
        ids: &[&str],
        scenario: Option<&str>,
        extra: &[&str],
    ) -> SippAgent {
        SippAgent::launch(
            server.sip_addr(),
            ids,
            scenario,
            extra,
            "register_contact.xml",
        )
    }

    /// As [`SippAgent::start_with`], registering through `registrar` (one of the server's
    /// SIP listeners).
    pub fn start_at(
        registrar: SocketAddr,
        ids: &[&str],
        scenario: Option<&str>,
        extra: &[&str],
    ) -> SippAgent {
        SippAgent::launch(registrar, ids, scenario, extra, "register_contact.xml")
    }

    /// A phone that registers over UDP with a Contact asking for TCP (`;transport=tcp`) and
    /// answers (SIPp's `uas`, `-t t1`) on TCP at that address: no connection to it exists
    /// until Switchboard opens one to call it.
    pub fn start_tcp_contact(server: &Server, id: &str) -> SippAgent {
        SippAgent::launch(
            server.sip_addr(),
            &[id],
            None,
            &["-t", "t1"],
            "register_contact_tcp.xml",
        )
    }

    /// Registers `ids` through `registrar` with the `register` scenario, then answers.
    fn launch(
        registrar: SocketAddr,
        ids: &[&str],
        scenario: Option<&str>,
        extra: &[&str],
        register: &str,
    ) -> SippAgent {
        let port = free_port();
        for id in ids {
            let password = format!("{id}-secret");
            let (status, out, messages) = sipp_at(
                register,
                registrar,
                port,
                &["-s", id, "-au", id, "-ap", &password],
                Duration::from_secs(10),
            );
            assert!(
                status.success(),
                "registering {id} failed:\n{out}\n{messages}"
            );
        }
        SippAgent::answer_on(port, scenario, extra, Duration::from_secs(60))
    }

    /// A SIPp UAS answering on 127.0.0.1:`port` (whose contacts someone registered) for at
    /// most `lifetime`. `scenario`: None for SIPp's built-in `uas`, or a file under
    /// tests/data/sipp.
    pub fn answer_on(
        port: u16,
        scenario: Option<&str>,
        extra: &[&str],
        lifetime: Duration,
    ) -> SippAgent {
        let dir = tempfile::tempdir().expect("tempdir");
        let media_port = free_media_ports();
        let mut cmd = Command::new("timeout");
        cmd.arg(lifetime.as_secs().to_string()).arg("sipp");
        match scenario {
            None => {
                cmd.args(["-sn", "uas"]);
            }
            Some(file) => {
                cmd.arg("-sf").arg(data(&format!("sipp/{file}")));
            }
        }
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-mi",
                "127.0.0.1",
                "-mp",
                &media_port.to_string(),
                "-rtp_echo",
            ])
            .args(extra)
            .args(["-nostdin", "-trace_msg", "-message_file"])
            .arg(dir.path().join("messages.log"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn sipp uas");
        // SIPp binds at once; give it a moment before calls arrive.
        std::thread::sleep(Duration::from_millis(200));
        SippAgent { child, dir }
    }

    /// Everything this agent's SIPp sent and received so far.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default()
    }

    /// INVITEs that reached this agent.
    pub fn invites(&self) -> usize {
        self.messages()
            .lines()
            .filter(|l| l.starts_with("INVITE sip:"))
            .count()
    }
}

/// Stops a peer started under `timeout`: SIGTERM, which `timeout` passes on to the peer
/// (SIGKILL would kill `timeout` alone and orphan the peer), then SIGKILL if it lingers.
pub fn stop_wrapped(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        signal(child.id(), "TERM");
        if wait_with_timeout(child, Duration::from_secs(5)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SippAgent {
    fn drop(&mut self) {
        stop_wrapped(&mut self.child);
    }
}

/// Runs a SIPp scenario from a given local port.
pub fn sipp_at(
    scenario: &str,
    target: SocketAddr,
    local_port: u16,
    extra: &[&str],
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("messages.log");
    let out = Command::new("timeout")
        .arg(timeout.as_secs().to_string())
        .arg("sipp")
        .arg(target.to_string())
        .arg("-sf")
        .arg(if scenario.starts_with('/') {
            PathBuf::from(scenario)
        } else {
            data(&format!("sipp/{scenario}"))
        })
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
        .current_dir(dir.path())
        .output()
        .expect("run sipp");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let messages = std::fs::read_to_string(&trace).unwrap_or_default();
    (out.status, text, messages)
}

/// A trunk call from `caller` to DID `dialed`, talking for `talk_ms` after the queue answers.
pub fn trunk_call(
    server: &Server,
    caller: &str,
    dialed: &str,
    talk_ms: u64,
) -> (ExitStatus, String, String) {
    trunk_calls(
        server,
        caller,
        dialed,
        talk_ms,
        &[],
        Duration::from_secs(30),
    )
}

/// [`trunk_call`] with more SIPp arguments (e.g. `-m 50 -r 10 -l 20` for a series of calls),
/// bounded by `timeout`.
pub fn trunk_calls(
    server: &Server,
    caller: &str,
    dialed: &str,
    talk_ms: u64,
    extra: &[&str],
    timeout: Duration,
) -> (ExitStatus, String, String) {
    trunk_calls_to(server.sip_addr(), caller, dialed, talk_ms, extra, timeout)
}

/// [`trunk_calls`] sent to `target` (a proxy in front of the server, or the server from
/// another thread).
pub fn trunk_calls_to(
    target: SocketAddr,
    caller: &str,
    dialed: &str,
    talk_ms: u64,
    extra: &[&str],
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let talk_ms = talk_ms.to_string();
    let mut args = vec!["-d", talk_ms.as_str()];
    args.extend_from_slice(extra);
    trunk_scenario("trunk_call.xml", target, caller, dialed, &args, timeout)
}

/// A trunk call from `caller` to DID `dialed` played by the SIPp `scenario` (a file under
/// tests/data/sipp) against `target`, with its own RTP port and more SIPp arguments.
pub fn trunk_scenario(
    scenario: &str,
    target: SocketAddr,
    caller: &str,
    dialed: &str,
    extra: &[&str],
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let media_port = free_media_ports().to_string();
    let mut args = vec![
        "-key",
        "caller",
        caller,
        "-s",
        dialed,
        "-mi",
        "127.0.0.1",
        "-mp",
        &media_port,
    ];
    args.extend_from_slice(extra);
    sipp_at(scenario, target, free_port(), &args, timeout)
}

/// Writes a client directory CSV and loads it with `switchboard clients import` into the
/// database of a server that is about to start in `dir` with `config`.
pub fn import_clients(dir: &Path, config: &str, csv: &str) {
    let config_path = dir.join("switchboard.toml");
    std::fs::write(&config_path, config).expect("write config");
    let csv_path = dir.join("clients.csv");
    std::fs::write(&csv_path, csv).expect("write csv");
    let out = Command::new(switchboard_bin())
        .args(["clients", "import"])
        .arg(&csv_path)
        .arg("--config")
        .arg(&config_path)
        .current_dir(dir)
        // The directory is the state directory, as for the server it prepares.
        .env("STATE_DIRECTORY", dir)
        .output()
        .expect("run import");
    assert!(
        out.status.success(),
        "import failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fields of the server's `call ended` log line for a finished call, as key=value pairs.
pub fn ended_calls(log: &str) -> Vec<std::collections::HashMap<String, String>> {
    log.lines()
        .filter(|l| l.contains("call ended"))
        .map(|l| {
            // `route` is the last field and may contain spaces.
            let (fields, route) = l.split_once(" route=").unwrap_or((l, ""));
            let mut map: std::collections::HashMap<String, String> = fields
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect();
            map.insert("route".to_owned(), route.trim().to_owned());
            map
        })
        .collect()
}

/// Waits until `f` holds, polling, or panics with `what` and the server log.
pub fn wait_until(server: &Server, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}; log:\n{}", server.log());
}

/// The API token of the demo configuration.
pub const DEMO_TOKEN: &str = "change-me";

/// A GET on the API with the demo token: (status, body).
pub fn api_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, Some(DEMO_TOKEN), None)
}

/// A POST of a JSON body on the API with the demo token: (status, body).
pub fn api_post(port: u16, path: &str, json: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "POST", path, Some(DEMO_TOKEN), Some(json))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The end of a call placed with [`new_client_call_answered_by`]: the trunk's SIPp run
/// succeeded; returns the server's `call ended` fields of the first call that ended.
pub fn call_ended(
    server: &Server,
    caller: std::thread::JoinHandle<(ExitStatus, String, String)>,
) -> std::collections::HashMap<String, String> {
    let (status, out, messages) = caller.join().expect("trunk thread");
    assert!(
        status.success(),
        "trunk call failed ({status:?}):\n{out}\n{messages}\n--- server ---\n{}",
        server.log()
    );
    wait_until(server, "the call record", Duration::from_secs(5), || {
        !ended_calls(&server.log()).is_empty()
    });
    ended_calls(&server.log()).remove(0)
}

/// A new client's call (an unknown number to DID 100, which the department heads take)
/// placed by a SIPp trunk in the background, talking `talk_ms` once answered; returns when
/// `agent` has answered it, with the trunk's thread (its SIPp result).
pub fn new_client_call_answered_by(
    server: &Server,
    agent: &str,
    talk_ms: u64,
) -> std::thread::JoinHandle<(ExitStatus, String, String)> {
    let sip = server.sip_addr();
    let caller = std::thread::spawn(move || {
        trunk_calls_to(
            sip,
            "+38599999999",
            "100",
            talk_ms,
            &[],
            Duration::from_secs(30),
        )
    });
    let agent_field = format!("agent={agent}");
    wait_until(
        server,
        &format!("{agent} answers"),
        Duration::from_secs(10),
        || {
            server
                .log()
                .lines()
                .any(|l| l.contains("answered") && l.contains(&agent_field))
        },
    );
    caller
}

/// The newest stored call record (`GET /api/v1/calls`), once more than `known` are stored.
pub fn newest_call(server: &Server, known: usize) -> serde_json::Value {
    let mut calls = serde_json::Value::Null;
    wait_until(server, "the call record", Duration::from_secs(10), || {
        calls = api_get(server.ports.http, "/api/v1/calls?limit=100")
            .ok()
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or(serde_json::Value::Null);
        calls.as_array().is_some_and(|a| a.len() > known)
    });
    calls[0].clone()
}

/// Waits until `agent` is available (registered and idle) according to the API.
pub fn wait_available(server: &Server, agent: &str) {
    wait_until(
        server,
        "the agent available",
        Duration::from_secs(10),
        || {
            api_get(server.ports.http, &format!("/api/v1/agents/{agent}"))
                .is_ok_and(|(_, b)| b.contains("\"state\":\"available\""))
        },
    );
}

/// The `call ended` fields of the first outbound call that ended (waits up to 10 s).
pub fn outbound_record(server: &Server) -> std::collections::HashMap<String, String> {
    wait_until(
        server,
        "the outbound record",
        Duration::from_secs(10),
        || {
            ended_calls(&server.log())
                .iter()
                .any(|r| r.get("direction").is_some_and(|d| d == "outbound"))
        },
    );
    ended_calls(&server.log())
        .into_iter()
        .find(|r| r.get("direction").is_some_and(|d| d == "outbound"))
        .expect("an outbound record")
}

/// Runs `sql` on the server's SQLite database (the demo's `switchboard.db`) with the
/// `sqlite3` client: one line per row, columns separated by `|`.
pub fn sqlite(server: &Server, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(server.dir.path().join("switchboard.db"))
        .arg(sql)
        .output()
        .expect("run sqlite3 (package sqlite3; tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Why a browser test (Debian chromium driven by playwright-core, a SIPp trunk) cannot run
/// here, if it cannot.
pub fn browser_peers_missing() -> Option<String> {
    if !have_sipp() {
        return Some("sipp (package sip-tester) is not installed".into());
    }
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        return Some("chromium (Debian package chromium) is not installed".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node (Debian package nodejs) is not installed".into());
    }
    if !repo_root()
        .join("tests/browser/node_modules/playwright-core")
        .exists()
    {
        return Some("playwright-core is not installed (npm ci --prefix tests/browser)".into());
    }
    None
}

/// Whether python3 can import every module of `modules` (a comma-separated list).
pub fn have_python_modules(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
