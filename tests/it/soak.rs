//! Chaos soak: 10,000 randomized trunk calls (`SOAK_CALLS`, at `SOAK_RATE` calls/s) into a
//! queue of 60 SIPp agents on a throwaway PostgreSQL, while
//! - agents vanish: the SIPp process answering for a third of them is killed, and they
//!   register again on a new one later (twice, two different thirds);
//! - BYEs are lost: a tenth of the callers disappear without one, and the server must end
//!   those calls by its own timers (RTP inactivity, `[media] rtp_timeout_s`);
//! - registrations expire: a third of the agents register for 15 s and are logged out
//!   mid-soak, then register again;
//! - the database drops for a while: PostgreSQL is stopped and restarted; records spool
//!   and drain.
//!
//! Then: no call in progress, no agent stuck ringing or talking, every call placed (by
//! SIPp's Call-IDs) in `calls` exactly once, and `queue_events` consistent (every
//! ENTERQUEUE closed once, every CONNECT a call answered, nothing orphaned). The totals are
//! printed for benches/README.md.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_sip::digest::{Challenge, answer_challenge};
use switchboard_testkit::PgCluster;

use crate::harness::*;
use crate::register::{UdpUa, register_binding};

const AGENTS: usize = 60;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn agent_id(i: usize) -> String {
    format!("soak{i:02}")
}

fn soak_config(ports: &Ports, url: &str) -> String {
    let mut config = demo_config(ports)
        .replace(
            "url = \"sqlite://switchboard.db\"",
            &format!("url = \"{url}\""),
        )
        .replace(
            "advertised_address = \"127.0.0.1\"",
            "advertised_address = \"127.0.0.1\"\nmin_expires_s = 10",
        )
        .replace("[routing]\n", "[routing]\nnew = [\"queue:soak\"]\n");
    // RTP ports of its own, wide enough for the soak (ports another process holds are
    // skipped), and silence ends a call after 4 s.
    config = config
        .lines()
        .map(|l| {
            if l.starts_with("rtp_ports") {
                "rtp_ports = [40000, 43999]\nrtp_timeout_s = 4".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    config.push_str(
        "\n[security]\ninvite_rate_per_source = 0\n\n[[queues]]\nname = \"soak\"\n\
         skill = \"soak\"\nring_timeout_s = 2\nwrap_up_s = 0\nmax_wait_s = 10\n",
    );
    for i in 0..AGENTS {
        let id = agent_id(i);
        config.push_str(&format!(
            "\n[[agents]]\nid = \"{id}\"\npassword = \"{id}-secret\"\nname = \"Soak {i}\"\n\
             roles = [\"operator\"]\nskills = {{ soak = 5 }}\n"
        ));
    }
    config
}

/// Registers agent `id` at `ua`'s address for `expires` seconds (the server sends to the
/// address a registration came from, so the SIPp UAS takes that port afterwards).
fn register(server: &Server, ua: &UdpUa, id: &str, expires: u32) {
    // Under the soak's load an answer may take a while: retransmit as a phone would.
    let challenge =
        ua.exchange_retransmitting(server, &register_binding(id, ua.port, expires, 1, None), 5);
    let offered = challenge
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .map(|v| Challenge::parse(v).unwrap())
        .unwrap_or_else(|| panic!("no challenge for {id}: {challenge}"));
    let password = format!("{id}-secret");
    let auth = answer_challenge(
        &offered,
        id,
        &password,
        "REGISTER",
        "sip:callcenter.local",
        "50a6",
        1,
    )
    .to_header_value();
    let ok = ua.exchange_retransmitting(
        server,
        &register_binding(id, ua.port, expires, 2, Some(&auth)),
        5,
    );
    assert!(ok.starts_with("SIP/2.0 200"), "registering {id}: {ok}");
}

/// A third of the agents answering on a new SIPp UAS: registered from its port first, then
/// set available (an agent that missed calls while gone may be `not_ready`).
fn agents_on_new_uas(
    server: &Server,
    group: std::ops::Range<usize>,
    expires: u32,
    lifetime: Duration,
) -> SippAgent {
    let ua = UdpUa::new();
    for i in group.clone() {
        register(server, &ua, &agent_id(i), expires);
    }
    let port = ua.port;
    drop(ua);
    let uas = SippAgent::answer_on(port, None, &[], lifetime);
    for i in group {
        let id = agent_id(i);
        let (status, body) = api_post(
            server.ports.http,
            &format!("/api/v1/agents/{id}/state"),
            r#"{"state": "available"}"#,
        )
        .unwrap();
        // 409: the agent already took a call on the new phone.
        assert!(status == 200 || status == 409, "{id}: {status} {body}");
    }
    uas
}

fn metric(server: &Server, name: &str) -> f64 {
    let text = http_get(server.ports.http, "/metrics").unwrap().1;
    metric_sum(&text, name, &[])
}

fn json(server: &Server, path: &str) -> Value {
    let (status, body) = api_get(server.ports.http, path).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn chaos_soak_leaves_nothing_stuck_and_loses_no_record() {
    if without_sipp() {
        return;
    }
    let pg = match PgCluster::start() {
        Ok(pg) => pg,
        Err(e) => panic!("PostgreSQL is needed for this test (tests/run.sh installs it): {e}"),
    };
    let calls = env_or("SOAK_CALLS", 10_000);
    let rate = env_or("SOAK_RATE", 40);
    let span = Duration::from_secs(calls / rate);
    let lifetime = span + Duration::from_secs(180);
    let url = pg.fresh_database("soak").unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let ports = Ports::new();
    let config = soak_config(&ports, &url);
    let server = Server::start_with_env(
        tempfile::tempdir().unwrap(),
        &config,
        ports,
        vec![("RUST_LOG".into(), "info".into())],
    );
    let third = AGENTS / 3;
    let mut vanishing = Some(agents_on_new_uas(&server, 0..third, 300, lifetime));
    let mut expiring = Some(agents_on_new_uas(&server, third..2 * third, 15, lifetime));
    let mut steady = Some(agents_on_new_uas(&server, 2 * third..AGENTS, 300, lifetime));

    let logs = tempfile::tempdir().unwrap();
    let call_log = logs.path().join("calls.log");
    let started = Instant::now();
    let at = |fraction: f64| started + span.mul_f64(fraction);
    let wait_for = |when: Instant| {
        if let Some(d) = when.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    };
    let mut pending_peak = 0.0f64;
    let progress = |what: &str| {
        println!(
            "soak {:>5.1} s: {what}; calls active {}, records pending {}",
            started.elapsed().as_secs_f64(),
            metric(&server, "switchboard_calls_active"),
            metric(&server, "switchboard_cdr_pending")
        );
    };
    let (status, out, _) = std::thread::scope(|s| {
        let callers = s.spawn(|| {
            let (calls, rate) = (calls.to_string(), rate.to_string());
            let log = call_log.to_string_lossy().into_owned();
            let media_port = free_media_ports().to_string();
            sipp(
                "soak_caller.xml",
                server.sip_addr(),
                &[
                    "-s",
                    "100",
                    "-m",
                    &calls,
                    "-r",
                    &rate,
                    "-l",
                    "600",
                    "-mi",
                    "127.0.0.1",
                    "-mp",
                    &media_port,
                    "-trace_logs",
                    "-log_file",
                    &log,
                ],
                lifetime,
            )
        });
        // Agents vanish: their phones stop answering with calls in flight.
        wait_for(at(0.15));
        progress("agents vanish");
        drop(vanishing.take());
        // The database drops.
        wait_for(at(0.30));
        progress("database stops");
        pg.stop().unwrap();
        // The vanished agents come back on a new phone.
        wait_for(at(0.35));
        progress("vanished agents return");
        vanishing = Some(agents_on_new_uas(&server, 0..third, 300, lifetime));
        wait_for(at(0.45));
        pending_peak = metric(&server, "switchboard_cdr_pending");
        // The database returns.
        wait_for(at(0.50));
        progress("database returns");
        pg.start_server().unwrap();
        // The expired registrations (15 s) come back on a new phone; another third vanishes
        // and returns.
        wait_for(at(0.60));
        progress("expired agents return");
        expiring = Some(agents_on_new_uas(&server, third..2 * third, 300, lifetime));
        wait_for(at(0.70));
        progress("another third vanishes");
        drop(steady.take());
        wait_for(at(0.80));
        progress("and returns");
        steady = Some(agents_on_new_uas(&server, 2 * third..AGENTS, 300, lifetime));
        callers.join().unwrap()
    });
    let placed_in = started.elapsed();

    // Every call placed was logged by SIPp before its INVITE left.
    let placed: Vec<String> = std::fs::read_to_string(&call_log)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        placed.len() as u64,
        calls,
        "SIPp placed {} calls ({status}):\n{out}",
        placed.len()
    );

    // Nothing in progress, nobody stuck.
    wait_until(
        &server,
        "no call in progress",
        Duration::from_secs(90),
        || {
            json(&server, "/api/v1/calls/active")
                .as_array()
                .is_some_and(Vec::is_empty)
                && metric(&server, "switchboard_calls_active") == 0.0
                && metric(&server, "switchboard_engine_calls") == 0.0
        },
    );
    let agents = json(&server, "/api/v1/agents");
    let stuck: Vec<String> = agents
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| matches!(a["state"].as_str(), Some("ringing" | "on_call")))
        .map(|a| a.to_string())
        .collect();
    assert!(stuck.is_empty(), "agents stuck: {stuck:?}");

    // Every record reached PostgreSQL, each once.
    wait_until(
        &server,
        "every record written",
        Duration::from_secs(120),
        || {
            pg.psql(&db, "SELECT count(*) FROM calls")
                .is_ok_and(|n| n.trim().parse::<u64>().is_ok_and(|n| n >= calls))
                && metric(&server, "switchboard_cdr_pending") == 0.0
        },
    );
    let rows = pg.psql(&db, "SELECT sip_call_id FROM calls").unwrap();
    let mut recorded: HashMap<&str, u32> = HashMap::new();
    for id in rows.lines().map(str::trim).filter(|l| !l.is_empty()) {
        *recorded.entry(id).or_default() += 1;
    }
    let missing: Vec<&String> = placed
        .iter()
        .filter(|id| !recorded.contains_key(id.as_str()))
        .collect();
    let twice: Vec<(&&str, &u32)> = recorded.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        missing.is_empty() && twice.is_empty(),
        "{} placed calls without a record (e.g. {:?}), {} recorded more than once (e.g. {:?})",
        missing.len(),
        missing.first(),
        twice.len(),
        twice.first()
    );
    assert_eq!(
        recorded.len() as u64,
        calls,
        "no record of a call not placed"
    );

    // Queue events: every ENTERQUEUE closed exactly once, every CONNECT an answered call,
    // no event without its call, no event twice.
    let check = |what: &str, sql: &str| {
        let n = pg.psql(&db, sql).unwrap();
        assert_eq!(n.trim(), "0", "{what}");
    };
    check(
        "every ENTERQUEUE has exactly one ending event",
        "SELECT count(*) FROM (SELECT call_id FROM queue_events GROUP BY call_id \
         HAVING count(*) FILTER (WHERE event = 'ENTERQUEUE') <> count(*) FILTER \
         (WHERE event IN ('COMPLETECALLER','COMPLETEAGENT','ABANDON','EXITWITHTIMEOUT','TRANSFER'))) x",
    );
    check(
        "no queue event without its call",
        "SELECT count(*) FROM queue_events q WHERE NOT EXISTS \
         (SELECT 1 FROM calls c WHERE c.id = q.call_id)",
    );
    check(
        "no queue event twice",
        "SELECT count(*) - count(DISTINCT id) FROM queue_events",
    );
    check(
        "a CONNECT for every answered call and none for the others",
        "SELECT count(*) FROM calls c WHERE (c.outcome = 'answered') <> EXISTS \
         (SELECT 1 FROM queue_events q WHERE q.call_id = c.id AND q.event = 'CONNECT')",
    );

    // "value count, value count…" of one column, most frequent first.
    let tally = |column: &str, table: &str| {
        let sql = format!(
            "SELECT string_agg({column} || ' ' || n, ', ' ORDER BY n DESC) FROM \
             (SELECT {column}, count(*) n FROM {table} GROUP BY {column}) x"
        );
        pg.psql(&db, &sql).unwrap().trim().to_owned()
    };
    let outcomes = tally("outcome", "calls");
    let answered: u64 = pg
        .psql(&db, "SELECT count(*) FROM calls WHERE outcome = 'answered'")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let log = server.log();
    assert!(
        answered >= calls / 4,
        "only {answered} of {calls} calls answered ({}); log:\n{}",
        outcomes,
        log.get(log.len().saturating_sub(20_000)..).unwrap_or(&log)
    );
    let by_system = pg
        .psql(
            &db,
            "SELECT count(*) FROM calls WHERE hangup_side = 'system'",
        )
        .unwrap();
    let events = tally("event", "queue_events");
    // The agents' phones stay up until everything above was checked.
    drop((vanishing, expiring, steady));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "soak: {calls} calls placed at {rate}/s in {:.0} s; records: {}; ended by the \
         server: {}; queue events: {}; records pending at the database's outage: \
         {pending_peak}; load average {}",
        placed_in.as_secs_f64(),
        outcomes,
        by_system.trim(),
        events,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
