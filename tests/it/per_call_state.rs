//! Per-call state is released: after a burst of calls that end in different ways, every
//! table of the server that held a call is empty again, as its `/metrics` gauges show
//! (`switchboard_calls_active`, `switchboard_call_state_entries{table}`,
//! `switchboard_engine_calls`, `switchboard_rtp_port_pairs_in_use`,
//! `switchboard_sip_transactions{kind}`). A table that keeps an entry per finished call is
//! a memory leak that grows with every call the server ever took.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::*;

/// The test company's caller: a retail client with purpose `order` (the `orders` queue).
const CLIENTS: &str = "number,name,type,manager,region,overdue_debt
+38511000004,Retail Corner,retail,oleg,,0
";

/// `name{labels} value` lines of the exposition whose name starts with `prefix`.
fn gauges(text: &str, prefix: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

#[test]
fn every_per_call_table_is_empty_once_the_calls_are_over() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    // T1 = 20 ms and T4 = 100 ms: finished transactions leave within 1.3 s instead of 32 s.
    // Ring timeout 2 s, no wrap-up.
    let config = demo_config(&ports)
        .replacen(
            "advertised_address = \"127.0.0.1\"",
            "advertised_address = \"127.0.0.1\"\nt1_ms = 20\nt4_ms = 100",
            1,
        )
        .replacen("ring_timeout_s = 15", "ring_timeout_s = 2", 1)
        .replacen("wrap_up_s = 5", "wrap_up_s = 0", 1);
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    let server = Server::start_in(dir, &config, ports);
    // Olga (the highest `orders` skill, so rung first) rings and then never answers, not
    // even the CANCEL: her legs are given up and must still be forgotten. The others answer.
    let olga = SippAgent::start(&server, "olga", Some("agent_ring_silent.xml"));
    let _others = SippAgent::start_many(&server, &["oleg", "petra", "ana", "marko"], None);

    // 40 calls at 20/s, each caller staying 300 ms after the queue answers: calls answered
    // and bridged, callers who leave while olga rings (abandoned), several calls at once.
    let (status, out, _) = trunk_calls(
        &server,
        "+38511000004",
        "100",
        300,
        &["-m", "40", "-r", "20", "-l", "40"],
        Duration::from_secs(60),
    );
    assert!(status.success(), "SIPp reported failed calls:\n{out}");
    wait_until(&server, "40 call records", Duration::from_secs(10), || {
        ended_calls(&server.log()).len() == 40
    });
    let records = ended_calls(&server.log());
    assert!(
        records.iter().any(|r| r["outcome"] == "answered"),
        "{records:?}"
    );
    let olga_legs = olga.invites();
    assert!(olga_legs > 0, "olga was never rung:\n{}", server.log());

    // Everything a call held must go: olga's INVITEs, never answered even by a 487, end
    // 64·T1 (1.3 s) after their CANCEL (RFC 3261 §9.1), and legs given up on are forgotten
    // by then or at the latest 128·T1 (2.6 s) later.
    let mut last = BTreeMap::new();
    let emptied = |last: &mut BTreeMap<String, f64>| {
        let Ok((200, text)) = http_get(server.ports.http, "/metrics") else {
            return false;
        };
        *last = [
            "switchboard_calls_active",
            "switchboard_call_state_entries",
            "switchboard_engine_calls",
            "switchboard_rtp_port_pairs_in_use",
            "switchboard_sip_transactions",
        ]
        .iter()
        .flat_map(|p| gauges(&text, p))
        .collect();
        last.len() == 14 && last.values().all(|n| *n == 0.0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !emptied(&mut last) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        emptied(&mut last),
        "per-call state left after every call ended (olga rang {olga_legs} times): {last:#?}\n{}",
        server.log()
    );
}
