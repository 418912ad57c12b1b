//! Campaigns through the real server: a calling list over the client directory's dormant
//! clients (`POST /api/v1/campaigns`), worked through by the progressive dialer with two SIPp
//! agents of the queue and SIPp as the PBX's outbound side. The checks: clients with a recent
//! answered call are left out, a number on the do-not-call list becomes a `dnc` contact and is
//! never dialed, nothing is dialed while paused, campaign calls in flight never outnumber the
//! free agents, the records say `outbound` with the campaign, dispositions are counted per
//! campaign, and the campaign survives a restart (stored in the database).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::harness::*;
use crate::outbound::{company_with, pbx_calls, pbx_finished, stored_call};

/// Two orders agents log in; ana, marko, olga and rita (orders skill too) stay logged out.
const AGENTS: [&str; 2] = ["petra", "oleg"];

fn campaign(port: u16, id: &str) -> Value {
    let (status, body) = api_get(port, &format!("/api/v1/campaigns/{id}")).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn post(port: u16, path: &str, body: &str) -> (u16, Value) {
    let (status, body) = api_post(port, path, body).unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn put_client(port: u16, number: &str, name: &str) {
    let body = format!(r#"{{"name": "{name}", "type": "retail"}}"#);
    let (status, body) = http_request(
        port,
        "PUT",
        &format!("/api/v1/clients/{number}"),
        Some(DEMO_TOKEN),
        Some(&body),
    )
    .unwrap();
    assert!(status == 200 || status == 201, "{status} {body}");
}

/// An answered inbound call of `number`, `days_ago` days ago, written into the records.
fn seed_answered_call(server: &Server, number: &str, days_ago: i64) {
    let at = Utc::now() - chrono::Duration::days(days_ago);
    let ts = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let (start, answer, end) = (
        ts(at),
        ts(at + chrono::Duration::seconds(5)),
        ts(at + chrono::Duration::seconds(65)),
    );
    sqlite(
        server,
        &format!(
            "INSERT INTO calls (id, sip_call_id, direction, trunk, caller, dialed, client_number, \
             queue, agent_id, route, started_at, answered_at, ended_at, wait_ms, talk_ms, outcome, \
             hangup_side) VALUES ('seed-{number}', 'seed-{number}', 'inbound', 'pbx-main', \
             '{number}', '100', '{number}', 'orders', 'petra', 'queue:orders(petra)', '{start}', \
             '{answer}', '{end}', 5000, 60000, 'answered', 'caller')"
        ),
    );
}

/// The campaign's stored call records.
fn campaign_calls(port: u16, id: &str) -> Vec<Value> {
    let (_, calls) = api_get(port, "/api/v1/calls?limit=100").unwrap();
    let calls: Value = serde_json::from_str(&calls).unwrap();
    calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["campaign"] == id)
        .cloned()
        .collect()
}

/// The campaign's calls in progress now (`GET /api/v1/calls/active`).
fn active_campaign_calls(port: u16, id: &str) -> Vec<Value> {
    let (status, body) = api_get(port, "/api/v1/calls/active").unwrap();
    assert_eq!(status, 200, "{body}");
    let calls: Value = serde_json::from_str(&body).unwrap();
    calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["campaign"] == id)
        .cloned()
        .collect()
}

/// The most calls of `calls` that were in progress at one time (from their records).
fn peak_in_flight(calls: &[Value]) -> usize {
    let time = |c: &Value, f: &str| {
        DateTime::parse_from_rfc3339(c[f].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc)
    };
    calls
        .iter()
        .map(|c| {
            let t = time(c, "started_at");
            calls
                .iter()
                .filter(|o| time(o, "started_at") <= t && t < time(o, "ended_at"))
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_dormant_client_campaign_dials_progressively_pauses_and_survives_a_restart() {
    if without_sipp() {
        return;
    }
    let pbx_port = free_port();
    let mut server = company_with(pbx_port, "");
    let port = server.ports.http;

    // The directory: 0601 talked to us two days ago (not dormant); 0602 forty days ago, 0603
    // and 0605 never (dormant); 0604 never, but on the do-not-call list.
    for (n, name) in [
        ("0601", "Recent d.o.o."),
        ("0602", "Quiet d.o.o."),
        ("0603", "Never d.o.o."),
        ("0604", "Listed d.o.o."),
        ("0605", "Silent d.o.o."),
    ] {
        put_client(port, &format!("+38591555{n}"), name);
    }
    seed_answered_call(&server, "+385915550601", 2);
    seed_answered_call(&server, "+385915550602", 40);
    let (status, body) = http_request(
        port,
        "PUT",
        "/api/v1/dnc/+385915550604",
        Some(DEMO_TOKEN),
        None,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");

    // Bad requests are refused with the field named.
    for (bad, status, field) in [
        (
            r#"{"name": "x", "queue": "orders", "target": {}}"#,
            422,
            "target",
        ),
        (
            r#"{"name": "x", "queue": "nowhere", "target": {"dormant_days": 30}}"#,
            422,
            "queue",
        ),
        (
            r#"{"name": "x", "queue": "orders", "target": {"types": ["vip"]}}"#,
            422,
            "target.types",
        ),
        (
            r#"{"name": "x", "queue": "orders", "target": {"numbers": ["call me"]}}"#,
            422,
            "target.numbers[0]",
        ),
        (
            r#"{"name": "x", "queue": "orders", "target": {"dormant_days": 30}, "window": ["9am"]}"#,
            422,
            "window",
        ),
        (
            r#"{"name": "x", "queue": "orders", "target": {"dormant_days": "many"}}"#,
            422,
            "dormant_days",
        ),
        (
            r#"{"name": "", "queue": "orders", "target": {"dormant_days": 30}}"#,
            422,
            "name",
        ),
        (r#"{"name": "x", "#, 400, ""),
    ] {
        let (got, body) = api_post(port, "/api/v1/campaigns", bad).unwrap();
        assert_eq!(got, status, "{bad}: {body}");
        assert!(body.contains(field), "{bad}: {body}");
    }
    let (status, _) = api_get(port, "/api/v1/campaigns/nope").unwrap();
    assert_eq!(status, 404);

    let (status, created) = post(
        port,
        "/api/v1/campaigns",
        r#"{"name": "Dormant retail", "queue": "orders", "target": {"dormant_days": 30},
            "window": ["00:00", "24:00"], "max_attempts": 2, "retry_after_s": 5}"#,
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "paused", "{created}");
    let contacts: Vec<(&str, &str)> = created["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["number"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        contacts,
        [
            ("+385915550602", "pending"),
            ("+385915550603", "pending"),
            ("+385915550604", "dnc"),
            ("+385915550605", "pending"),
        ],
        "{created}"
    );
    assert_eq!(created["counts"]["pending"], 3, "{created}");
    assert_eq!(created["counts"]["dnc"], 1, "{created}");

    // Paused (as created): nobody is dialed although both agents are free.
    let dir = tempfile::tempdir().unwrap();
    let mut pbx = pbx_calls("pbx_outbound.xml", pbx_port, 3000, 2, dir.path());
    let agents = SippAgent::start_many(&server, &AGENTS, None);
    for a in AGENTS {
        wait_available(&server, a);
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agents.invites(), 0, "dialed while paused\n{}", server.log());

    // Started: two free agents, two calls at once; paused while they talk.
    let (status, started) = post(port, &format!("/api/v1/campaigns/{id}/start"), "");
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["status"], "running", "{started}");
    // Watched live: never more campaign calls in progress than the two agents.
    let mut peak = 0;
    let mut sample = || {
        let active = active_campaign_calls(port, &id);
        assert!(active.len() <= AGENTS.len(), "{active:?}");
        for call in &active {
            assert_eq!(call["direction"], "outbound", "{call}");
            assert_eq!(call["kind"], "campaign", "{call}");
        }
        peak = peak.max(active.len());
    };
    wait_until(
        &server,
        "two campaign calls",
        Duration::from_secs(10),
        || {
            sample();
            agents.invites() >= 2
        },
    );
    let (status, paused) = post(port, &format!("/api/v1/campaigns/{id}/pause"), "");
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["status"], "paused", "{paused}");
    while matches!(pbx.try_wait(), Ok(None)) {
        sample();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(peak, 2, "both agents called at once");
    let pbx_log = pbx_finished(&mut pbx, dir.path(), &server);
    wait_until(
        &server,
        "two contacts done",
        Duration::from_secs(15),
        || campaign(port, &id)["counts"]["done"] == 2,
    );
    // Both agents free again (after wrap-up), the campaign paused: no third call.
    for a in AGENTS {
        wait_available(&server, a);
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agents.invites(), 2, "{}", agents.messages());
    assert!(
        agents.messages().contains("campaign Dormant retail"),
        "{}",
        agents.messages()
    );
    let c = campaign(port, &id);
    assert_eq!(
        (
            c["counts"]["done"].as_i64(),
            c["counts"]["pending"].as_i64()
        ),
        (Some(2), Some(1)),
        "{c}"
    );
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(
            &metrics,
            "switchboard_outbound_calls_total",
            &["kind=\"campaign\"", "outcome=\"answered\""]
        ),
        2.0,
        "{metrics}"
    );

    // Killed and started again: the campaign and its contacts are in the database.
    wait_until(&server, "two records", Duration::from_secs(10), || {
        campaign_calls(port, &id).len() == 2
    });
    server.kill_hard();
    drop(agents);
    server.restart();
    let c = campaign(port, &id);
    assert_eq!(c["status"], "paused", "{c}");
    assert_eq!(c["counts"]["pending"], 1, "{c}");
    let dir2 = tempfile::tempdir().unwrap();
    let mut pbx = pbx_calls("pbx_outbound.xml", pbx_port, 1000, 1, dir2.path());
    let agents = SippAgent::start_many(&server, &AGENTS, None);
    for a in AGENTS {
        wait_available(&server, a);
    }
    let (status, _) = post(port, &format!("/api/v1/campaigns/{id}/start"), "");
    assert_eq!(status, 200);
    let pbx_log = pbx_log + &pbx_finished(&mut pbx, dir2.path(), &server);
    wait_until(
        &server,
        "the campaign finished",
        Duration::from_secs(15),
        || campaign(port, &id)["status"] == "finished",
    );
    assert_eq!(agents.invites(), 1, "{}", agents.messages());
    for dialed in ["+385915550602", "+385915550603", "+385915550605"] {
        assert!(
            pbx_log.contains(&format!("INVITE sip:{dialed}@")),
            "{dialed}: {pbx_log}"
        );
    }
    for never in ["+385915550601", "+385915550604"] {
        assert!(!pbx_log.contains(never), "{never} dialed:\n{pbx_log}");
    }

    // The records: outbound, naming the campaign; never more in flight than the two agents,
    // and both used at once (progressive, not one by one).
    wait_until(&server, "three records", Duration::from_secs(10), || {
        campaign_calls(port, &id).len() == 3
    });
    let calls = campaign_calls(port, &id);
    for call in &calls {
        assert_eq!(call["direction"], "outbound", "{call}");
        assert_eq!(call["outcome"], "answered", "{call}");
        assert!(
            AGENTS.contains(&call["agent_id"].as_str().unwrap()),
            "{call}"
        );
    }
    assert_eq!(peak_in_flight(&calls), 2, "{calls:?}");

    // The agents' dispositions, counted per campaign.
    for (call, code) in calls.iter().zip(["sale", "no_interest", "sale"]) {
        let call_id = call["id"].as_str().unwrap();
        let (status, body) = post(
            port,
            &format!("/api/v1/calls/{call_id}/disposition"),
            &format!(r#"{{"code": "{code}"}}"#),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(stored_call(port, call_id)["disposition"], code);
    }
    let c = campaign(port, &id);
    assert_eq!(c["dispositions"]["sale"], 2, "{c}");
    assert_eq!(c["dispositions"]["no_interest"], 1, "{c}");
    for (status, n) in [
        ("done", 3),
        ("pending", 0),
        ("dialing", 0),
        ("failed", 0),
        ("dnc", 1),
    ] {
        assert_eq!(c["counts"][status], n, "{status}: {c}");
    }
    let (status, list) = api_get(port, "/api/v1/campaigns").unwrap();
    assert_eq!(status, 200, "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    assert_eq!(list[0]["counts"]["done"], 3, "{list}");
    // Finished is final.
    let (status, body) = post(port, &format!("/api/v1/campaigns/{id}/start"), "");
    assert_eq!(status, 409, "{body}");
}

#[test]
fn a_busy_contact_is_retried_then_failed_and_the_campaign_finishes() {
    if without_sipp() {
        return;
    }
    let pbx_port = free_port();
    let server = company_with(pbx_port, "");
    let port = server.ports.http;
    // One key client; the explicit list names the same client in another spelling and a
    // number on the do-not-call list.
    let body = r#"{"name": "Kljuc d.o.o.", "type": "key"}"#;
    let (status, body) = http_request(
        port,
        "PUT",
        "/api/v1/clients/+385915550701",
        Some(DEMO_TOKEN),
        Some(body),
    )
    .unwrap();
    assert!(status == 200 || status == 201, "{status} {body}");
    put_client(port, "+385915550702", "Retail d.o.o.");
    let (status, body) = http_request(
        port,
        "PUT",
        "/api/v1/dnc/+385915550703",
        Some(DEMO_TOKEN),
        None,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");

    let (status, created) = post(
        port,
        "/api/v1/campaigns",
        r#"{"name": "Key accounts", "queue": "orders",
            "target": {"types": ["key"], "numbers": ["+385 (91) 555-0701", "+385 91 555 0703"]},
            "max_attempts": 2, "retry_after_s": 2}"#,
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let contacts = created["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 2, "{created}");
    assert_eq!(contacts[0]["number"], "+385915550701", "{created}");
    assert_eq!(contacts[1]["status"], "dnc", "{created}");
    assert_eq!(created["max_attempts"], 2, "{created}");
    assert_eq!(created["target"]["types"][0], "key", "{created}");

    // An agent token reaches no campaign.
    let (status, body) = http_request(
        port,
        "POST",
        "/api/v1/sessions",
        None,
        Some(r#"{"agent": "petra", "password": "petra-secret"}"#),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    let token = token["token"].as_str().unwrap();
    let (status, _) = http_request(port, "GET", "/api/v1/campaigns", Some(token), None).unwrap();
    assert_eq!(status, 403);

    // Busy twice (max_attempts 2): failed, and with nothing left the campaign finishes.
    let dir = tempfile::tempdir().unwrap();
    let mut pbx = pbx_calls("pbx_busy.xml", pbx_port, 0, 2, dir.path());
    let agent = SippAgent::start(&server, "petra", None);
    wait_available(&server, "petra");
    let (status, _) = post(port, &format!("/api/v1/campaigns/{id}/start"), "");
    assert_eq!(status, 200);
    let pbx_log = pbx_finished(&mut pbx, dir.path(), &server);
    assert!(!pbx_log.contains("+385915550703"), "{pbx_log}");
    wait_until(
        &server,
        "the campaign finished",
        Duration::from_secs(15),
        || campaign(port, &id)["status"] == "finished",
    );
    let c = campaign(port, &id);
    let contact = &c["contacts"][0];
    assert_eq!(
        (
            contact["status"].as_str(),
            contact["attempts"].as_u64(),
            contact["last_result"].as_str()
        ),
        (Some("failed"), Some(2), Some("busy")),
        "{c}"
    );
    assert_eq!(c["counts"]["failed"], 1, "{c}");
    assert_eq!(c["counts"]["dnc"], 1, "{c}");
    assert_eq!(agent.invites(), 2, "{}", agent.messages());
    wait_until(&server, "both records", Duration::from_secs(10), || {
        campaign_calls(port, &id).len() == 2
    });
    let calls = campaign_calls(port, &id);
    assert!(calls.iter().all(|c| c["outcome"] == "failed"), "{calls:?}");
    // The retry waited retry_after_s after the first attempt ended.
    let time = |c: &Value, f: &str| DateTime::parse_from_rfc3339(c[f].as_str().unwrap()).unwrap();
    let (first, second) = if time(&calls[0], "started_at") < time(&calls[1], "started_at") {
        (&calls[0], &calls[1])
    } else {
        (&calls[1], &calls[0])
    };
    let gap = time(second, "started_at") - time(first, "ended_at");
    assert!(gap >= chrono::Duration::seconds(2), "retried after {gap}");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(
            &metrics,
            "switchboard_outbound_calls_total",
            &["kind=\"campaign\"", "outcome=\"busy\""]
        ),
        2.0,
        "{metrics}"
    );
}
