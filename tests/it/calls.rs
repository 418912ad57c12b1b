//! Calls end to end through the real server: a SIPp trunk calls in (A-law audio), agents take
//! the calls on real softphones — baresip (registers with digest, auto-answers, speaks a
//! prompt and records what it hears) for the routing rules, SIPp UAS scenarios where an agent
//! must misbehave on purpose (no answer, reject, hold, transfer). Each test checks which agent
//! rang, that RTP crossed Switchboard both ways on both legs (and that the agent heard the
//! caller), and the call's outcome and route. One test per routing rule of PRODUCT.md §2.

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::*;

const CLIENTS: &str = "number,name,type,manager,region,overdue_debt
+38511000001,Key Shop,key,ana,,0
+38511000002,Debtor Ltd,retail,petra,,1250.50
+38511000003,Coastal Store,regional,,south,0
+38511000004,Retail Corner,retail,oleg,,0
+38511000005,Indebted Key,key,ana,,99
";

/// A server with the demo company and the test client directory.
fn company() -> Server {
    let ports = Ports::new();
    let config = demo_config(&ports);
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    Server::start_in(dir, &config, ports)
}

/// Places one call (the caller stays 2.5 s after the queue answers: time for the agent's
/// phone to answer and talk, with margin for a loaded machine) and returns the server's record
/// of it.
fn call(server: &Server, caller: &str, did: &str) -> HashMap<String, String> {
    call_for(server, caller, did, 2500)
}

/// The call-detail records in the server's database, newest first (`GET /api/v1/calls`).
fn cdrs(server: &Server) -> Vec<serde_json::Value> {
    let Ok((200, body)) = api_get(server.ports.http, "/api/v1/calls?limit=100") else {
        return Vec::new();
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let list = json.get("calls").cloned().unwrap_or(json);
    list.as_array().cloned().unwrap_or_default()
}

fn call_for(server: &Server, caller: &str, did: &str, stay_ms: u64) -> HashMap<String, String> {
    let before = ended_calls(&server.log()).len();
    let stored_before = cdrs(server).len();
    let (status, out, messages) = trunk_call(server, caller, did, stay_ms);
    assert!(
        status.success(),
        "trunk call failed ({status:?}):\n{out}\n--- trunk messages ---\n{messages}\n--- server ---\n{}",
        server.log()
    );
    wait_until(server, "the call record", Duration::from_secs(5), || {
        ended_calls(&server.log()).len() > before
    });
    let rec = ended_calls(&server.log()).swap_remove(before);
    // The call-detail record in the database says the same.
    let mut stored = Vec::new();
    wait_until(
        server,
        "the CDR in the database",
        Duration::from_secs(10),
        || {
            stored = cdrs(server);
            stored.len() > stored_before
        },
    );
    let cdr = &stored[0];
    assert_eq!(
        cdr["outcome"].as_str(),
        Some(rec["outcome"].as_str()),
        "{cdr}"
    );
    assert_eq!(cdr["route"].as_str(), Some(rec["route"].as_str()), "{cdr}");
    let agent = cdr["agent_id"].as_str().unwrap_or("-");
    assert_eq!(agent, rec["agent"], "{cdr}");
    assert_eq!(cdr["dialed"].as_str(), Some(did), "{cdr}");
    assert_eq!(cdr["direction"].as_str(), Some("inbound"), "{cdr}");
    rec
}

fn num(rec: &HashMap<String, String>, key: &str) -> u64 {
    rec.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The call was answered by `agent` and audio crossed Switchboard in all four directions.
fn assert_answered_by(rec: &HashMap<String, String>, agent: &str, server: &Server) {
    assert_eq!(
        rec.get("outcome").map(String::as_str),
        Some("answered"),
        "{rec:?}\n{}",
        server.log()
    );
    assert_eq!(rec.get("agent").map(String::as_str), Some(agent), "{rec:?}");
    // 1.5 s of talk at 50 packets/s: well over 20 packets each way on each leg.
    for key in [
        "caller_rtp_in",
        "caller_rtp_out",
        "agent_rtp_in",
        "agent_rtp_out",
    ] {
        assert!(num(rec, key) > 20, "too few RTP packets for {key}: {rec:?}");
    }
}

#[test]
fn new_client_goes_to_a_department_head() {
    if without_sipp() {
        return;
    }
    let server = company();
    let ivan = Phone::start(&server, "ivan");
    let olga = Phone::start(&server, "olga");
    let rec = call(&server, "+38599999999", "100");
    assert_answered_by(&rec, "ivan", &server);
    ivan.assert_heard_the_caller();
    assert!(rec["route"].starts_with("role:department_head"), "{rec:?}");
    assert_eq!(ivan.rang(), 1);
    assert_eq!(olga.rang(), 0, "an operator never takes a new client");
}

#[test]
fn key_client_goes_to_their_own_manager() {
    if without_sipp() {
        return;
    }
    let server = company();
    let marko = Phone::start(&server, "marko");
    let ana = Phone::start(&server, "ana");
    // The trunk's formatting of the number is normalised before the directory lookup.
    let rec = call(&server, "+385-1-1000-001", "100");
    assert_answered_by(&rec, "ana", &server);
    ana.assert_heard_the_caller();
    assert!(rec["route"].starts_with("assigned_manager(ana"), "{rec:?}");
    assert_eq!(ana.rang(), 1);
    assert_eq!(marko.rang(), 0);
}

#[test]
fn key_client_without_a_free_key_account_manager_reaches_the_head_of_wholesale() {
    if without_sipp() {
        return;
    }
    let server = company();
    // ana and marko are not logged in; ivan heads wholesale; olga is an operator.
    let ivan = Phone::start(&server, "ivan");
    let olga = Phone::start(&server, "olga");
    let rec = call(&server, "+38511000001", "100");
    assert_answered_by(&rec, "ivan", &server);
    ivan.assert_heard_the_caller();
    assert!(
        rec["route"].contains("role:head_of_wholesale(ivan)"),
        "{rec:?}"
    );
    assert_eq!(olga.rang(), 0, "a key client never reaches the order desk");
    assert_eq!(ivan.rang(), 1);
}

#[test]
fn debtor_goes_to_their_manager_else_finance() {
    if without_sipp() {
        return;
    }
    let server = company();
    let fina = Phone::start(&server, "fina");
    let olga = Phone::start(&server, "olga");
    // petra (the manager) is not logged in: finance takes it.
    let rec = call(&server, "+38511000002", "100");
    assert_answered_by(&rec, "fina", &server);
    fina.assert_heard_the_caller();
    assert!(rec["route"].contains("role:finance(fina)"), "{rec:?}");
    assert_eq!(fina.rang(), 1);
    let petra = Phone::start(&server, "petra");
    let rec = call(&server, "+38511000002", "100");
    assert_answered_by(&rec, "petra", &server);
    petra.assert_heard_the_caller();
    assert!(
        rec["route"].starts_with("assigned_manager(petra"),
        "{rec:?}"
    );
    assert_eq!(olga.rang(), 0, "a debtor never reaches the order desk");
    assert_eq!(petra.rang(), 1);
}

#[test]
fn regional_client_goes_to_the_regional_queue() {
    if without_sipp() {
        return;
    }
    let server = company();
    let oleg = Phone::start(&server, "oleg");
    let rita = Phone::start(&server, "rita");
    let rec = call(&server, "+38511000003", "100");
    assert_answered_by(&rec, "rita", &server);
    rita.assert_heard_the_caller();
    assert!(rec["route"].starts_with("queue:regional(rita)"), "{rec:?}");
    assert_eq!(rita.rang(), 1);
    assert_eq!(oleg.rang(), 0, "oleg has no regional skill");
}

#[test]
fn other_purpose_goes_to_the_manager_else_the_head_of_sales() {
    if without_sipp() {
        return;
    }
    let server = company();
    let petra = Phone::start(&server, "petra");
    // DID 300 = purpose "other"; the manager oleg is not logged in.
    let rec = call(&server, "+38511000004", "300");
    assert_answered_by(&rec, "petra", &server);
    petra.assert_heard_the_caller();
    assert!(
        rec["route"].contains("role:head_of_sales(petra)"),
        "{rec:?}"
    );
    let oleg = Phone::start(&server, "oleg");
    let rec = call(&server, "+38511000004", "300");
    assert_answered_by(&rec, "oleg", &server);
    oleg.assert_heard_the_caller();
    assert!(rec["route"].starts_with("assigned_manager(oleg"), "{rec:?}");
    assert_eq!(oleg.rang(), 1);
    assert_eq!(petra.rang(), 1);
}

#[test]
fn standard_order_goes_to_the_operators_queue_by_skill_level() {
    if without_sipp() {
        return;
    }
    let server = company();
    let oleg = Phone::start(&server, "oleg");
    let olga = Phone::start(&server, "olga");
    let rec = call(&server, "+38511000004", "100");
    // olga's orders skill (7) beats oleg's (5).
    assert_answered_by(&rec, "olga", &server);
    olga.assert_heard_the_caller();
    assert!(rec["route"].starts_with("queue:orders(olga)"), "{rec:?}");
    assert_eq!(olga.rang(), 1);
    assert_eq!(oleg.rang(), 0);
}

#[test]
fn complaint_goes_to_quality_control() {
    if without_sipp() {
        return;
    }
    let server = company();
    let quinn = Phone::start(&server, "quinn");
    let rec = call(&server, "+38511000004", "400");
    assert_answered_by(&rec, "quinn", &server);
    quinn.assert_heard_the_caller();
    assert!(rec["route"].starts_with("role:quality(quinn)"), "{rec:?}");
    assert_eq!(quinn.rang(), 1);
}

#[test]
fn caller_who_leaves_the_queue_is_recorded_as_abandoned() {
    if without_sipp() {
        return;
    }
    // The only operators are on a break: a standard call waits in the queue (music) until
    // the caller leaves (with nobody logged in at all it would be refused as no_agent).
    let server = company();
    put_on_break(&server, &["olga", "oleg"]);
    let (status, _out, messages) = trunk_call(&server, "+38511000004", "100", 500);
    assert!(status.success(), "{messages}");
    wait_until(&server, "the call record", Duration::from_secs(5), || {
        !ended_calls(&server.log()).is_empty()
    });
    let rec = &ended_calls(&server.log())[0];
    assert_eq!(rec["outcome"], "abandoned", "{rec:?}");
    assert_eq!(rec["hangup"], "caller", "{rec:?}");
    assert!(
        num(rec, "caller_rtp_out") > 10,
        "the waiting caller heard music: {rec:?}"
    );
}

/// The demo company with a short ring timeout and no wrap-up on the orders queue, and a
/// no-answer limit of 2.
fn impatient_company() -> Server {
    let ports = Ports::new();
    let config = demo_config(&ports)
        .replacen("ring_timeout_s = 15", "ring_timeout_s = 2", 1)
        .replacen("wrap_up_s = 5", "wrap_up_s = 0", 1)
        .replace("no_answer_limit = 3", "no_answer_limit = 2");
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    Server::start_in(dir, &config, ports)
}

#[test]
fn unanswered_agent_is_passed_over_and_set_not_ready_after_repeated_no_answers() {
    if without_sipp() {
        return;
    }
    let server = impatient_company();
    let olga = SippAgent::start(&server, "olga", Some("agent_noanswer.xml"));
    let oleg = SippAgent::start(&server, "oleg", None);
    for round in 1..=2 {
        // Olga rings for the 2 s ring timeout first: the caller stays long enough for oleg
        // to answer afterwards, with margin for a loaded machine.
        let rec = call_for(&server, "+38511000004", "100", 6000);
        assert_answered_by(&rec, "oleg", &server);
        assert_eq!(
            olga.invites(),
            round,
            "olga (higher skill) rang first in round {round}"
        );
        assert_eq!(oleg.invites(), round);
    }
    wait_until(
        &server,
        "olga set not_ready",
        Duration::from_secs(3),
        || {
            server
                .log()
                .lines()
                .any(|l| l.contains("agent state agent=olga") && l.contains("to=NotReady"))
        },
    );
    // Not ready: the next call goes straight to oleg.
    let rec = call(&server, "+38511000004", "100");
    assert_answered_by(&rec, "oleg", &server);
    assert_eq!(olga.invites(), 2, "a not_ready agent is not offered calls");
}

#[test]
fn rejecting_agent_is_passed_over() {
    if without_sipp() {
        return;
    }
    let server = company();
    let olga = SippAgent::start(&server, "olga", Some("agent_reject.xml"));
    let oleg = SippAgent::start(&server, "oleg", None);
    let rec = call(&server, "+38511000004", "100");
    assert_answered_by(&rec, "oleg", &server);
    assert_eq!(olga.invites(), 1);
    assert_eq!(oleg.invites(), 1);
    assert!(server.log().contains("status=486"), "{}", server.log());
}

#[test]
fn agent_holds_resumes_and_hangs_up() {
    if without_sipp() {
        return;
    }
    let server = company();
    let _oleg = SippAgent::start(&server, "oleg", Some("agent_hold_hangup.xml"));
    let media_port = free_media_ports();
    let (status, out, messages) = sipp_at(
        "trunk_call_wait_bye.xml",
        server.sip_addr(),
        free_port(),
        &[
            "-key",
            "caller",
            "+38511000004",
            "-s",
            "100",
            "-mi",
            "127.0.0.1",
            "-mp",
            &media_port.to_string(),
        ],
        Duration::from_secs(30),
    );
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    wait_until(&server, "the call record", Duration::from_secs(5), || {
        !ended_calls(&server.log()).is_empty()
    });
    let rec = &ended_calls(&server.log())[0];
    assert_eq!(rec["outcome"], "answered", "{rec:?}");
    assert_eq!(rec["hangup"], "agent", "{rec:?}");
    assert_eq!(rec["agent"], "oleg", "{rec:?}");
    let log = server.log();
    let held = log.find("agent holds the caller").expect("hold seen");
    let resumed = log.find("agent resumes the caller").expect("resume seen");
    assert!(held < resumed, "hold, then resume");
    // While held the caller heard music: Switchboard kept sending to the caller.
    assert!(num(rec, "caller_rtp_out") > 100, "{rec:?}");
}

/// The demo company with the voice menu on for DIDs that name no purpose.
fn company_with_menu() -> Server {
    let ports = Ports::new();
    let config = format!(
        "{}\n[ivr]\nenabled = true\ntimeout_s = 3\noptions = {{ \"1\" = \"order\", \"2\" = \"information\", \"3\" = \"other\", \"4\" = \"complaint\" }}\n",
        demo_config(&ports)
    );
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    Server::start_in(dir, &config, ports)
}

#[test]
fn dtmf_menu_choice_sets_the_purpose() {
    if without_sipp() {
        return;
    }
    let server = company_with_menu();
    let quinn = SippAgent::start(&server, "quinn", None);
    let olga = SippAgent::start(&server, "olga", None);
    // Press 4 (complaint) on a DID without a purpose: quality control takes it.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("trunk_dtmf.xml");
    let template = std::fs::read_to_string(data("sipp/trunk_call_dtmf.xml")).unwrap();
    std::fs::write(
        &scenario,
        template.replace("DTMF_PCAP", "/usr/share/sip-tester/dtmf_2833_4.pcap"),
    )
    .unwrap();
    let media_port = free_media_ports();
    let (status, out, messages) = sipp_at(
        scenario.to_str().unwrap(),
        server.sip_addr(),
        free_port(),
        &[
            "-key",
            "caller",
            "+38511000004",
            "-s",
            "500",
            "-d",
            "3000",
            "-mi",
            "127.0.0.1",
            "-mp",
            &media_port.to_string(),
        ],
        Duration::from_secs(30),
    );
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    wait_until(&server, "the call record", Duration::from_secs(5), || {
        !ended_calls(&server.log()).is_empty()
    });
    let rec = &ended_calls(&server.log())[0];
    assert_eq!(rec["outcome"], "answered", "{rec:?}\n{}", server.log());
    assert_eq!(rec["agent"], "quinn", "{rec:?}");
    assert!(server.log().contains("menu choice"), "{}", server.log());
    assert_eq!(quinn.invites(), 1);
    assert_eq!(olga.invites(), 0);
}

#[test]
fn no_menu_choice_is_routed_as_an_order() {
    if without_sipp() {
        return;
    }
    let server = company_with_menu();
    let olga = SippAgent::start(&server, "olga", None);
    // No digit within the 3 s menu timeout: an order, for the operators.
    let rec = call_for(&server, "+38511000004", "500", 5000);
    assert_answered_by(&rec, "olga", &server);
    assert_eq!(olga.invites(), 1);
    assert!(server.log().contains("no menu choice"), "{}", server.log());
}

#[test]
fn recorded_queue_writes_a_stereo_wav_named_in_the_call_record() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let config = demo_config(&ports).replacen(
        "priority = { key = 10 }",
        "priority = { key = 10 }\nrecord = true",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    let server = Server::start_in(dir, &config, ports);
    let _olga = SippAgent::start(&server, "olga", None);
    let rec = call_for(&server, "+38511000004", "100", 2000);
    assert_answered_by(&rec, "olga", &server);
    // The call record names the file.
    let mut recording = String::new();
    wait_until(
        &server,
        "the CDR in the database",
        Duration::from_secs(10),
        || {
            let Ok((200, body)) = api_get(server.ports.http, "/api/v1/calls?limit=5") else {
                return false;
            };
            let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let list = json.get("calls").cloned().unwrap_or(json);
            let Some(first) = list.as_array().and_then(|a| a.first()).cloned() else {
                return false;
            };
            recording = first["recording"].as_str().unwrap_or_default().to_owned();
            !recording.is_empty()
        },
    );
    let path = server.dir.path().join(&recording);
    let path = if std::path::Path::new(&recording).is_absolute() {
        std::path::PathBuf::from(&recording)
    } else {
        path
    };
    // Stereo (caller left, agent right), 8 kHz, 16-bit, with audio in both channels.
    let mut wav = Vec::new();
    wait_until(
        &server,
        "the finished recording",
        Duration::from_secs(5),
        || {
            wav = std::fs::read(&path).unwrap_or_default();
            wav.len() > 44
                && u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize == wav.len() - 44
        },
    );
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "two channels");
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 8000);
    let samples: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let energy = |ch: usize| {
        samples
            .iter()
            .skip(ch)
            .step_by(2)
            .map(|s| i64::from(*s).abs())
            .sum::<i64>()
    };
    assert!(energy(0) > 0, "caller channel is silent");
    assert!(energy(1) > 0, "agent channel is silent");
    // About 2 s of talk: at least one second of stereo frames.
    assert!(samples.len() / 2 >= 8000, "{} frames", samples.len() / 2);
}

#[test]
fn short_load_run_fifty_calls_at_ten_per_second_all_answered() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    // Sixteen operators with no wrap-up: ten calls a second of one second each never wait
    // for an agent, so every call must be answered.
    let mut config = demo_config(&ports).replacen("wrap_up_s = 5", "wrap_up_s = 0", 1);
    let extra: Vec<String> = (1..=10).map(|i| format!("op{i}")).collect();
    for id in &extra {
        config.push_str(&format!(
            "\n[[agents]]\nid = \"{id}\"\npassword = \"{id}-secret\"\nroles = [\"operator\"]\nskills = {{ orders = 4 }}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    let server = Server::start_in(dir, &config, ports);
    let mut ids = vec!["olga", "oleg", "petra", "ana", "marko", "rita"];
    ids.extend(extra.iter().map(String::as_str));
    let agents = SippAgent::start_many(&server, &ids, None);
    let (status, out, messages) = trunk_calls(
        &server,
        "+38511000004",
        "100",
        1000,
        &["-m", "50", "-r", "10", "-l", "20"],
        Duration::from_secs(60),
    );
    let summary: String = out
        .lines()
        .filter(|l| l.contains("Successful call") || l.contains("Failed call"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        status.success(),
        "SIPp reported failed calls:\n{summary}\n{out}\n{}",
        &messages[..messages.len().min(4000)]
    );
    wait_until(&server, "50 call records", Duration::from_secs(10), || {
        ended_calls(&server.log()).len() == 50
    });
    let records = ended_calls(&server.log());
    let answered = records
        .iter()
        .filter(|r| r["outcome"] == "answered")
        .count();
    assert_eq!(answered, 50, "every call reached an agent: {records:?}");
    assert_eq!(agents.invites(), 50, "one INVITE per call to the agents");
    assert!(!server.log().contains("panicked"));
}

#[test]
fn invite_from_an_address_of_no_trunk_is_refused() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let config =
        demo_config(&ports).replace("allow = [\"127.0.0.1/32\"]", "allow = [\"192.0.2.0/24\"]");
    let server = Server::start(&config, ports);
    let (status, _out, messages) = trunk_call(&server, "+38511000004", "100", 500);
    assert!(!status.success());
    assert!(messages.contains("SIP/2.0 403 Forbidden"), "{messages}");
    assert!(ended_calls(&server.log()).is_empty());
    // Every call is registered (PRODUCT §2 rule 1): the refusal too, as `rejected`.
    let mut stored = Vec::new();
    wait_until(
        &server,
        "the rejected call's record",
        Duration::from_secs(10),
        || {
            stored = cdrs(&server);
            !stored.is_empty()
        },
    );
    assert_eq!(
        stored[0]["outcome"].as_str(),
        Some("rejected"),
        "{stored:?}"
    );
    assert_eq!(stored[0]["route"].as_str(), Some("rejected: 403 Forbidden"));
    assert_eq!(stored[0]["caller"].as_str(), Some("+38511000004"));
}

#[test]
fn absent_manager_is_replaced_by_their_substitute() {
    if without_sipp() {
        return;
    }
    let server = company();
    let ana = Phone::start(&server, "ana");
    let marko = Phone::start(&server, "marko");
    // Ana goes on a business trip; marko is her configured substitute.
    let (status, body) = api_post(
        server.ports.http,
        "/api/v1/agents/ana/state",
        r#"{"state": "absent", "reason": "business trip"}"#,
    )
    .unwrap();
    assert!((200..300).contains(&status), "{status} {body}");
    let rec = call(&server, "+38511000001", "100");
    assert_answered_by(&rec, "marko", &server);
    marko.assert_heard_the_caller();
    assert!(
        rec["route"].starts_with("assigned_manager(ana: absent"),
        "{rec:?}"
    );
    assert!(rec["route"].contains("marko"), "{rec:?}");
    assert_eq!(ana.rang(), 0, "an absent agent is never offered a call");
    assert_eq!(marko.rang(), 1);
}

#[test]
fn baresip_key_account_manager_takes_their_client_with_audio_both_ways() {
    if without_baresip() {
        return;
    }
    let server = company();
    let ana = Baresip::start(&server, "ana");
    let marko = Baresip::start(&server, "marko");
    let rec = call_for(&server, "+38511000001", "100", 3000);
    assert_answered_by(&rec, "ana", &server);
    assert!(rec["route"].starts_with("assigned_manager(ana"), "{rec:?}");
    // Ana's softphone heard the caller (SIPp's A-law recording, relayed and re-coded to µ-law).
    let heard = ana.heard();
    assert!(
        heard.len() > 8000,
        "ana heard {} samples\n{}",
        heard.len(),
        ana.log()
    );
    let loud = heard.iter().filter(|s| s.unsigned_abs() > 500).count();
    assert!(loud > 1000, "ana heard only silence ({loud} loud samples)");
    assert!(marko.heard().is_empty(), "marko never rang");
    assert!(ana.log().contains("Call established"), "{}", ana.log());
}

#[test]
fn baresip_operator_takes_a_standard_order() {
    if without_baresip() {
        return;
    }
    let server = company();
    let olga = Baresip::start(&server, "olga");
    let rec = call_for(&server, "+38511000004", "100", 2500);
    assert_answered_by(&rec, "olga", &server);
    assert!(rec["route"].starts_with("queue:orders(olga)"), "{rec:?}");
    assert!(olga.heard().iter().any(|s| s.unsigned_abs() > 500));
}

#[test]
fn agent_put_on_break_while_ringing_stops_ringing_and_the_call_moves_on() {
    if without_sipp() {
        return;
    }
    let server = std::sync::Arc::new(company());
    let olga = SippAgent::start(&server, "olga", Some("agent_noanswer.xml"));
    let oleg = SippAgent::start(&server, "oleg", None);
    let caller = {
        let server = std::sync::Arc::clone(&server);
        std::thread::spawn(move || call_for(&server, "+38511000004", "100", 5000))
    };
    // Olga (higher skill) rings; she steps away before answering (ring timeout is 15 s).
    wait_until(&server, "olga ringing", Duration::from_secs(5), || {
        olga.invites() == 1
    });
    let (status, body) = api_post(
        server.ports.http,
        "/api/v1/agents/olga/state",
        r#"{"state": "break", "reason": "coffee"}"#,
    )
    .unwrap();
    assert!((200..300).contains(&status), "{status} {body}");
    let rec = caller.join().unwrap();
    assert_answered_by(&rec, "oleg", &server);
    assert_eq!(oleg.invites(), 1);
    assert!(
        olga.messages().contains("CANCEL sip:"),
        "olga's phone was cancelled:\n{}",
        olga.messages()
    );
    assert!(server.log().contains("offer withdrawn"), "{}", server.log());
}

#[test]
fn agent_transfers_the_caller_to_finance_by_refer() {
    if without_sipp() {
        return;
    }
    let server = company();
    let olga = SippAgent::start_with(
        &server,
        &["olga"],
        Some("agent_refer.xml"),
        &["-key", "target", "finance"],
    );
    let fina = SippAgent::start(&server, "fina", None);
    let before = ended_calls(&server.log()).len();
    let (status, out, messages) = trunk_call(&server, "+38511000004", "100", 5000);
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    wait_until(&server, "both records", Duration::from_secs(5), || {
        ended_calls(&server.log()).len() >= before + 2
    });
    let records = ended_calls(&server.log());
    let (first, second) = (&records[before], &records[before + 1]);
    assert_eq!(first["outcome"], "transferred", "{first:?}");
    assert_eq!(first["agent"], "olga", "{first:?}");
    assert_eq!(second["outcome"], "answered", "{second:?}");
    assert_eq!(second["agent"], "fina", "{second:?}");
    assert!(second["route"].contains("role:finance(fina)"), "{second:?}");
    for key in [
        "caller_rtp_in",
        "caller_rtp_out",
        "agent_rtp_in",
        "agent_rtp_out",
    ] {
        assert!(num(second, key) > 20, "{key}: {second:?}");
    }
    assert_eq!(fina.invites(), 1);
    // The transferor saw 202, the sipfrag NOTIFYs (100 then 200) and Switchboard's BYE.
    let m = olga.messages();
    assert!(m.contains("SIP/2.0 202 Accepted"), "{m}");
    assert!(m.contains("Content-Type: message/sipfrag"), "{m}");
    assert!(
        m.contains("SIP/2.0 100 Trying") && m.contains("SIP/2.0 200 OK"),
        "{m}"
    );
    assert!(m.contains("BYE sip:"), "{m}");
}

#[test]
fn transfer_to_an_unknown_target_is_refused() {
    if without_sipp() {
        return;
    }
    let server = company();
    let olga = SippAgent::start_with(
        &server,
        &["olga"],
        Some("agent_refer.xml"),
        &["-key", "target", "nobody"],
    );
    // The agent's scenario expects 202, so it fails on the 404; the call itself goes on
    // until the caller hangs up.
    let rec = call_for(&server, "+38511000004", "100", 2500);
    assert_eq!(rec["outcome"], "answered", "{rec:?}");
    assert_eq!(rec["agent"], "olga", "{rec:?}");
    assert!(
        olga.messages()
            .contains("SIP/2.0 404 Unknown Transfer Target"),
        "{}",
        olga.messages()
    );
}
