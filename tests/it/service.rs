//! The server as a systemd service: `sd_notify` messages on a real `$NOTIFY_SOCKET` (a Unix
//! datagram socket, as systemd gives `Type=notify` services), SIGHUP reloads, SIGTERM stops,
//! and state paths under `$STATE_DIRECTORY`.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_testkit::PgCluster;

use crate::harness::*;

/// The service manager's end of `$NOTIFY_SOCKET`.
struct NotifySocket {
    socket: UnixDatagram,
    /// Every message received so far, in order.
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        NotifySocket {
            socket,
            seen: Vec::new(),
        }
    }

    /// Waits for a message with the line `line`; returns that message.
    fn wait_for(&mut self, line: &str, timeout: Duration, server: &Server) -> String {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(message.clone());
                if message.lines().any(|l| l == line) {
                    return message;
                }
            }
        }
        panic!(
            "no {line} notification within {timeout:?}; received {:?}; log:\n{}",
            self.seen,
            server.log()
        )
    }

    /// Messages with the line `line` received so far.
    fn count(&self, line: &str) -> usize {
        self.seen
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

fn start_notified(config: &str, ports: Ports) -> (Server, NotifySocket) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let notify = NotifySocket::bind(&path);
    let server = Server::start_with_env(
        dir,
        config,
        ports,
        vec![("NOTIFY_SOCKET".into(), path.display().to_string())],
    );
    (server, notify)
}

fn have_sqlite3() -> bool {
    let found = Command::new("sqlite3")
        .arg("-version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    if !found && std::env::var("CI").as_deref() == Ok("true") {
        panic!("sqlite3 is needed (tests/run.sh installs it)");
    }
    found
}

#[test]
fn ready_reload_and_stopping_reach_the_service_manager() {
    if !have_sqlite3() {
        eprintln!("SKIPPED: sqlite3 is not installed; tests/run.sh installs it");
        return;
    }
    let ports = Ports::new();
    let sip = ports.sip;
    let http = ports.http;
    let (mut server, mut notify) = start_notified(&demo_config(&ports), ports);

    let ready = notify.wait_for("READY=1", Duration::from_secs(10), &server);
    assert!(
        ready.contains(&format!("STATUS=serving SIP on udp:127.0.0.1:{sip}")),
        "{ready}"
    );
    assert_eq!(http_get(http, "/readyz").unwrap().0, 200);
    // The state went to $STATE_DIRECTORY (the harness sets it to the test's directory).
    let state = server.dir.path();
    assert!(state.join("switchboard.db").is_file());
    assert!(state.join("spool").is_dir());

    // A client written straight into the database (no directory_version bump, as a DBA's
    // manual edit): the running server does not know it until SIGHUP.
    let number = "+385915550777";
    let sql = format!(
        "INSERT INTO clients (number, name, type, manager, region, overdue_debt, updated_at) \
         VALUES ('{number}', 'Direct Edit d.o.o.', 'key', 'ana', NULL, 0, '2024-01-01T00:00:00.000000Z');"
    );
    let out = Command::new("sqlite3")
        .arg(state.join("switchboard.db"))
        .arg(&sql)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let path = format!("/api/v1/clients/{number}");
    assert_eq!(api_get(http, &path).unwrap().0, 404);

    signal(server.child.id(), "HUP");
    notify.wait_for("RELOADING=1", Duration::from_secs(10), &server);
    notify.wait_for("READY=1", Duration::from_secs(10), &server);
    let (status, body) = api_get(http, &path).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Direct Edit d.o.o."), "{body}");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the server; log:\n{}",
        server.log()
    );
    assert!(server.log().contains("client directory reloaded"));
    assert_eq!(http_get(http, "/readyz").unwrap().0, 200);

    let status = server.terminate();
    assert!(status.success(), "exit {status:?}; log:\n{}", server.log());
    let stopping = notify.wait_for("STOPPING=1", Duration::from_secs(2), &server);
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    assert_eq!(notify.count("READY=1"), 2, "{:?}", notify.seen);
}

#[test]
fn readiness_waits_until_the_database_answers() {
    let pg = match PgCluster::start() {
        Ok(pg) => pg,
        Err(e) => panic!("PostgreSQL is needed for this test (tests/run.sh installs it): {e}"),
    };
    // A fresh, empty database: the server migrates it itself once it answers.
    let url = pg.fresh_database("notify").unwrap();
    pg.stop().unwrap();

    let ports = Ports::new();
    let http = ports.http;
    let config = demo_config(&ports).replace("sqlite://switchboard.db", &url);
    let (server, mut notify) = start_notified(&config, ports);
    // Bound and serving HTTP, but the database does not answer: no READY=1, a status saying why.
    let waiting = notify.wait_for(
        "STATUS=waiting for the database (calls are taken, records spool)",
        Duration::from_secs(10),
        &server,
    );
    assert!(!waiting.contains("READY=1"), "{waiting}");
    std::thread::sleep(Duration::from_secs(2));
    let mut buf = [0u8; 4096];
    while let Ok(n) = notify.socket.recv(&mut buf) {
        notify
            .seen
            .push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(notify.count("READY=1"), 0, "{:?}", notify.seen);
    assert_eq!(http_get(http, "/readyz").unwrap().0, 503);

    pg.start_server().unwrap();
    notify.wait_for("READY=1", Duration::from_secs(30), &server);
    wait_until(&server, "/readyz 200", Duration::from_secs(10), || {
        http_get(http, "/readyz").is_ok_and(|(s, _)| s == 200)
    });
}

#[test]
fn postgres_node_without_a_state_directory_is_refused_naming_the_key() {
    let ports = Ports::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(
        &path,
        demo_config(&ports).replace(
            "sqlite://switchboard.db",
            "postgres://switchboard@127.0.0.1:1/switchboard",
        ),
    )
    .unwrap();
    let out = Command::new(switchboard_bin())
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path())
        .env_remove("STATE_DIRECTORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database.spool_dir"), "{err}");
    assert!(err.contains("[state] dir"), "{err}");
    // Nothing was bound and nothing was written in the working directory.
    assert!(std::net::UdpSocket::bind(("127.0.0.1", ports.sip)).is_ok());
    assert!(!dir.path().join("spool").exists());

    // With [state] dir (relative to the configuration file, not to the working directory)
    // two nodes started from one folder keep apart; check-config shows where state goes.
    let text = std::fs::read_to_string(&path).unwrap();
    for node in ["a", "b"] {
        let node_dir = dir.path().join(format!("conf-{node}"));
        std::fs::create_dir_all(&node_dir).unwrap();
        let node_path = node_dir.join("node.toml");
        std::fs::write(&node_path, format!("{text}\n[state]\ndir = \"state\"\n")).unwrap();
        let out = Command::new(switchboard_bin())
            .args(["check-config"])
            .arg(&node_path)
            .current_dir(dir.path())
            .env_remove("STATE_DIRECTORY")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let state = node_dir.join("state");
        assert!(
            stdout.contains(&format!("spool {}", state.join("spool").display())),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!(
                "recordings {}",
                state.join("recordings").display()
            )),
            "{stdout}"
        );
    }
}

/// The running server has transparent huge pages off for itself (`THP_enabled: 0` in its
/// `/proc` status) and says so: with them, the first touch of each fresh 2 MB region of the
/// allocator zeroed the whole page inside the fault and stalled the SIP path for
/// milliseconds (benches/README.md, "Setup latency").
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("the server's /proc status");
    assert!(
        status.lines().any(|l| l == "THP_enabled:\t0"),
        "transparent huge pages still on:\n{status}"
    );
    assert!(
        server
            .log()
            .contains("transparent huge pages off for this process"),
        "{}",
        server.log()
    );
}
