//! The in-queue call-back through the real server: SIPp trunk callers, a SIPp agent phone and
//! SIPp as the PBX's outbound side. Caller A waits past `[callbacks] offer_after_s`, presses 1
//! (RFC 4733) and is hung up on after the confirmation; caller B arrives later and waits. When
//! the only agent becomes free, the call-back to A is dialed (agent first) **before** B is
//! offered: A kept their place. The records say so (A `callback_requested` with the
//! call-back's id, an `outbound` record for the call-back, B answered after it), as do the
//! queue event EXITWITHKEY, the call-back's `call_ids` and the queue report's `callbacks`.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::harness::*;
use crate::outbound::{outbound_config, pbx_calls, pbx_finished, stored_call, stored_calls};

const CLIENTS: &str = "number,name,type,manager,region,overdue_debt
+38511000011,Early Shop,retail,,,0
+38511000012,Late Shop,retail,,,0
";

const CALLBACKS: &str = "\n[callbacks]\nqueue = \"orders\"\nmax_attempts = 2\nretry_after_s = 2\n\
     window = [\"00:00\", \"24:00\"]\ntimezone = \"Europe/Zagreb\"\noffer_after_s = 2\n\
     in_queue_digit = \"1\"\n";

fn callback(port: u16, id: &str) -> Value {
    let (status, body) = api_get(port, &format!("/api/v1/callbacks/{id}")).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn set_state(port: u16, agent: &str, state: &str) {
    let (status, body) = api_post(
        port,
        &format!("/api/v1/agents/{agent}/state"),
        &format!(r#"{{"state":"{state}"}}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
}

/// The stored record of the inbound call from `caller`, once written.
fn inbound_record(server: &Server, caller: &str) -> Value {
    let mut found = Value::Null;
    wait_until(
        server,
        "the caller's record",
        Duration::from_secs(15),
        || {
            let hit = stored_calls(server.ports.http)
                .into_iter()
                .find(|c| c["direction"] == "inbound" && c["client_number"] == caller);
            hit.map(|c| found = c).is_some()
        },
    );
    found
}

fn time(v: &Value) -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .with_timezone(&Utc)
}

#[test]
fn a_caller_who_presses_1_is_called_back_before_a_caller_who_came_later() {
    if without_sipp() {
        return;
    }
    let from = Utc::now() - chrono::Duration::seconds(5);
    let pbx_port = free_port();
    let ports = Ports::new();
    // One agent (olga) on `orders`, a one-second wrap-up.
    let orders = "ring_timeout_s = 15\nwrap_up_s = 5\nmax_wait_s = 300\n";
    let config = outbound_config(&ports, pbx_port);
    assert!(config.contains(orders), "the demo's orders queue changed");
    let config = config.replacen(
        orders,
        "ring_timeout_s = 15\nwrap_up_s = 1\nmax_wait_s = 300\n",
        1,
    ) + CALLBACKS;
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    let server = Server::start_in(dir, &config, ports);
    let port = server.ports.http;
    let olga = SippAgent::start(&server, "olga", None);
    wait_available(&server, "olga");
    // Olga is on a break: both callers wait in `orders`.
    set_state(port, "olga", "break");

    // Caller A waits 3.5 s (the offer comes after 2 s), presses 1 and is hung up on.
    let scenario_dir = tempfile::tempdir().unwrap();
    let scenario = scenario_dir.path().join("trunk_callback.xml");
    let template = std::fs::read_to_string(data("sipp/trunk_call_callback.xml")).unwrap();
    std::fs::write(
        &scenario,
        template.replace("DTMF_PCAP", "/usr/share/sip-tester/dtmf_2833_1.pcap"),
    )
    .unwrap();
    let target = server.sip_addr();
    let a = {
        let scenario = scenario.to_str().unwrap().to_owned();
        std::thread::spawn(move || {
            trunk_scenario(
                &scenario,
                target,
                "+38511000011",
                "100",
                &["-d", "3500"],
                Duration::from_secs(30),
            )
        })
    };
    // Caller B arrives a second later and stays on the line (hangs up after 25 s).
    std::thread::sleep(Duration::from_secs(1));
    let b = std::thread::spawn(move || {
        trunk_scenario(
            "trunk_call.xml",
            target,
            "+38511000012",
            "100",
            &["-d", "25000"],
            Duration::from_secs(45),
        )
    });

    let (status, out, messages) = a.join().unwrap();
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let rec_a = inbound_record(&server, "+38511000011");
    assert_eq!(rec_a["outcome"], "callback_requested", "{rec_a}");
    assert_eq!(rec_a["hangup_side"], "system", "{rec_a}");
    assert_eq!(rec_a["queue"], "orders", "{rec_a}");
    let cb_id = rec_a["callback_id"]
        .as_str()
        .expect("callback_id")
        .to_owned();
    let cb = callback(port, &cb_id);
    assert_eq!(cb["status"], "pending", "{cb}");
    assert_eq!(cb["number"], "+38511000011", "{cb}");
    assert!(
        server
            .log()
            .contains("call-back offered to the waiting caller"),
        "{}",
        server.log()
    );
    assert_eq!(olga.invites(), 0, "{}", olga.messages());

    // Olga comes back: A's place is ahead of B, who is still on the line.
    let dir = tempfile::tempdir().unwrap();
    let mut pbx = pbx_calls("pbx_outbound.xml", pbx_port, 2000, 1, dir.path());
    set_state(port, "olga", "available");
    let pbx_log = pbx_finished(&mut pbx, dir.path(), &server);
    assert!(
        pbx_log.contains("INVITE sip:+38511000011@127.0.0.1:"),
        "{pbx_log}"
    );
    let (status, out, messages) = b.join().unwrap();
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());

    // Olga's phone rang for the call-back first, for B second.
    let agent_log = olga.messages();
    let invites: Vec<&str> = agent_log
        .split("\n\n")
        .filter(|m| m.trim_start().starts_with("INVITE sip:"))
        .collect();
    assert_eq!(invites.len(), 2, "{agent_log}");
    assert!(
        invites[0].contains("call-back to +38511000011, client Early Shop"),
        "{}",
        invites[0]
    );
    assert!(invites[1].contains("+38511000012"), "{}", invites[1]);

    wait_until(
        &server,
        "the call-back done",
        Duration::from_secs(10),
        || callback(port, &cb_id)["status"] == "done",
    );
    wait_until(
        &server,
        "both records of the call-back",
        Duration::from_secs(10),
        || {
            callback(port, &cb_id)["call_ids"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        },
    );
    let cb = callback(port, &cb_id);
    assert_eq!(cb["attempts"], 1, "{cb}");
    assert_eq!(cb["call_ids"][0], rec_a["id"], "{cb}");
    let out_rec = stored_call(port, cb["call_ids"][1].as_str().unwrap());
    assert_eq!(out_rec["direction"], "outbound", "{out_rec}");
    assert_eq!(out_rec["callback_id"], cb_id.as_str(), "{out_rec}");
    assert_eq!(out_rec["agent_id"], "olga", "{out_rec}");
    assert_eq!(out_rec["dialed"], "+38511000011", "{out_rec}");
    assert_eq!(out_rec["outcome"], "answered", "{out_rec}");

    let rec_b = inbound_record(&server, "+38511000012");
    assert_eq!(rec_b["outcome"], "answered", "{rec_b}");
    assert_eq!(rec_b["agent_id"], "olga", "{rec_b}");
    assert!(
        time(&rec_b["answered_at"]) >= time(&out_rec["ended_at"]),
        "B answered before the call-back ended: {rec_b}\n{out_rec}"
    );

    // The queue event, the queue report and the metric.
    let events = sqlite(
        &server,
        &format!(
            "SELECT event || ' ' || COALESCE(data, '-') FROM queue_events WHERE call_id = '{}' \
             ORDER BY seq",
            rec_a["id"].as_str().unwrap()
        ),
    );
    assert_eq!(events.trim(), "ENTERQUEUE -\nEXITWITHKEY 1|1", "{events}");
    let to = Utc::now() + chrono::Duration::seconds(600);
    let period = format!(
        "from={}&to={}",
        from.to_rfc3339_opts(SecondsFormat::Secs, true),
        to.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let (status, body) = api_get(
        port,
        &format!("/api/v1/reports/queues?{period}&interval=day"),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    let callbacks: i64 = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["queue"] == "orders")
        .map(|r| r["callbacks"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(callbacks, 1, "{body}");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(
            &metrics,
            "switchboard_calls_total",
            &["queue=\"orders\"", "outcome=\"callback_requested\""]
        ),
        1.0,
        "{metrics}"
    );
}
