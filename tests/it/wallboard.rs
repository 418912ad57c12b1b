//! The `/wallboard` page in a real browser (Debian chromium driven by playwright-core from
//! npm, `tests/browser/wallboard.mjs`): it signs in with the API token, shows the queue and
//! the agent, today's totals from the report and an open escalation, and the queue's waiting
//! count changes without a reload when a SIPp trunk call queues. The screenshot is left as a
//! test artifact (`target/tmp/wallboard.png`; docs/wallboard.png is one of them).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::*;

const CLIENTS: &str = "number,name,type,manager,region,overdue_debt
+38511000004,Retail Corner,retail,oleg,,0
";

/// Why the browser test cannot run here, if it cannot.
fn missing_peer() -> Option<String> {
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

#[test]
fn wallboard_shows_queues_and_agents_and_follows_a_call_live() {
    if let Some(why) = missing_peer() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs the browser test's peers: {why}"
        );
        eprintln!("SKIPPED: {why}; tests/run.sh installs it");
        return;
    }
    let ports = Ports::new();
    let config = demo_config(&ports);
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    let server = Server::start_in(dir, &config, ports);
    // Earlier today: oleg answers a call and escalates it.
    let _oleg = SippAgent::start(&server, "oleg", None);
    let (status, _out, messages) = trunk_call(&server, "+38511000004", "100", 1000);
    assert!(status.success(), "{messages}");
    let mut call_id = String::new();
    wait_until(
        &server,
        "the first call's record",
        Duration::from_secs(10),
        || {
            let (_, body) = api_get(server.ports.http, "/api/v1/calls").unwrap();
            let calls: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            call_id = calls[0]["id"].as_str().unwrap_or_default().to_owned();
            !call_id.is_empty()
        },
    );
    let (status, body) = api_post(
        server.ports.http,
        &format!("/api/v1/calls/{call_id}/escalate"),
        r#"{"note": "caller asks for the sales manager"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    // Now oleg is on a break: the next call waits in the orders queue.
    wait_until(
        &server,
        "oleg's wrap-up to end",
        Duration::from_secs(10),
        || {
            let (_, body) = api_get(server.ports.http, "/api/v1/agents/oleg").unwrap();
            body.contains("\"state\":\"available\"")
        },
    );
    let (status, body) = api_post(
        server.ports.http,
        "/api/v1/agents/oleg/state",
        r#"{"state": "break", "reason": "coffee"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wallboard.png");
    let _ = std::fs::remove_file(&shot);
    let mut node = Command::new("timeout")
        .args(["60", "node"])
        .arg(repo_root().join("tests/browser/wallboard.mjs"))
        .env("BASE", format!("http://127.0.0.1:{}", server.ports.http))
        .env("TOKEN", DEMO_TOKEN)
        .env("QUEUE", "orders")
        .env("AGENT", "oleg")
        .env("SHOT", &shot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let (tx, rx) = mpsc::channel();
    let stdout = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next_line = |what: &str| {
        rx.recv_timeout(Duration::from_secs(45))
            .unwrap_or_else(|_| panic!("the browser said nothing while {what}"))
    };
    let ready = next_line("loading the wallboard");
    assert_eq!(ready, "READY waiting=0", "{ready}\n{}", server.log());

    // A caller queues (nobody is available) and stays 6 s.
    std::thread::scope(|scope| {
        let call = scope.spawn(|| trunk_call(&server, "+38511000004", "100", 6000));
        let changed = next_line("waiting for the queued call to show");
        assert!(
        changed.starts_with(
            "CHANGED waiting=1 agent=break · coffee calls_today=1 answered_today=1 escalations=1"
        ),
        "{changed}\n{}",
        server.log()
    );
        assert_eq!(next_line("acknowledging the escalation"), "ACKED");
        let (_, open) = api_get(server.ports.http, "/api/v1/escalations?open=true").unwrap();
        assert_eq!(open, "[]", "the page's Acknowledge button acknowledged it");
        let (_, all) = api_get(server.ports.http, "/api/v1/escalations?open=false").unwrap();
        assert!(all.contains("\"acked_by\":\"supervisor\""), "{all}");
        let status = wait_with_timeout(&mut node, Duration::from_secs(20)).expect("node ended");
        assert!(status.success(), "browser script failed: {status:?}");
        let png = std::fs::read(&shot).expect("screenshot written");
        assert_eq!(&png[1..4], b"PNG", "a PNG screenshot at {}", shot.display());
        eprintln!("wallboard screenshot: {}", shot.display());
        let (status, _out, messages) = call.join().unwrap();
        assert!(status.success(), "{messages}");
    });
}
