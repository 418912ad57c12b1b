//! What real PBX trunks, SBCs and softphones send, through the real server: PJSUA2 (PJSIP)
//! as a trunk with session timers and 100rel required that moves its RTP port, holds and
//! resumes; Kamailio as an SBC with `record_route()` between a SIPp trunk and Switchboard;
//! SIPp with a late offer and with hold/resume re-INVITEs; PJSUA2 as an agent answering
//! 486; SIPp as a caller who holds, and as a trunk and an agent whose re-INVITEs carry no
//! SDP, with the test's own RTP probes as their media end points; SIPp as an agent reached
//! over a TCP connection Switchboard opens. Every test checks RTP both ways (per
//! media change where the peer or a probe can count it) and the call record.

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
/// ways (PJSIP counts what it sent and what came back through the agent's echo), except
/// to PJSIP while it holds: nothing reaches it then.
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
        // 2 s at 50 packets/s each way; the relay answers every change at once. While
        // PJSIP holds (`a=sendonly`) the relay sends it nothing (what was in flight at most).
        let (tx, rx) = (p["tx"].as_u64().unwrap(), p["rx"].as_u64().unwrap());
        let heard = if p["phase"] == "held" {
            rx <= 3
        } else {
            rx > 60
        };
        assert!(tx > 60 && heard, "phase {p}: tx {tx} rx {rx}\n{}", report());
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

/// The caller leg's relay address of the call `trunk` placed, once its media is open.
fn caller_relay(server: &Server, trunk: &mut SippRun) -> std::net::SocketAddr {
    let mut relay = None;
    trunk.wait_until(server, "the call's media", Duration::from_secs(15), || {
        relay = relay_ports(&server.log());
        relay.is_some()
    });
    let (caller_port, _) = relay.unwrap();
    ([127, 0, 0, 1], caller_port).into()
}

/// SIPp's exit status, output and message trace.
type SippOutcome = (std::process::ExitStatus, String, String);

/// A trunk's SIPp running in a thread.
struct SippRun(Option<std::thread::JoinHandle<SippOutcome>>);

impl SippRun {
    fn spawn(run: impl FnOnce() -> SippOutcome + Send + 'static) -> SippRun {
        SippRun(Some(std::thread::spawn(run)))
    }

    /// Waits for `f` as [`wait_until`] does, while the trunk's call goes on: a SIPp that ends
    /// first (a scenario error, a port another test took) fails the test with its own exit
    /// status, output and messages instead of a time-out that says nothing of why.
    fn wait_until(
        &mut self,
        server: &Server,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> bool,
    ) {
        let running = self.0.as_ref().expect("the trunk's SIPp was joined");
        let mut met = false;
        wait_until(server, what, timeout, || {
            met = f();
            met || running.is_finished()
        });
        if !met {
            let (status, out, messages) = self.join();
            panic!(
                "the trunk's SIPp ended ({status}) before {what}\n{out}\n{messages}\n{}",
                server.log()
            );
        }
    }

    fn join(&mut self) -> SippOutcome {
        let running = self.0.take().expect("the trunk's SIPp was joined");
        running.join().expect("the trunk's SIPp thread")
    }
}

/// The party whose re-INVITE without SDP moved its RTP from probe `old` to probe `new`
/// (`acked`: the log line of its answer in the ACK): in the next second the old port gets at
/// most what was in flight and the new one the audio; then the trunk's SIPp passes and the
/// call is answered by oleg and ended by `hangup`.
fn assert_moved(
    server: &Server,
    (old, new): (&RtpProbe, &RtpProbe),
    acked: &str,
    mut trunk: SippRun,
    hangup: &str,
) {
    trunk.wait_until(
        server,
        "the answer in the ACK",
        Duration::from_secs(10),
        || server.log().contains(acked),
    );
    let (at_old, at_new) = phase_counts(old, new, Duration::from_millis(1000));
    assert!(
        at_old <= 2,
        "{at_old} packets still went to the old port\n{}",
        server.log()
    );
    assert!(
        at_new >= 25,
        "{at_new} packets reached the new port in 1 s\n{}",
        server.log()
    );
    let (status, out, messages) = trunk.join();
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let rec = answered_call(server, "oleg");
    assert_eq!(rec["hangup"], hangup, "{rec:?}");
}

/// The retail client calls the order line from a SIPp trunk that plays a recording and
/// waits for Switchboard's BYE (the agent hangs up), in a thread.
fn playing_trunk(server: &Server) -> SippRun {
    let target = server.sip_addr();
    SippRun::spawn(move || {
        retail_trunk(
            target,
            "trunk_call_wait_bye.xml",
            0,
            Duration::from_secs(30),
        )
    })
}

/// Agent oleg answering on SIPp (`agent_answer_at.xml`) with its RTP at an echoing probe.
fn probe_agent(server: &Server) -> (RtpProbe, SippAgent) {
    let probe = RtpProbe::start(ProbeMode::Echo);
    let port = probe.port().to_string();
    let agent = SippAgent::start_with(
        server,
        &["oleg"],
        Some("agent_answer_at.xml"),
        &["-key", "rtp_port", &port],
    );
    (probe, agent)
}

/// The retail client calls the order line from a SIPp trunk `scenario` whose SDP names the
/// probe ports `rtp` (`-key NAME PORT`), talking `talk_ms` where it pauses, in a thread.
fn probe_trunk(server: &Server, scenario: &str, talk_ms: u64, rtp: &[(&str, u16)]) -> SippRun {
    let target = server.sip_addr();
    let scenario = scenario.to_owned();
    let mut args: Vec<String> = ["-key", "caller", "+38511000004", "-s", "100", "-d"]
        .map(str::to_owned)
        .into();
    args.push(talk_ms.to_string());
    for (key, port) in rtp {
        args.extend(["-key".to_owned(), (*key).to_owned(), port.to_string()]);
    }
    SippRun::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sipp_at(
            &scenario,
            target,
            free_port(),
            &args,
            Duration::from_secs(40),
        )
    })
}

/// Counts at two probes now.
fn counts(a: &RtpProbe, b: &RtpProbe) -> (u64, u64) {
    (a.count(), b.count())
}

/// What reached probes `a` and `b` during `d`, starting once packets sent before now
/// (`in_flight`) have landed.
fn phase_counts(a: &RtpProbe, b: &RtpProbe, d: Duration) -> (u64, u64) {
    std::thread::sleep(Duration::from_millis(150));
    let (a0, b0) = counts(a, b);
    std::thread::sleep(d);
    let (a1, b1) = counts(a, b);
    (a1 - a0, b1 - b0)
}

/// The caller's PBX holds (SIPp, re-INVITE `a=sendonly`, answered `a=recvonly`): the relay
/// sends the caller nothing until it resumes, the agent hears our hold music meanwhile,
/// and after the resume audio flows both ways again. The caller's and the agent's RTP end
/// points are the test's probes: the caller's talks, the agent's echoes.
#[test]
fn caller_hold_sends_the_caller_nothing_and_the_agent_music_until_resume() {
    if !sipp_ok() {
        return;
    }
    let server = company();
    let at_caller = RtpProbe::start(ProbeMode::Talk(8));
    let (at_agent, _oleg) = probe_agent(&server);
    let rtp = [("rtp_port", at_caller.port())];
    let mut trunk = probe_trunk(&server, "trunk_hold_at.xml", 2500, &rtp);
    // The caller talks to its relay port as soon as the call has media.
    at_caller.talk_to(caller_relay(&server, &mut trunk));
    trunk.wait_until(&server, "the bridge", Duration::from_secs(15), || {
        server.log().contains(" answered")
    });
    let (caller, agent) = phase_counts(&at_caller, &at_agent, Duration::from_millis(800));
    assert!(
        caller >= 20 && agent >= 20,
        "talking: caller {caller}, agent {agent}\n{}",
        server.log()
    );
    trunk.wait_until(
        &server,
        "the caller's hold",
        Duration::from_secs(10),
        || server.log().contains("caller holds the call"),
    );
    let (caller, agent) = phase_counts(&at_caller, &at_agent, Duration::from_millis(1500));
    assert!(
        caller <= 2,
        "{caller} packets reached a caller who holds\n{}",
        server.log()
    );
    assert!(
        agent >= 40,
        "hold music to the agent: {agent} packets in 1.5 s\n{}",
        server.log()
    );
    trunk.wait_until(&server, "the resume", Duration::from_secs(10), || {
        server.log().contains("caller resumes the call")
    });
    let (caller, agent) = phase_counts(&at_caller, &at_agent, Duration::from_millis(1000));
    assert!(
        caller >= 25 && agent >= 25,
        "resumed: caller {caller}, agent {agent}\n{}",
        server.log()
    );
    let (status, out, messages) = trunk.join();
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    answered_call(&server, "oleg");
}

/// The agent's softphone sends a re-INVITE without SDP (SIPp): our offer comes in the 200
/// (checked by the scenario) and its answer in the ACK moves the agent's RTP to another
/// port: from then on the caller's audio reaches the new port and none the old one, and the
/// agent's audio from the new port reaches the caller.
#[test]
fn agent_reinvite_without_sdp_moves_its_audio_to_the_port_in_its_ack() {
    if !sipp_ok() {
        return;
    }
    let server = company();
    let old = RtpProbe::start(ProbeMode::Echo);
    let new = RtpProbe::start(ProbeMode::Echo);
    let (rtp_a, rtp_b) = (old.port().to_string(), new.port().to_string());
    let _oleg = SippAgent::start_with(
        &server,
        &["oleg"],
        Some("agent_reinvite_no_sdp.xml"),
        &["-key", "rtp_a", &rtp_a, "-key", "rtp_b", &rtp_b],
    );
    let mut trunk = playing_trunk(&server);
    trunk.wait_until(
        &server,
        "audio at the agent",
        Duration::from_secs(15),
        || old.count() >= 20,
    );
    assert_eq!(new.count(), 0);
    let acked = "agent answered our offer in the ACK";
    assert_moved(&server, (&old, &new), acked, trunk, "agent");
}

/// An agent whose phone registered over UDP with a Contact asking for TCP (SIPp answering
/// with `-t t1`): Switchboard opens a TCP connection to call it, keeps the call's requests
/// (INVITE, ACK, BYE) on that one connection, and audio flows both ways.
#[test]
fn an_agent_whose_contact_asks_for_tcp_is_called_over_a_connection_we_open() {
    if !sipp_ok() {
        return;
    }
    let server = company();
    let oleg = SippAgent::start_tcp_contact(&server, "oleg");
    let (status, out, messages) = retail_trunk(
        server.sip_addr(),
        "trunk_call.xml",
        3000,
        Duration::from_secs(30),
    );
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let rec = answered_call(&server, "oleg");
    assert_eq!(rec["hangup"], "caller", "{rec:?}");
    let agent = oleg.messages();
    assert!(agent.contains("INVITE sip:oleg@127.0.0.1:"), "{agent}");
    assert!(agent.contains("Via: SIP/2.0/TCP"), "{agent}");
    assert!(agent.contains("BYE sip:"), "{agent}");
    let log = server.log();
    assert_eq!(
        log.matches("outbound TCP connection established").count(),
        1,
        "one connection carried the agent's dialog\n{log}"
    );
}

/// The caller's PBX sends a re-INVITE without SDP (SIPp): our offer comes in the 200
/// (checked by the scenario) and its answer in the ACK moves the caller's RTP to another
/// port: from then on the agent's audio reaches the caller at the new port and none the
/// old one. Both caller ports are the test's talking probes, the agent's an echoing one.
#[test]
fn trunk_reinvite_without_sdp_moves_its_audio_to_the_port_in_its_ack() {
    if !sipp_ok() {
        return;
    }
    let server = company();
    let (_at_agent, _oleg) = probe_agent(&server);
    let old = RtpProbe::start(ProbeMode::Talk(8));
    let new = RtpProbe::start(ProbeMode::Talk(8));
    let rtp = [("rtp_a", old.port()), ("rtp_b", new.port())];
    let mut trunk = probe_trunk(&server, "trunk_reinvite_no_sdp.xml", 2000, &rtp);
    let relay = caller_relay(&server, &mut trunk);
    old.talk_to(relay);
    new.talk_to(relay);
    trunk.wait_until(
        &server,
        "the agent's audio",
        Duration::from_secs(15),
        || server.log().contains(" answered") && old.count() >= 40,
    );
    let acked = "caller answered our offer in the ACK";
    assert_moved(&server, (&old, &new), acked, trunk, "caller");
}

/// The agent holds the RFC 2543 way (SIPp, re-INVITE with `c=IN IP4 0.0.0.0`): the relay
/// sends the agent nothing until it resumes (the caller hears our music meanwhile) and the
/// caller's audio reaches the agent again after the resume. The agent's RTP end point is the
/// test's echoing probe; the caller is a SIPp trunk playing a recording.
#[test]
fn agent_hold_by_null_address_sends_the_agent_nothing_until_resume() {
    if !sipp_ok() {
        return;
    }
    let server = company();
    let at_agent = RtpProbe::start(ProbeMode::Echo);
    let agent_rtp = at_agent.port().to_string();
    let _oleg = SippAgent::start_with(
        &server,
        &["oleg"],
        Some("agent_hold_at.xml"),
        &["-key", "rtp_port", &agent_rtp],
    );
    let mut trunk = playing_trunk(&server);
    trunk.wait_until(
        &server,
        "audio at the agent",
        Duration::from_secs(15),
        || at_agent.count() >= 20,
    );
    trunk.wait_until(&server, "the agent's hold", Duration::from_secs(10), || {
        server.log().contains("agent holds the caller")
    });
    let (held, _) = phase_counts(&at_agent, &at_agent, Duration::from_millis(1500));
    assert!(
        held <= 2,
        "{held} packets reached an agent who holds\n{}",
        server.log()
    );
    trunk.wait_until(&server, "the resume", Duration::from_secs(10), || {
        server.log().contains("agent resumes the caller")
    });
    let (resumed, _) = phase_counts(&at_agent, &at_agent, Duration::from_millis(1000));
    assert!(
        resumed >= 25,
        "{resumed} packets at the agent after the resume\n{}",
        server.log()
    );
    let (status, out, messages) = trunk.join();
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let rec = answered_call(&server, "oleg");
    assert_eq!(rec["hangup"], "agent", "{rec:?}");
}
