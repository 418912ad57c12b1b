//! The `/agent` page in a real browser (Debian chromium driven by playwright-core from npm,
//! `tests/browser/agent.mjs`, with a fake microphone): the agent logs in with id and password,
//! JsSIP registers over SIP on WebSocket with digest, a SIPp trunk call rings the page, the
//! screen pop shows the route, the agent answers, WebRTC audio arrives in the browser
//! (`inbound-rtp` bytes in `getStats()`) and the browser's audio reaches the relay and the
//! trunk; the call ends from either side and its record names the agent.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::*;

fn skip() -> bool {
    let Some(why) = browser_peers_missing() else {
        return false;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI needs the browser test's peers: {why}"
    );
    eprintln!("SKIPPED: {why}; tests/run.sh installs it");
    true
}

/// Runs the page as `petra` until the call ends; the trunk call starts once the page says
/// READY. Returns the page's lines and the server.
fn browser_call(hangup: &str, scenario: &str) -> (String, Server) {
    browser_call_with(hangup, scenario, false)
}

/// [`browser_call`]; with `renegotiate` the page holds, resumes and restarts ICE during
/// the call, which then lasts longer and whose trunk echoes the browser's audio back (so
/// audio flows for as long as the call does).
fn browser_call_with(hangup: &str, scenario: &str, renegotiate: bool) -> (String, Server) {
    let ports = Ports::new();
    let ws = free_port();
    let config = demo_config(&ports).replace(
        &format!("\"tcp:127.0.0.1:{}\"]", ports.sip),
        &format!("\"tcp:127.0.0.1:{}\", \"ws:127.0.0.1:{ws}\"]", ports.sip),
    );
    let server = Server::start(&config, ports);
    let mut node = Command::new("timeout")
        .args(["90", "node"])
        .arg(repo_root().join("tests/browser/agent.mjs"))
        .env("BASE", format!("http://127.0.0.1:{}", server.ports.http))
        .env("AGENT", "petra")
        .env("PASSWORD", "petra-secret")
        .env("HANGUP", hangup)
        .env("RENEGOTIATE", if renegotiate { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let stdout = node.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the page never said READY: {said}\n{}", server.log()));
        said.push_str(&line);
        said.push('\n');
        assert!(!line.starts_with("FAIL"), "{said}\n{}", server.log());
        if line.starts_with("READY") {
            break;
        }
    }
    // An unknown caller is a `new` client: the department head petra takes it.
    let (status, out, messages) = if renegotiate {
        crate::websocket::trunk_with(&server, scenario, 16_000, &["-rtp_echo"])
    } else {
        crate::websocket::trunk(&server, scenario)
    };
    let status_node = wait_with_timeout(&mut node, Duration::from_secs(30)).expect("node ended");
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        said.push_str(&line);
        said.push('\n');
    }
    assert!(
        status.success(),
        "{out}\n{messages}\n{said}\n{}",
        server.log()
    );
    assert!(status_node.success(), "{said}\n{}", server.log());
    (said, server)
}

fn the_record(server: &Server) -> std::collections::HashMap<String, String> {
    wait_until(server, "the call record", Duration::from_secs(5), || {
        !ended_calls(&server.log()).is_empty()
    });
    ended_calls(&server.log()).remove(0)
}

fn assert_talked(said: &str, server: &Server) {
    assert!(
        said.contains("POP caller=+38511000004"),
        "{said}\n{}",
        server.log()
    );
    assert!(said.contains("route=role:department_head(petra)"), "{said}");
    // An unknown caller: the client card says so.
    assert!(said.contains("type=new name=new client"), "{said}");
    let bytes: u64 = said
        .lines()
        .find_map(|l| l.strip_prefix("AUDIO bytes="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(bytes > 0, "{said}");
    assert!(
        server.log().contains("WebRTC agent leg connected"),
        "{}",
        server.log()
    );
    let rec = the_record(server);
    assert_eq!(rec["outcome"], "answered", "{rec:?}");
    assert_eq!(rec["agent"], "petra", "{rec:?}");
    // The browser's microphone reached the relay, and the relay sent the trunk audio.
    let agent_in: u64 = rec["agent_rtp_in"].parse().unwrap();
    let caller_out: u64 = rec["caller_rtp_out"].parse().unwrap();
    let agent_out: u64 = rec["agent_rtp_out"].parse().unwrap();
    assert!(
        agent_in > 20 && caller_out > 20 && agent_out > 20,
        "{rec:?}"
    );
    // The escalation raised from the page is the supervisors' to see, with the agent's note.
    assert!(said.contains("ESCALATED"), "{said}");
    let (status, escalations) = api_get(server.ports.http, "/api/v1/escalations").unwrap();
    assert_eq!(status, 200, "{escalations}");
    assert!(
        escalations.contains("petra") && escalations.contains("caller asks for a manager"),
        "{escalations}"
    );
    // The disposition saved at wrap-up is on the call's record.
    assert!(said.contains("DISPOSITION code=order"), "{said}");
    let (status, calls) = api_get(server.ports.http, "/api/v1/calls?limit=1").unwrap();
    assert_eq!(status, 200, "{calls}");
    assert!(
        calls.contains(r#""disposition":"order""#) && calls.contains("two pallets"),
        "{calls}"
    );
}

#[test]
fn a_browser_agent_answers_on_the_agent_page_and_the_caller_hangs_up() {
    if skip() {
        return;
    }
    let (said, server) = browser_call("caller", "trunk_call.xml");
    assert!(said.contains("ENDED"), "{said}");
    assert_talked(&said, &server);
    assert_eq!(the_record(&server)["hangup"], "caller");
}

#[test]
fn a_browser_agent_hangs_up_from_the_agent_page() {
    if skip() {
        return;
    }
    let (said, server) = browser_call("page", "trunk_call_wait_bye.xml");
    assert!(said.contains("HUNGUP"), "{said}");
    assert_talked(&said, &server);
    assert_eq!(the_record(&server)["hangup"], "agent");
}

#[test]
fn a_browser_agent_holds_resumes_and_restarts_ice_from_the_page() {
    if skip() {
        return;
    }
    let (said, server) = browser_call_with("caller", "trunk_call.xml", true);
    let delta = |what: &str| -> u64 {
        said.lines()
            .find(|l| l.starts_with(what))
            .and_then(|l| l.rsplit("delta=").next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {what} line: {said}\n{}", server.log()))
    };
    // Nothing reaches the browser while it holds the caller; audio again once it resumes,
    // and again after an ICE restart, with new ICE credentials from the server's leg.
    assert!(delta("HELD") < 1000, "{said}");
    assert!(delta("RESUMED") > 4000, "{said}\n{}", server.log());
    assert!(
        said.contains("ICE-RESTART changed=true"),
        "{said}\n{}",
        server.log()
    );
    assert!(delta("ICE-RESTART") > 4000, "{said}\n{}", server.log());
    let log = server.log();
    assert!(log.contains("agent holds the caller"), "{log}");
    assert!(log.contains("agent resumes the caller"), "{log}");
    assert!(said.contains("ENDED"), "{said}");
    assert_talked(&said, &server);
}
