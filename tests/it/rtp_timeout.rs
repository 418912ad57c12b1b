//! The RTP inactivity timeout (`[media] rtp_timeout_s`) through the real server, with SIPp as
//! the trunk and the agent: a talking call whose caller stops sending RTP without a BYE is
//! ended by Switchboard (BYE to both sides, `hangup_side` system), as is a silent caller
//! waiting in the queue; a call whose audio flows, or that is on hold, outlives the timeout.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The timeout the tests run with: short, so each test stays within a few seconds.
const TIMEOUT_S: u64 = 2;

/// The demo company with `media.rtp_timeout_s` = [`TIMEOUT_S`].
fn server() -> Server {
    let ports = Ports::new();
    let config = demo_config(&ports).replace(
        "[media]\n",
        &format!("[media]\nrtp_timeout_s = {TIMEOUT_S}\n"),
    );
    assert!(config.contains("rtp_timeout_s = 2\n"), "{config}");
    Server::start(&config, ports)
}

/// A SIPp trunk running `scenario` from a new client (routed to the department heads) to
/// DID 100, in the background. Not wrapped in `timeout`, so `kill` stops SIPp itself at
/// once: no BYE, no more RTP.
struct Trunk {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Trunk {
    fn start(server: &Server, scenario: &str) -> Trunk {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("sipp")
            .arg(server.sip_addr().to_string())
            .arg("-sf")
            .arg(data(&format!("sipp/{scenario}")))
            .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
            .args(["-mi", "127.0.0.1", "-mp", &free_media_ports().to_string()])
            .args(["-key", "caller", "+38599999999", "-s", "100"])
            .args(["-m", "1", "-nostdin", "-timeout", "25s", "-timeout_error"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Trunk { child, _dir: dir }
    }

    /// Waits for SIPp to finish its scenario: `Some(true)` when every step succeeded.
    fn wait(&mut self, within: Duration) -> Option<bool> {
        wait_with_timeout(&mut self.child, within).map(|s| s.success())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Trunk {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The newest call-detail record in the database (`GET /api/v1/calls`).
fn last_cdr(server: &Server) -> serde_json::Value {
    let mut cdr = serde_json::Value::Null;
    wait_until(
        server,
        "the CDR in the database",
        Duration::from_secs(10),
        || {
            let Ok((200, body)) = api_get(server.ports.http, "/api/v1/calls?limit=1") else {
                return false;
            };
            let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let list = json.get("calls").cloned().unwrap_or(json);
            cdr = list.get(0).cloned().unwrap_or_default();
            !cdr.is_null()
        },
    );
    cdr
}

/// `ivan`'s state in `GET /api/v1/agents`.
fn agent_state(server: &Server, id: &str) -> String {
    let Ok((200, body)) = api_get(server.ports.http, "/api/v1/agents") else {
        return String::new();
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let list = json.get("agents").cloned().unwrap_or(json);
    list.as_array()
        .into_iter()
        .flatten()
        .find(|a| a["id"] == id)
        .and_then(|a| a["state"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn talking_call_whose_caller_goes_silent_is_ended_by_the_system() {
    if without_sipp() {
        return;
    }
    let server = server();
    let ivan = SippAgent::start(&server, "ivan", None); // answers and echoes RTP
    // The trunk plays 8 s of audio and would wait for a BYE.
    let mut trunk = Trunk::start(&server, "trunk_call_wait_bye.xml");
    wait_until(
        &server,
        "the agent's answer",
        Duration::from_secs(5),
        || server.log().contains("answered"),
    );
    // Audio flows both ways for well over the timeout: the call goes on.
    std::thread::sleep(Duration::from_secs(TIMEOUT_S * 2));
    assert!(
        ended_calls(&server.log()).is_empty(),
        "a call with RTP flowing was ended:\n{}",
        server.log()
    );
    assert_eq!(agent_state(&server, "ivan"), "on_call");
    // The caller's side dies without a BYE: no more RTP on the caller leg (nor echoed on
    // the agent leg).
    trunk.kill();
    let silent_since = Instant::now();
    wait_until(
        &server,
        "the call ended by the RTP timeout",
        Duration::from_secs(TIMEOUT_S + 4),
        || !ended_calls(&server.log()).is_empty(),
    );
    let took = silent_since.elapsed();
    assert!(
        took >= Duration::from_millis(TIMEOUT_S * 1000 - 300),
        "ended after {took:?}, before the timeout"
    );
    let log = server.log();
    let rec = &ended_calls(&log)[0];
    assert_eq!(rec["outcome"], "answered", "{rec:?}");
    assert_eq!(rec["hangup"], "system", "{rec:?}");
    assert_eq!(rec["agent"], "ivan", "{rec:?}");
    let warn = log
        .lines()
        .find(|l| l.contains("RTP timeout"))
        .unwrap_or_else(|| panic!("no RTP timeout line:\n{log}"));
    assert!(warn.contains("WARN"), "{warn}");
    assert!(warn.contains("the caller leg sent no RTP"), "{warn}");
    // The agent was sent a BYE, and is free again (wrap-up, then available).
    wait_until(&server, "the agent's BYE", Duration::from_secs(3), || {
        ivan.messages().contains("BYE sip:")
    });
    wait_until(&server, "the agent freed", Duration::from_secs(3), || {
        matches!(
            agent_state(&server, "ivan").as_str(),
            "wrap_up" | "available"
        )
    });
    let cdr = last_cdr(&server);
    assert_eq!(cdr["hangup_side"], "system", "{cdr}");
    assert_eq!(cdr["outcome"], "answered", "{cdr}");
    assert_eq!(cdr["agent_id"], "ivan", "{cdr}");
}

#[test]
fn caller_silent_in_the_queue_is_ended_and_gets_a_bye() {
    if without_sipp() {
        return;
    }
    let server = server();
    // The department heads (a new client's chain) are on a break: the caller waits, hearing
    // music, and sends no RTP.
    put_on_break(&server, &["ivan", "petra"]);
    let mut trunk = Trunk::start(&server, "trunk_call_silent.xml");
    let done = trunk.wait(Duration::from_secs(TIMEOUT_S + 8));
    assert_eq!(
        done,
        Some(true),
        "the trunk got no BYE after its silence:\n{}",
        server.log()
    );
    wait_until(&server, "the call record", Duration::from_secs(3), || {
        !ended_calls(&server.log()).is_empty()
    });
    let rec = &ended_calls(&server.log())[0];
    assert_eq!(rec["outcome"], "abandoned", "{rec:?}");
    assert_eq!(rec["hangup"], "system", "{rec:?}");
    assert_eq!(rec["caller_rtp_in"], "0", "{rec:?}");
    let cdr = last_cdr(&server);
    assert_eq!(cdr["hangup_side"], "system", "{cdr}");
}

#[test]
fn call_on_hold_is_not_timed_out() {
    if without_sipp() {
        return;
    }
    let server = server();
    // Holds the caller (a=inactive) for 4 s — twice the timeout — with no RTP on the agent
    // leg, resumes, then hangs up itself.
    let _ivan = SippAgent::start(&server, "ivan", Some("agent_hold_long.xml"));
    let mut trunk = Trunk::start(&server, "trunk_call_wait_bye.xml");
    let done = trunk.wait(Duration::from_secs(15));
    assert_eq!(done, Some(true), "trunk call failed:\n{}", server.log());
    wait_until(&server, "the call record", Duration::from_secs(3), || {
        !ended_calls(&server.log()).is_empty()
    });
    let log = server.log();
    assert!(log.contains("agent holds the caller"), "{log}");
    assert!(!log.contains("RTP timeout"), "{log}");
    let rec = &ended_calls(&log)[0];
    assert_eq!(rec["outcome"], "answered", "{rec:?}");
    assert_eq!(rec["hangup"], "agent", "{rec:?}");
}
