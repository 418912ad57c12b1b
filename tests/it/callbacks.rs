//! Scheduled call-backs through the real server: `POST /api/v1/callbacks`, then the dialer
//! offers the call-back to a free agent of the queue (a SIPp UAS), and on the agent's answer
//! dials the number through the trunk, where SIPp plays the PBX's outbound side. The checks:
//! nothing is dialed before its time, audio flows both ways, the record is `outbound` with
//! the call-back's id; busy is retried after `retry_after_s` and ends `failed` after
//! `max_attempts`; a cancelled call-back is never dialed; one not dialed within
//! `expire_after_s` is `expired`, and a retry never waits past that.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::harness::*;
use crate::outbound::{assert_rtp_both_ways, company_with, pbx_calls, pbx_finished, stored_call};

const CALLBACKS: &str = "\n[callbacks]\nqueue = \"orders\"\nmax_attempts = 2\nretry_after_s = 2\n\
     window = [\"00:00\", \"24:00\"]\ntimezone = \"Europe/Zagreb\"\n";

/// The company with `[callbacks]`, SIPp as the PBX (`calls` calls of `scenario`) and ana
/// registered and available.
struct Rig {
    server: Server,
    port: u16,
    pbx: std::process::Child,
    agent: SippAgent,
    dir: tempfile::TempDir,
}

impl Rig {
    fn start(scenario: &str, talk_ms: u64, calls: u32) -> Rig {
        Rig::start_with(CALLBACKS, scenario, talk_ms, calls)
    }

    /// As [`Rig::start`] with another `[callbacks]` section.
    fn start_with(callbacks: &str, scenario: &str, talk_ms: u64, calls: u32) -> Rig {
        let pbx_port = free_port();
        let server = company_with(pbx_port, callbacks);
        let dir = tempfile::tempdir().unwrap();
        let pbx = pbx_calls(scenario, pbx_port, talk_ms, calls, dir.path());
        let agent = SippAgent::start(&server, "ana", None);
        wait_available(&server, "ana");
        Rig {
            port: server.ports.http,
            server,
            pbx,
            agent,
            dir,
        }
    }

    /// Waits for the PBX's scenario to pass; its message trace.
    fn pbx_done(&mut self) -> String {
        pbx_finished(&mut self.pbx, self.dir.path(), &self.server)
    }
}

pub(crate) fn callback(port: u16, id: &str) -> Value {
    let (status, body) = api_get(port, &format!("/api/v1/callbacks/{id}")).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn schedule(port: u16, number: &str, in_s: i64) -> (String, chrono::DateTime<Utc>) {
    let at = Utc::now() + chrono::Duration::seconds(in_s);
    let body = format!(
        r#"{{"number": "{number}", "at": "{}"}}"#,
        at.to_rfc3339_opts(SecondsFormat::Millis, true)
    );
    let (status, body) = api_post(port, "/api/v1/callbacks", &body).unwrap();
    assert_eq!(status, 201, "{body}");
    let cb: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cb["status"], "pending", "{cb}");
    (cb["id"].as_str().unwrap().to_owned(), at)
}

#[test]
fn a_scheduled_call_back_dials_at_its_time_and_records_its_id() {
    if without_sipp() {
        return;
    }
    let mut rig = Rig::start("pbx_outbound.xml", 3000, 1);
    let (port, agent) = (rig.port, &rig.agent);
    let (id, at) = schedule(port, "+385 91 555 0200", 5);
    // Not before its time: ana is free, yet her phone stays silent until `at`.
    while Utc::now() < at - chrono::Duration::milliseconds(700) {
        assert_eq!(agent.invites(), 0, "dialed early\n{}", rig.server.log());
        assert_eq!(callback(port, &id)["status"], "pending");
        std::thread::sleep(Duration::from_millis(200));
    }

    let pbx_log = rig.pbx_done();
    let (server, agent) = (&rig.server, &rig.agent);
    assert!(
        pbx_log.contains("INVITE sip:+385915550200@127.0.0.1:"),
        "{pbx_log}"
    );
    // Agent first, told whom to call.
    assert_eq!(agent.invites(), 1, "{}", agent.messages());
    assert!(
        agent.messages().contains("call-back to +385915550200"),
        "{}",
        agent.messages()
    );

    wait_until(
        server,
        "the call-back done",
        Duration::from_secs(10),
        || callback(port, &id)["status"] == "done",
    );
    let rec = ended_calls(&server.log()).swap_remove(0);
    assert_eq!(rec["direction"], "outbound", "{rec:?}");
    assert_eq!(rec["kind"], "callback", "{rec:?}");
    assert_eq!(rec["result"], "answered", "{rec:?}");
    assert_rtp_both_ways(&rec);
    wait_until(server, "the call's record", Duration::from_secs(10), || {
        callback(port, &id)["call_ids"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let cb = callback(port, &id);
    assert_eq!(
        (cb["attempts"].as_u64(), cb["last_result"].as_str()),
        (Some(1), Some("answered")),
        "{cb}"
    );
    let call_id = cb["call_ids"][0].as_str().unwrap().to_owned();
    let call = stored_call(port, &call_id);
    assert_eq!(call["direction"], "outbound", "{call}");
    assert_eq!(call["callback_id"], id.as_str(), "{call}");
    assert_eq!(call["outcome"], "answered", "{call}");
    assert_eq!(call["agent_id"], "ana", "{call}");
    assert_eq!(call["dialed"], "+385915550200", "{call}");
    let started = chrono::DateTime::parse_from_rfc3339(call["started_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert!(started >= at, "dialed at {started}, asked for {at}");

    dispositions(port, &call_id);

    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(&metrics, "switchboard_callbacks", &["status=\"done\""]),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "switchboard_outbound_calls_total",
            &["kind=\"callback\"", "outcome=\"answered\""]
        ),
        1.0,
        "{metrics}"
    );
}

#[test]
fn busy_is_retried_then_failed_and_a_cancelled_call_back_is_never_dialed() {
    if without_sipp() {
        return;
    }
    // Two attempts (max_attempts = 2), both busy after the PBX's digest challenge.
    let mut rig = Rig::start("pbx_busy.xml", 0, 2);
    let port = rig.port;

    // Cancelled before its time: never dialed.
    let (cancelled, _) = schedule(port, "+385 91 555 0301", 3);
    let (status, body) = http_request(
        port,
        "DELETE",
        &format!("/api/v1/callbacks/{cancelled}"),
        Some(DEMO_TOKEN),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let (busy, _) = schedule(port, "+385 91 555 0300", 0);

    rig.pbx_done();
    let (server, agent, dir) = (&rig.server, &rig.agent, rig.dir.path());
    wait_until(
        server,
        "the call-back failed",
        Duration::from_secs(10),
        || callback(port, &busy)["status"] == "failed",
    );
    let cb = callback(port, &busy);
    assert_eq!(cb["attempts"], 2, "{cb}");
    assert_eq!(cb["last_result"], "busy", "{cb}");
    wait_until(server, "both records", Duration::from_secs(10), || {
        callback(port, &busy)["call_ids"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    // The retry came no sooner than retry_after_s after the first attempt ended.
    let ids = callback(port, &busy)["call_ids"].clone();
    let time = |id: &Value, field: &str| {
        let call = stored_call(port, id.as_str().unwrap());
        assert_eq!(call["callback_id"], busy.as_str(), "{call}");
        assert_eq!(call["direction"], "outbound", "{call}");
        chrono::DateTime::parse_from_rfc3339(call[field].as_str().unwrap()).unwrap()
    };
    let gap = time(&ids[1], "started_at") - time(&ids[0], "ended_at");
    assert!(gap >= chrono::Duration::seconds(2), "retried after {gap}");
    let ended: Vec<_> = ended_calls(&server.log())
        .into_iter()
        .filter(|r| r.get("kind").is_some_and(|k| k == "callback"))
        .collect();
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert!(ended.iter().all(|r| r["result"] == "busy"), "{ended:?}");
    assert_eq!(agent.invites(), 2, "{}", agent.messages());

    // Give the dialer a few more looks: the cancelled one is never dialed, the failed one
    // never again.
    std::thread::sleep(Duration::from_secs(4));
    let pbx_log = std::fs::read_to_string(dir.join("pbx.log")).unwrap_or_default();
    assert!(!pbx_log.contains("+385915550301"), "{pbx_log}");
    assert!(!agent.messages().contains("+385915550301"));
    assert_eq!(agent.invites(), 2, "{}", agent.messages());
    let cb = callback(port, &cancelled);
    assert_eq!(
        (cb["status"].as_str(), cb["attempts"].as_u64()),
        (Some("cancelled"), Some(0)),
        "{cb}"
    );
    let (status, body) = api_get(port, "/api/v1/callbacks?status=failed").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&busy), "{body}");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    for (status, n) in [("failed", 1.0), ("cancelled", 1.0), ("pending", 0.0)] {
        assert_eq!(
            metric_sum(
                &metrics,
                "switchboard_callbacks",
                &[&format!("status=\"{status}\"")]
            ),
            n,
            "{status}: {metrics}"
        );
    }
}

#[test]
fn numbers_on_the_do_not_call_list_are_never_dialed() {
    if without_sipp() {
        return;
    }
    // The PBX answers the one number that may be dialed.
    let mut rig = Rig::start("pbx_outbound.xml", 1000, 1);
    let port = rig.port;
    let request = |method: &str, path: &str, body: Option<&str>| {
        http_request(port, method, path, Some(DEMO_TOKEN), body).unwrap()
    };

    // Scheduled first, listed afterwards: the dialer must check at dial time.
    let (listed_later, _) = schedule(port, "+385 91 555 0400", 2);
    let (status, body) = request(
        "PUT",
        "/api/v1/dnc/+385%2091%20555%200400",
        Some(r#"{"reason": "asked on the phone"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = request("PUT", "/api/v1/dnc/+385915550401", None);
    assert_eq!(status, 201, "{body}");
    let (status, body) = request("PUT", "/api/v1/dnc/+385915550401", Some("{}"));
    assert_eq!(status, 200, "listed already: {body}");
    let (status, body) = request("PUT", "/api/v1/dnc/call-me", None);
    assert_eq!(status, 400, "{body}");
    let (status, body) = request("PUT", "/api/v1/dnc/+385915550402", Some(r#"{"why": 1}"#));
    assert_eq!(status, 422, "{body}");
    let (status, body) = request("GET", "/api/v1/dnc", None);
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list[0]["number"], "+385915550400", "{list}");
    assert_eq!(list[0]["reason"], "asked on the phone", "{list}");

    // New call-backs and click-to-call orders to a listed number are refused.
    let (status, body) =
        api_post(port, "/api/v1/callbacks", r#"{"number": "+385915550401"}"#).unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("do-not-call"), "{body}");
    let (status, body) = api_post(
        port,
        "/api/v1/calls",
        r#"{"agent": "ana", "number": "+385 91 555 0401"}"#,
    )
    .unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("do-not-call"), "{body}");

    // A number not on the list is dialed meanwhile: the dialer works, and skips the listed one.
    let (allowed, _) = schedule(port, "+385 91 555 0403", 2);
    let pbx_log = rig.pbx_done();
    let (server, agent) = (&rig.server, &rig.agent);
    wait_until(
        server,
        "the allowed call-back done",
        Duration::from_secs(10),
        || callback(port, &allowed)["status"] == "done",
    );
    let cb = callback(port, &listed_later);
    assert_eq!(cb["status"], "cancelled", "{cb}");
    assert_eq!(cb["last_result"], "dnc", "{cb}");
    assert_eq!(cb["attempts"], 0, "{cb}");
    assert_eq!(agent.invites(), 1, "{}", agent.messages());
    for listed in ["+385915550400", "+385915550401"] {
        assert!(!pbx_log.contains(listed), "{listed} dialed:\n{pbx_log}");
        assert!(
            !agent.messages().contains(listed),
            "{listed} offered to the agent"
        );
    }

    // Off the list, the number may be scheduled again.
    let (status, body) = request("DELETE", "/api/v1/dnc/+385915550401", None);
    assert_eq!(status, 204, "{body}");
    let (status, body) = request("DELETE", "/api/v1/dnc/+385915550401", None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = api_post(
        port,
        "/api/v1/callbacks",
        r#"{"number": "+385915550401", "at": "2099-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_call_back_survives_a_crash_and_is_dialed_after_the_restart() {
    if without_sipp() {
        return;
    }
    let pbx_port = free_port();
    let mut server = company_with(pbx_port, CALLBACKS);
    let port = server.ports.http;
    let (id, at) = schedule(port, "+385 91 555 0500", 4);
    // Killed before its time (no shutdown, no flush): only the database knows it.
    server.kill_hard();
    server.restart();
    let dir = tempfile::tempdir().unwrap();
    let mut pbx = pbx_calls("pbx_outbound.xml", pbx_port, 1000, 1, dir.path());
    let agent = SippAgent::start(&server, "ana", None);
    wait_available(&server, "ana");
    assert_eq!(callback(port, &id)["status"], "pending");

    let pbx_log = pbx_finished(&mut pbx, dir.path(), &server);
    assert!(pbx_log.contains("+385915550500"), "{pbx_log}");
    assert_eq!(agent.invites(), 1, "{}", agent.messages());
    wait_until(
        &server,
        "the call-back done",
        Duration::from_secs(10),
        || callback(port, &id)["status"] == "done",
    );
    assert!(Utc::now() >= at);
}

/// A session token of `agent` (password `<agent>-secret` as in the demo configuration).
fn session(port: u16, agent: &str) -> String {
    let body = format!(r#"{{"agent": "{agent}", "password": "{agent}-secret"}}"#);
    let (status, body) = http_request(port, "POST", "/api/v1/sessions", None, Some(&body)).unwrap();
    assert_eq!(status, 201, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// The agent dispositions the call-back's call `call_id` (ana's, to +385915550200).
fn dispositions(port: u16, call_id: &str) {
    let path = format!("/api/v1/calls/{call_id}/disposition");
    let post = |token: &str, body: &str| {
        http_request(port, "POST", &path, Some(token), Some(body)).unwrap()
    };
    let ana = session(port, "ana");
    // `callback` schedules a new call-back to the client, in the call's queue.
    let (status, body) = post(
        &ana,
        r#"{"code": "callback", "note": "wants the new price list", "callback_at": "2099-01-05T09:00:00+01:00"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let d: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["code"], "callback", "{d}");
    let next = callback(port, d["callback_id"].as_str().unwrap());
    assert_eq!(next["status"], "pending", "{next}");
    assert_eq!(next["number"], "+385915550200", "{next}");
    assert_eq!(next["queue"], "orders", "{next}");
    assert_eq!(next["at"], "2099-01-05T08:00:00.000Z", "{next}");
    // Refused: another agent's call, a bad code, `callback` without its time, a time with
    // another code, an unknown call.
    let marko = session(port, "marko");
    let (status, body) = post(&marko, r#"{"code": "sale"}"#);
    assert_eq!(status, 403, "{body}");
    for bad in [
        r#"{"code": "maybe"}"#,
        r#"{"code": "callback"}"#,
        r#"{"code": "sale", "callback_at": "2099-01-05T09:00:00Z"}"#,
        r#"{"code": "callback", "callback_at": "tomorrow"}"#,
        r#"{"code": "sale", "rating": 5}"#,
    ] {
        let (status, body) = post(&ana, bad);
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, body) = http_request(
        port,
        "POST",
        "/api/v1/calls/nope/disposition",
        Some(DEMO_TOKEN),
        Some(r#"{"code": "sale"}"#),
    )
    .unwrap();
    assert_eq!(status, 404, "{body}");
    // `dnc` replaces the disposition and lists the number.
    let (status, body) = post(
        DEMO_TOKEN,
        r#"{"code": "dnc", "note": "asked not to be called"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let call = stored_call(port, call_id);
    assert_eq!(call["disposition"], "dnc", "{call}");
    assert_eq!(call["disposition_note"], "asked not to be called", "{call}");
    let (_, list) = api_get(port, "/api/v1/dnc").unwrap();
    assert!(list.contains("+385915550200"), "{list}");
}

#[test]
fn a_call_back_not_dialed_within_its_validity_expires_and_a_retry_never_waits_past_it() {
    if without_sipp() {
        return;
    }
    // Valid 4 s; a retry would come 30 s after a busy attempt, past the validity.
    let callbacks = "\n[callbacks]\nqueue = \"orders\"\nmax_attempts = 3\nretry_after_s = 30\n\
         expire_after_s = 4\nwindow = [\"00:00\", \"24:00\"]\ntimezone = \"Europe/Zagreb\"\n";
    let mut rig = Rig::start_with(callbacks, "pbx_busy.xml", 0, 1);
    let port = rig.port;

    // Nobody free for the whole validity: expired, and never dialed once ana is back.
    put_on_break(&rig.server, &["ana"]);
    let (unserved, _) = schedule(port, "+385 91 555 0600", 0);
    wait_until(
        &rig.server,
        "the unserved call-back expired",
        Duration::from_secs(10),
        || callback(port, &unserved)["status"] == "expired",
    );
    let cb = callback(port, &unserved);
    assert_eq!(cb["attempts"], 0, "{cb}");
    assert!(
        rig.server
            .log()
            .contains("call-back expired: not dialed within its validity"),
        "{}",
        rig.server.log()
    );
    let (status, body) = api_post(
        port,
        "/api/v1/agents/ana/state",
        r#"{"state": "available"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    wait_available(&rig.server, "ana");

    // Dialed at once, busy: the retry would be due in 30 s, yet the call-back expires when
    // its 4 s are over, with the attempt counted.
    let (busy, asked) = schedule(port, "+385 91 555 0601", 0);
    let pbx_log = rig.pbx_done();
    assert!(pbx_log.contains("+385915550601"), "{pbx_log}");
    wait_until(
        &rig.server,
        "the busy call-back expired",
        Duration::from_secs(10),
        || callback(port, &busy)["status"] == "expired",
    );
    let expired_at = Utc::now();
    assert!(
        expired_at < asked + chrono::Duration::seconds(10),
        "expired at {expired_at}, asked for {asked}: the 30 s retry was waited for"
    );
    let cb = callback(port, &busy);
    assert_eq!(
        (cb["attempts"].as_u64(), cb["last_result"].as_str()),
        (Some(1), Some("busy")),
        "{cb}"
    );

    // A few more looks: neither is dialed again, nor offered to ana.
    std::thread::sleep(Duration::from_secs(3));
    let (server, agent) = (&rig.server, &rig.agent);
    assert_eq!(agent.invites(), 1, "{}", agent.messages());
    assert!(!agent.messages().contains("+385915550600"));
    let pbx_log = std::fs::read_to_string(rig.dir.path().join("pbx.log")).unwrap_or_default();
    assert!(!pbx_log.contains("+385915550600"), "{pbx_log}");
    let (status, body) = api_get(port, "/api/v1/callbacks?status=expired").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&unserved) && body.contains(&busy), "{body}");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    for (status, n) in [("expired", 2.0), ("pending", 0.0), ("dialing", 0.0)] {
        assert_eq!(
            metric_sum(
                &metrics,
                "switchboard_callbacks",
                &[&format!("status=\"{status}\"")]
            ),
            n,
            "{status}: {metrics}\n{}",
            server.log()
        );
    }
    // An expired call-back cannot be cancelled any more.
    let (status, body) = http_request(
        port,
        "DELETE",
        &format!("/api/v1/callbacks/{busy}"),
        Some(DEMO_TOKEN),
        None,
    )
    .unwrap();
    assert_eq!(status, 409, "{body}");
}
