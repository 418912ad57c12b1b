//! `[security]` through the real server: a password guesser (SIPp on one loopback address) is
//! banned while the real agent (SIPp on another) still registers; a replayed digest answer is
//! refused; the failures are logged for fail2ban and counted in the metrics.

use std::time::Duration;

use crate::harness::*;
use crate::register::{UdpUa, register_request};

fn metrics(server: &Server) -> String {
    let (status, text) = http_get(server.ports.http, "/metrics").expect("scrape");
    assert_eq!(status, 200);
    text
}

#[test]
fn a_guesser_is_banned_by_address_and_the_real_agent_is_not_locked_out() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let config = format!(
        "{}\n[security]\nauth_failures_per_minute = 5\nauth_ban_s = 120\n",
        demo_config(&ports)
    );
    let server = Server::start(&config, ports);
    // 12 guesses of ana's password from 127.0.0.3, one after the other.
    let (_, out, messages) = sipp(
        "register_wrong_password.xml",
        server.sip_addr(),
        &[
            "-i",
            "127.0.0.3",
            "-s",
            "ana",
            "-au",
            "ana",
            "-ap",
            "guess",
            "-m",
            "12",
            "-l",
            "1",
        ],
        Duration::from_secs(30),
    );
    assert!(!messages.contains("SIP/2.0 200"), "{messages}");
    assert!(
        messages.contains("SIP/2.0 403"),
        "the sixth failure bans the source:\n{out}\n{messages}"
    );
    let text = metrics(&server);
    assert_eq!(
        metric_sum(
            &text,
            "switchboard_auth_failures_total",
            &["kind=\"register\""]
        ),
        6.0,
        "five failures allowed, the sixth bans; banned requests are not failures:\n{text}"
    );
    assert!(
        metric_sum(
            &text,
            "switchboard_sip_refused_total",
            &["reason=\"banned\""]
        ) >= 5.0
    );
    let log = server.log();
    assert!(
        log.contains("authentication failed") && log.contains("127.0.0.3") && log.contains("ana"),
        "each failure is logged with source and user:\n{log}"
    );
    assert!(log.contains("source banned"), "{log}");

    // The real ana, from 127.0.0.1, registers while 127.0.0.3 is banned.
    let (status, out, messages) = sipp(
        "register_query_unregister.xml",
        server.sip_addr(),
        &["-s", "ana", "-au", "ana", "-ap", "ana-secret"],
        Duration::from_secs(20),
    );
    assert!(
        status.success(),
        "sipp failed ({status:?}):\n{out}\n{messages}"
    );
}

#[test]
fn a_replayed_digest_answer_and_one_for_another_uri_are_refused() {
    use switchboard_sip::digest::{Challenge, answer_challenge};
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let ua = UdpUa::new();
    let port = ua.port;
    let exchange = |request: String| ua.exchange(&server, &request);
    let challenge = exchange(register_request("ana", port, 1, None));
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let offered = challenge
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .map(|v| Challenge::parse(v).unwrap())
        .unwrap();
    let answer = |uri: &str| {
        answer_challenge(&offered, "ana", "ana-secret", "REGISTER", uri, "c0ffee", 1)
            .to_header_value()
    };
    // Right password, but computed for another URI: refused.
    let other = exchange(register_request(
        "ana",
        port,
        2,
        Some(&answer("sip:elsewhere.example")),
    ));
    assert!(other.starts_with("SIP/2.0 401"), "{other}");
    let good = answer("sip:callcenter.local");
    let ok = exchange(register_request("ana", port, 3, Some(&good)));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    // The same answer again (as captured on the wire), in a new transaction: refused.
    let replay = exchange(register_request("ana", port, 4, Some(&good)));
    assert!(replay.starts_with("SIP/2.0 401"), "{replay}");
    let text = metrics(&server);
    assert_eq!(
        metric_sum(
            &text,
            "switchboard_auth_failures_total",
            &["kind=\"register\""]
        ),
        2.0,
        "{text}"
    );
}

#[test]
fn an_invite_flood_from_one_source_meets_503_and_the_other_trunk_is_served() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let config = format!(
        "{}\n[security]\ninvite_rate_per_source = 5\n",
        demo_config(&ports).replace(
            "allow = [\"127.0.0.1/32\"]",
            "allow = [\"127.0.0.1/32\", \"127.0.0.5/32\"]"
        )
    );
    let server = Server::start(&config, ports);
    // The department heads (a new client's chain) are on a break: every admitted call waits,
    // with music.
    put_on_break(&server, &["ivan", "petra"]);
    std::thread::scope(|s| {
        // The flood: 50 INVITE/s from 127.0.0.5 for 8 s, ten times the legitimate rate. (The
        // test server's RTP range holds 10 calls: the limit's burst must leave room.)
        let flood = s.spawn(|| {
            trunk_calls(
                &server,
                "+38599000001",
                "100",
                300,
                &["-i", "127.0.0.5", "-m", "400", "-r", "50", "-l", "100"],
                Duration::from_secs(40),
            )
        });
        // The legitimate trunk: 5 calls/s from 127.0.0.1 meanwhile.
        let (status, out, _) = trunk_calls(
            &server,
            "+38599000002",
            "100",
            300,
            &["-m", "40", "-r", "5", "-l", "10"],
            Duration::from_secs(40),
        );
        assert!(
            status.success(),
            "every legitimate call is answered during the flood:\n{out}\n{}",
            server.log()
        );
        let (_, flood_out, flood_messages) = flood.join().unwrap();
        let refused = flood_messages.matches("SIP/2.0 503").count();
        assert!(refused > 0, "{flood_out}");
        let retry_after = flood_messages
            .lines()
            .filter(|l| l.starts_with("Retry-After:"))
            .count();
        assert!(retry_after >= refused, "every 503 carries Retry-After");
    });
    let (_, text) = http_get(server.ports.http, "/metrics").unwrap();
    let limited = metric_sum(
        &text,
        "switchboard_sip_refused_total",
        &["reason=\"rate_limit\""],
    );
    // About 355 of 400 flood INVITEs are over 5/s (a burst of 5, then 5/s for 8 s).
    assert!(
        limited >= 300.0,
        "{limited} refused by the rate limit\n{text}"
    );
}
