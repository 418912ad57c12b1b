//! What real PBX trunks, SBCs and softphones send, through the real server: PJSUA2 (PJSIP)
//! as a trunk with session timers and 100rel required that moves its RTP port, holds and
//! resumes; Kamailio as an SBC with `record_route()` between a SIPp trunk and Switchboard;
//! SIPp with a late offer and with hold/resume re-INVITEs; PJSUA2 as an agent answering
//! 486. Every test checks RTP both ways (per media change where the peer can count it) and
//! the call record.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

const CLIENTS: &str = "number,name,type,manager,region,overdue_debt
+38511000004,Retail Corner,retail,oleg,,0
";

/// Whether a peer is usable; under `CI=true` a missing peer fails the test instead.
fn peer(name: &str, present: bool, install: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{name} is required in CI ({install})"
    );
    eprintln!("SKIPPED: {name} is not installed ({install})");
    false
}

fn have_pjsua2() -> bool {
    have_python_modules("pjsua2")
}

fn sipp_ok() -> bool {
    peer("sipp", have_sipp(), "package sip-tester")
}

fn pjsua2_ok() -> bool {
    sipp_ok() && peer("PJSUA2", have_pjsua2(), "pip install pjsua2-python")
}

fn company() -> Server {
    let ports = Ports::new();
    let config = demo_config(&ports);
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    Server::start_in(dir, &config, ports)
}

fn num(rec: &HashMap<String, String>, key: &str) -> u64 {
    rec.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The one finished call: answered by `agent`, RTP in all four directions (more than 20
/// packets each: 0.4 s of audio, where every test talks for seconds).
fn answered_call(server: &Server, agent: &str) -> HashMap<String, String> {
    wait_until(server, "the call record", Duration::from_secs(10), || {
        !ended_calls(&server.log()).is_empty()
    });
    let rec = ended_calls(&server.log()).swap_remove(0);
    assert_eq!(rec["outcome"], "answered", "{rec:?}\n{}", server.log());
    assert_eq!(rec["agent"], agent, "{rec:?}");
    for key in [
        "caller_rtp_in",
        "caller_rtp_out",
        "agent_rtp_in",
        "agent_rtp_out",
    ] {
        assert!(
            num(&rec, key) > 20,
            "too few RTP packets for {key}: {rec:?}"
        );
    }
    // The database has the same record.
    wait_until(server, "the stored record", Duration::from_secs(10), || {
        api_get(server.ports.http, "/api/v1/calls?limit=10")
            .is_ok_and(|(s, body)| s == 200 && body.contains("\"outcome\":\"answered\""))
    });
    rec
}

fn python(script: &str, args: &[String], timeout_s: u64) -> std::process::Output {
    Command::new("timeout")
        .arg(timeout_s.to_string())
        .arg("python3")
        .arg(data(&format!("pjsua2/{script}")))
        .args(args)
        .output()
        .expect("run python3")
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A SIPp trunk `scenario` sent to `target` (the server or an SBC before it): the retail
/// client of the directory calls the order line (DID 100), talks `talk_ms` where the
/// scenario pauses.
fn retail_trunk(
    target: std::net::SocketAddr,
    scenario: &str,
    talk_ms: u64,
    timeout: Duration,
) -> (std::process::ExitStatus, String, String) {
    let talk_ms = talk_ms.to_string();
    let args = ["-d", talk_ms.as_str()];
    trunk_scenario(scenario, target, "+38511000004", "100", &args, timeout)
}

/// PJSIP as the PBX trunk: `Require: 100rel, timer`, then a re-INVITE that moves its RTP
/// port, hold and resume, an UPDATE that moves it again. After each change RTP flows both
/// ways (PJSIP counts what it sent and what came back through the agent's echo).
#[test]
fn pjsua2_trunk_with_timers_and_100rel_moves_its_media_and_is_heard_both_ways() {
    if !pjsua2_ok() {
        return;
    }
    let server = company();
    let _ivan = SippAgent::start(&server, "ivan", None);
    let sip = server.sip_addr();
    let out = python(
        "trunk.py",
        &[
            sip.ip().to_string(),
            sip.port().to_string(),
            free_port().to_string(),
            "100".into(),
            "+38599123456".into(),
            repo_root().join("sounds/welcome.wav").display().to_string(),
            "2".into(),
        ],
        60,
    );
    let events = json_lines(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = || format!("{events:#?}\n{stderr}\n--- server ---\n{}", server.log());
    let phases: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "phase").collect();
    let names: Vec<&str> = phases.iter().filter_map(|p| p["phase"].as_str()).collect();
    assert_eq!(
        names,
        [
            "answered",
            "reinvite_moved",
            "held",
            "resumed",
            "update_moved"
        ],
        "{}",
        report()
    );
    for p in &phases {
        // 2 s at 50 packets/s each way; the relay answers every change at once.
        let (tx, rx) = (p["tx"].as_u64().unwrap(), p["rx"].as_u64().unwrap());
        assert!(
            tx > 60 && rx > 60,
            "phase {p}: tx {tx} rx {rx}\n{}",
            report()
        );
    }
    let port = |i: usize| phases[i]["rtp"].as_str().unwrap().to_owned();
    assert_ne!(port(0), port(1), "the re-INVITE moved PJSIP's RTP port");
    assert_ne!(port(3), port(4), "the UPDATE moved it again");
    assert!(out.status.success(), "PJSUA2 exited cleanly: {}", report());
    let log = server.log();
    assert!(log.contains("session timer"), "{}", report());
    assert!(log.contains("caller holds the call"), "{}", report());
    assert!(log.contains("caller resumes the call"), "{}", report());
    assert!(log.contains("relay re-pointed"), "{}", report());
    let rec = answered_call(&server, "ivan");
    assert_eq!(rec["hangup"], "caller", "{rec:?}");
}

/// PJSIP as an agent answering 486: that offer ends at once, the call goes to the next
/// agent well inside the ring timeout, and the busy agent is not left ringing.
#[test]
fn pjsua2_agent_answering_486_passes_the_call_on_at_once() {
    if !pjsua2_ok() {
        return;
    }
    let server = company();
    let sip = server.sip_addr();
    // olga (orders level 7) is offered first and refuses; oleg (level 5) answers.
    let mut olga = Command::new("timeout")
        .arg("40")
        .arg("python3")
        .arg(data("pjsua2/agent.py"))
        .args([
            sip.ip().to_string(),
            sip.port().to_string(),
            free_port().to_string(),
            "olga".into(),
            "olga-secret".into(),
            "30".into(),
            "486".into(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the PJSUA2 agent");
    wait_until(&server, "olga registered", Duration::from_secs(10), || {
        server.log().contains("agent registered agent=olga")
    });
    let _oleg = SippAgent::start(&server, "oleg", None);
    let (status, out, messages) = trunk_call(&server, "+38511000004", "100", 3000);
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let rec = answered_call(&server, "oleg");
    // Ring timeout of the orders queue is 15 s: the refusal moved the call on at once.
    assert!(num(&rec, "wait_ms") < 5000, "{rec:?}");
    assert!(server.log().contains("status=486"), "{}", server.log());
    let (code, body) = api_get(server.ports.http, "/api/v1/agents").unwrap();
    assert_eq!(code, 200, "{body}");
    let agents: serde_json::Value = serde_json::from_str(&body).unwrap();
    let list = agents
        .get("agents")
        .unwrap_or(&agents)
        .as_array()
        .cloned()
        .unwrap_or_default();
    let olga_state = list
        .iter()
        .find(|a| a["id"] == "olga")
        .map(|a| a["state"].clone());
    assert!(
        olga_state
            .as_ref()
            .is_some_and(|s| s != "ringing" && s != "on_call"),
        "olga: {olga_state:?} in {body}"
    );
    stop_wrapped(&mut olga);
    let mut stdout = String::new();
    if let Some(mut s) = olga.stdout.take() {
        use std::io::Read as _;
        let _ = s.read_to_string(&mut stdout);
    }
    let incoming = json_lines(stdout.as_bytes())
        .iter()
        .filter(|e| e["event"] == "incoming")
        .count();
    assert_eq!(incoming, 1, "{stdout}");
}

/// SIPp with a late offer: our offer in the 200 (checked by the scenario), the answer in the
/// ACK, audio both ways on both legs.
#[test]
fn sipp_late_offer_is_answered_with_our_offer_and_bridged() {
    if !sipp_ok() {
        return;
    }
    let server = company();
    let _oleg = SippAgent::start(&server, "oleg", None);
    let (status, out, messages) = retail_trunk(
        server.sip_addr(),
        "trunk_late_offer.xml",
        3000,
        Duration::from_secs(30),
    );
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    assert!(
        server
            .log()
            .contains("caller answered our offer in the ACK")
    );
    answered_call(&server, "oleg");
}

/// SIPp holds and resumes by re-INVITE: answered recvonly, then sendrecv (checked by the
/// scenario); audio both ways on both legs around the changes.
#[test]
fn sipp_reinvite_hold_and_resume_are_answered_and_audio_resumes() {
    if !sipp_ok() {
        return;
    }
    let server = company();
    let _oleg = SippAgent::start(&server, "oleg", None);
    let (status, out, messages) = retail_trunk(
        server.sip_addr(),
        "trunk_reinvite_hold.xml",
        3000,
        Duration::from_secs(40),
    );
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let log = server.log();
    let held = log.find("caller holds the call").expect("hold seen");
    let resumed = log.find("caller resumes the call").expect("resume seen");
    assert!(held < resumed);
    answered_call(&server, "oleg");
}

/// Kamailio as the SBC in front of Switchboard with `record_route()`: Record-Route comes back
/// in 180/200, the trunk's ACK and Switchboard's BYE (the agent hangs up) pass through the
/// SBC by loose routing, audio flows both ways, the agent's hold and resume in between.
#[test]
fn kamailio_sbc_with_record_route_carries_ack_and_bye_both_ways() {
    if !sipp_ok()
        || !peer(
            "kamailio",
            Path::new("/usr/sbin/kamailio").exists(),
            "package kamailio",
        )
    {
        return;
    }
    let server = company();
    let _oleg = SippAgent::start(&server, "oleg", Some("agent_hold_hangup.xml"));
    let sbc_port = free_port();
    let run = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(data("kamailio/sbc.cfg"))
        .expect("kamailio SBC config")
        .replace("SBC_PORT", &sbc_port.to_string())
        .replace("SWITCHBOARD_PORT", &server.sip_addr().port().to_string());
    let cfg_path = run.path().join("kamailio.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let log_path = run.path().join("kamailio.log");
    let mut kamailio = Command::new("timeout")
        .arg("60")
        .arg("kamailio")
        .arg("-f")
        .arg(&cfg_path)
        .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
        .arg(run.path())
        .arg("-P")
        .arg(run.path().join("kamailio.pid"))
        .arg("-w")
        .arg(run.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("spawn kamailio");
    let sbc: std::net::SocketAddr = format!("127.0.0.1:{sbc_port}").parse().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let (status, out, messages) = retail_trunk(
        sbc,
        "trunk_call_wait_bye.xml",
        3000,
        Duration::from_secs(30),
    );
    stop_wrapped(&mut kamailio);
    let kam = std::fs::read_to_string(&log_path).unwrap_or_default();
    let report = format!(
        "{out}\n{messages}\n--- kamailio ---\n{kam}\n--- server ---\n{}",
        server.log()
    );
    assert!(status.success(), "{report}");
    assert!(
        messages.contains("Record-Route: <sip:127.0.0.1:"),
        "Record-Route echoed to the trunk: {report}"
    );
    assert!(
        kam.contains("KAM in-dialog ACK loose_route"),
        "the trunk's ACK went through the SBC: {report}"
    );
    assert!(
        kam.contains("KAM in-dialog BYE loose_route"),
        "Switchboard's BYE went through the SBC: {report}"
    );
    let rec = answered_call(&server, "oleg");
    assert_eq!(rec["hangup"], "agent", "{rec:?}");
}
