//! The waiting rules of PRODUCT §3 through the real server, with a SIPp trunk and SIPp agent
//! phones: a chain that reaches nobody ends as `no_agent`; a queue call past its max wait
//! goes to the queue's overflow target, and ends as `timeout` when nobody there takes it
//! either (or at once when the queue has no overflow); a busy manager is waited for only in
//! the `other` chain (rule 8), skipped at once elsewhere (rules 4 and 5); a caller who hangs
//! up while an agent's phone rings is `abandoned` and never counts as that agent's no-answer. Each test checks
//! the call-detail record and the queue events in the database (`sqlite3`).

use std::time::{Duration, Instant};

use crate::harness::*;

const CLIENTS: &str = "number,name,type,manager,region,overdue_debt
+38511000002,Debtor Ltd,retail,petra,,1250.50
+38511000004,Retail Corner,retail,oleg,,0
+38511000006,Owing Shop,retail,oleg,,10
";

/// The demo company with the test clients and `edit` applied to its configuration.
fn company(edit: impl Fn(String) -> String) -> Server {
    let ports = Ports::new();
    let config = edit(demo_config(&ports));
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    Server::start_in(dir, &config, ports)
}

/// The orders queue (the first in the demo) with `max_wait_s` and `overflow` replaced.
fn orders_queue(config: String, max_wait_s: u32, overflow: Option<&str>) -> String {
    let old = "max_wait_s = 300\noverflow = \"role:head_of_sales\"\n";
    assert!(config.contains(old), "the demo's orders queue changed");
    let new = match overflow {
        Some(o) => format!("max_wait_s = {max_wait_s}\noverflow = \"{o}\"\n"),
        None => format!("max_wait_s = {max_wait_s}\n"),
    };
    config.replacen(old, &new, 1)
}

fn agent_state(server: &Server, agent: &str) -> String {
    let (status, body) = api_get(server.ports.http, "/api/v1/agents").unwrap();
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let list = json.get("agents").cloned().unwrap_or(json);
    let state = list
        .as_array()
        .and_then(|l| l.iter().find(|a| a["id"] == agent))
        .and_then(|a| a["state"].as_str().map(str::to_owned));
    state.unwrap_or_else(|| panic!("agent {agent} not listed: {body}"))
}

/// The newest call-detail record once there are `n` (`GET /api/v1/calls`).
fn nth_cdr(server: &Server, n: usize) -> serde_json::Value {
    let mut rows = Vec::new();
    wait_until(server, "the call record", Duration::from_secs(10), || {
        let Ok((200, body)) = api_get(server.ports.http, "/api/v1/calls?limit=100") else {
            return false;
        };
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let list = json.get("calls").cloned().unwrap_or(json);
        rows = list.as_array().cloned().unwrap_or_default();
        rows.len() >= n && rows.iter().all(|r| r["outcome"] != "interrupted")
    });
    rows.swap_remove(0)
}

/// The queue events of the call with record id `id`: `EVENT queue agent data`, in write
/// order.
fn queue_events(server: &Server, id: &str) -> Vec<String> {
    let sql = format!(
        "SELECT event || ' ' || queue || ' ' || COALESCE(agent_id, '-') || ' ' || COALESCE(data, '-') \
         FROM queue_events WHERE call_id = '{id}' ORDER BY seq"
    );
    sqlite(server, &sql).lines().map(str::to_owned).collect()
}

/// A trunk call from `caller` to DID `did` (100 an order, 300 purpose other) with `scenario`
/// (more SIPp arguments in `extra`).
fn trunk(
    server: &Server,
    scenario: &str,
    caller: &str,
    did: &str,
    extra: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let target = server.sip_addr();
    trunk_scenario(
        scenario,
        target,
        caller,
        did,
        extra,
        Duration::from_secs(30),
    )
}

/// Places a standard call that only Switchboard ends (SIPp waits for its BYE), checks it did
/// so about `after_ms` later with outcome `timeout`, and returns its record (the `n`th).
fn timed_out_call(server: &Server, n: usize, after_ms: u64) -> serde_json::Value {
    let started = Instant::now();
    let scenario = "trunk_call_wait_bye.xml";
    let (status, out, messages) = trunk(server, scenario, "+38511000004", "100", &[]);
    let took = started.elapsed();
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let early = Duration::from_millis(after_ms - 100);
    assert!(
        took >= early && took < early + Duration::from_secs(8),
        "Switchboard hung up after {took:?}"
    );
    let cdr = nth_cdr(server, n);
    assert_eq!(cdr["outcome"], "timeout", "{cdr}\n{}", server.log());
    assert_eq!(cdr["hangup_side"], "system", "{cdr}");
    cdr
}

fn wait_ms(cdr: &serde_json::Value) -> u64 {
    cdr["wait_ms"].as_u64().unwrap_or(0)
}

#[test]
fn debtor_with_nobody_to_take_the_call_ends_as_no_agent() {
    if without_sipp() {
        return;
    }
    // Rule 5: the debt chain is the assigned manager (Petra), then finance (Fina); nobody is
    // logged in, so the chain reaches nobody and the call is not left waiting: it is answered,
    // hears a short message, and Switchboard hangs up.
    let server = company(|c| c);
    let started = Instant::now();
    let (status, out, messages) = trunk(
        &server,
        "trunk_call_wait_bye.xml",
        "+38511000002",
        "100",
        &[],
    );
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let held = started.elapsed();
    assert!(messages.contains("BYE sip:"), "{out}\n{messages}");
    assert!(
        held >= Duration::from_secs(4),
        "the message plays first ({held:?})"
    );
    assert!(held < Duration::from_secs(15), "not held ({held:?})");
    let cdr = nth_cdr(&server, 1);
    assert_eq!(cdr["outcome"], "no_agent", "{cdr}\n{}", server.log());
    assert_eq!(cdr["client_class"], "debt", "{cdr}");
    assert_eq!(cdr["hangup_side"], "system", "{cdr}");
    assert!(cdr["agent_id"].is_null(), "{cdr}");
    // The message reached the caller: about 250 packets in 5 s.
    let ended = ended_calls(&server.log());
    let to_caller: u64 = ended[0]["caller_rtp_out"].parse().unwrap_or(0);
    assert!(
        to_caller > 150,
        "{to_caller} RTP packets of the message\n{:?}",
        ended[0]
    );
}

#[test]
fn queue_call_past_max_wait_without_overflow_ends_as_timeout() {
    if without_sipp() {
        return;
    }
    // The operators are on a break (present, so the queue is not skipped): the call waits
    // the queue's 3 s, then Switchboard ends it.
    let server = company(|c| orders_queue(c, 3, None));
    put_on_break(&server, &["olga", "oleg"]);
    let cdr = timed_out_call(&server, 1, 3000);
    assert_eq!(cdr["queue"], "orders", "the queue it waited in: {cdr}");
    assert_eq!(cdr["route"], "queue:orders(max wait)", "{cdr}");
    assert!((2900..6000).contains(&wait_ms(&cdr)), "{cdr}");
    let events = queue_events(&server, cdr["id"].as_str().unwrap());
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].starts_with("ENTERQUEUE orders -"), "{events:?}");
    assert!(
        events[1].starts_with("EXITWITHTIMEOUT orders - timeout "),
        "{events:?}"
    );
}

#[test]
fn queue_overflow_takes_the_call_after_max_wait_and_a_busy_overflow_ends_as_timeout() {
    if without_sipp() {
        return;
    }
    // The orders queue overflows after 2 s to Fina (finance, not an operator); a step holds a
    // call at most 2 s.
    let server = company(|c| {
        orders_queue(c, 2, Some("agent:fina")).replace("step_wait_s = 120", "step_wait_s = 2")
    });
    put_on_break(&server, &["olga", "oleg"]);
    let fina = SippAgent::start(&server, "fina", None);

    // Fina is free: the call reaches her once the queue's wait is over.
    let (status, out, messages) = trunk(
        &server,
        "trunk_call.xml",
        "+38511000004",
        "100",
        &["-d", "6000"],
    );
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let cdr = nth_cdr(&server, 1);
    assert_eq!(cdr["outcome"], "answered", "{cdr}\n{}", server.log());
    assert_eq!(cdr["agent_id"], "fina", "{cdr}");
    assert!(
        wait_ms(&cdr) >= 1900,
        "answered after the queue's max wait: {cdr}"
    );
    assert_eq!(fina.invites(), 1);
    let events = queue_events(&server, cdr["id"].as_str().unwrap());
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        ["ENTERQUEUE", "EXITWITHTIMEOUT", "CONNECT", "COMPLETECALLER"],
        "{events:?}"
    );

    // Fina on a break too: the overflow step holds the call its 2 s, then it times out.
    wait_until(&server, "fina free again", Duration::from_secs(10), || {
        agent_state(&server, "fina") == "available"
    });
    put_on_break(&server, &["fina"]);
    let cdr = timed_out_call(&server, 2, 4000);
    assert!((3900..8000).contains(&wait_ms(&cdr)), "{cdr}");
    assert_eq!(
        cdr["route"], "queue:orders(max wait) > agent:fina(break)",
        "{cdr}"
    );
    assert_eq!(fina.invites(), 1, "a phone on a break is not rung");
    let events = queue_events(&server, cdr["id"].as_str().unwrap());
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events[1].starts_with("EXITWITHTIMEOUT orders - -"),
        "overflow: {events:?}"
    );
    assert!(events[2].contains(" - timeout "), "{events:?}");
}

#[test]
fn caller_who_hangs_up_while_the_agent_rings_is_abandoned_and_no_no_answer_of_theirs() {
    if without_sipp() {
        return;
    }
    // Two no-answers would make Olga not_ready; three callers leave while her phone rings.
    let server = company(|c| c.replace("no_answer_limit = 3", "no_answer_limit = 2"));
    let olga = SippAgent::start(&server, "olga", Some("agent_noanswer.xml"));
    for n in 1..=3 {
        let (status, out, messages) = trunk(
            &server,
            "trunk_call.xml",
            "+38511000004",
            "100",
            &["-d", "1500"],
        );
        assert!(status.success(), "{out}\n{messages}");
        let cdr = nth_cdr(&server, n);
        assert_eq!(cdr["outcome"], "abandoned", "{cdr}\n{}", server.log());
        assert_eq!(cdr["hangup_side"], "caller", "{cdr}");
        wait_until(&server, "olga rang", Duration::from_secs(5), || {
            olga.invites() == n
        });
        let events = queue_events(&server, cdr["id"].as_str().unwrap());
        assert!(
            events.iter().all(|e| !e.starts_with("RINGNOANSWER")),
            "{events:?}"
        );
        assert!(
            events.last().is_some_and(|e| e.starts_with("ABANDON")),
            "{events:?}"
        );
        wait_until(&server, "olga available", Duration::from_secs(5), || {
            agent_state(&server, "olga") == "available"
        });
    }
    assert!(
        !server.log().contains("to=NotReady"),
        "no agent set not_ready:\n{}",
        server.log()
    );
}

#[test]
fn a_busy_manager_is_waited_for_only_by_purpose_other_calls() {
    if without_sipp() {
        return;
    }
    // Rule 8 waits 3 s here for a manager who is present but busy.
    let server = company(|c| c.replace("other_manager_wait_s = 60", "other_manager_wait_s = 3"));
    // Oleg (the manager of both clients below) takes a standard order and keeps talking.
    let _oleg = SippAgent::start(&server, "oleg", None);
    let target = server.sip_addr();
    let busy = std::thread::spawn(move || {
        trunk_scenario(
            "trunk_call.xml",
            target,
            "+38511000004",
            "100",
            &["-d", "12000"],
            Duration::from_secs(30),
        )
    });
    wait_until(&server, "oleg on a call", Duration::from_secs(10), || {
        agent_state(&server, "oleg") == "on_call"
    });
    let fina = SippAgent::start(&server, "fina", None);
    let petra = SippAgent::start(&server, "petra", None);

    // A debtor of Oleg's (rule 5, like rule 4: "absent or busy") goes to finance at once.
    let (status, out, messages) = trunk(
        &server,
        "trunk_call.xml",
        "+38511000006",
        "100",
        &["-d", "3000"],
    );
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let cdr = nth_cdr(&server, 1);
    assert_eq!(cdr["agent_id"], "fina", "{cdr}\n{}", server.log());
    assert_eq!(cdr["client_class"], "debt", "{cdr}");
    assert!(wait_ms(&cdr) < 1500, "not held for the busy manager: {cdr}");
    assert!(
        cdr["route"]
            .as_str()
            .unwrap_or("")
            .starts_with("assigned_manager(oleg"),
        "{cdr}"
    );

    // A purpose-other call of Oleg's client (DID 300) waits for him, then goes to the head of
    // sales.
    let (status, out, messages) = trunk(
        &server,
        "trunk_call.xml",
        "+38511000004",
        "300",
        &["-d", "8000"],
    );
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let cdr = nth_cdr(&server, 2);
    assert_eq!(cdr["agent_id"], "petra", "{cdr}\n{}", server.log());
    assert_eq!(cdr["client_class"], "other", "{cdr}");
    assert!(
        (2900..7000).contains(&wait_ms(&cdr)),
        "waited for oleg: {cdr}"
    );
    assert!(
        cdr["route"]
            .as_str()
            .unwrap_or("")
            .contains("role:head_of_sales(petra)"),
        "{cdr}"
    );
    assert_eq!((fina.invites(), petra.invites()), (1, 1));
    let _ = busy.join();
}
