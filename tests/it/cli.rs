//! The command line: config checking, bad configs at start-up, the demo-token guard.

use crate::harness::*;

#[test]
fn check_config_accepts_the_demo_config() {
    let dir = tempfile::tempdir().unwrap();
    let demo = repo_root().join("config/demo.toml");
    let out = run_cli(&["check-config", demo.to_str().unwrap()], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

#[test]
fn check_config_prints_every_error_with_its_key_path_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let bad = std::fs::read_to_string(repo_root().join("config/demo.toml"))
        .unwrap()
        .replace(
            "strategy = \"linear\"",
            "strategy = \"linear\"\nmax_length = 0",
        )
        .replace("substitute = \"marko\"", "substitute = \"nobody\"")
        .replace("\"udp:127.0.0.1:5060\"", "\"udp:127.0.0.1\"");
    std::fs::write(&path, bad).unwrap();
    let out = run_cli(&["check-config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("queues[2].max_length"), "{err}");
    assert!(err.contains("agents[0].substitute"), "{err}");
    assert!(err.contains("sip.listen[0]"), "{err}");
    assert!(err.contains("3 errors"), "{err}");
}

#[test]
fn unknown_key_fails_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let bad = std::fs::read_to_string(repo_root().join("config/demo.toml"))
        .unwrap()
        .replace("[media]", "[media]\nrtp_portz = [1, 2]");
    std::fs::write(&path, bad).unwrap();
    let out = run_cli(&["check-config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("media") && err.contains("rtp_portz"), "{err}");
}

#[test]
fn bad_config_at_startup_exits_64_and_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let path = dir.path().join("bad.toml");
    let bad = demo_config(&ports).replace("strategy = \"longest_idle\"", "strategy = \"fastest\"");
    std::fs::write(&path, bad).unwrap();
    let out = run_cli(&["--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("queues[0].strategy"), "{err}");
    // Nothing was bound: both ports are still free.
    assert!(std::net::UdpSocket::bind(("127.0.0.1", ports.sip)).is_ok());
    assert!(std::net::TcpListener::bind(("127.0.0.1", ports.http)).is_ok());
    assert!(
        !dir.path().join("switchboard.db").exists(),
        "no database touched"
    );
}

#[test]
fn demo_token_is_refused_on_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let path = dir.path().join("open.toml");
    let open = demo_config(&ports).replace(
        &format!("listen = \"127.0.0.1:{}\"", ports.http),
        &format!("listen = \"0.0.0.0:{}\"", ports.http),
    );
    std::fs::write(&path, open).unwrap();
    let out = std::process::Command::new(switchboard_bin())
        .args(["--config", path.to_str().unwrap()])
        .current_dir(dir.path())
        .env_remove("SWITCHBOARD_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.api_token"), "{err}");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let ports = Ports::new();
    let _squatter = std::net::UdpSocket::bind(("127.0.0.1", ports.sip)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, demo_config(&ports)).unwrap();
    let out = run_cli(&["--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("udp:127.0.0.1:{}", ports.sip)),
        "{err}"
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let ports = Ports::new();
    let mut server = Server::start(&demo_config(&ports), ports);
    let status = server.terminate();
    assert!(status.success(), "exit {status:?}; log:\n{}", server.log());
    let log = server.log();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("switchboard stopped"), "{log}");
}
