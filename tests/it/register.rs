//! Agent registration against the running server with real SIPp user agents.

use std::time::Duration;

use crate::harness::*;

fn skip_without_sipp() -> bool {
    if have_sipp() {
        return false;
    }
    eprintln!("SKIPPED: sipp (package sip-tester) is not installed; tests/run.sh installs it");
    true
}

#[test]
fn sipp_registers_with_digest_queries_and_unregisters() {
    if skip_without_sipp() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let (status, out, messages) = sipp(
        "register_query_unregister.xml",
        server.sip_addr(),
        &["-s", "ana", "-au", "ana", "-ap", "ana-secret"],
        Duration::from_secs(20),
    );
    assert!(
        status.success(),
        "sipp failed ({status:?}):\n{out}\n--- messages ---\n{messages}\n--- server ---\n{}",
        server.log()
    );
    // The 200 to the binding REGISTER echoed the contact with its expiry.
    assert!(messages.contains(";expires="), "{messages}");
    let log = server.log();
    assert!(log.contains("ana"), "registration is logged: {log}");
}

#[test]
fn sipp_over_tcp_registers_too() {
    if skip_without_sipp() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let (status, out, messages) = sipp(
        "register_query_unregister.xml",
        server.sip_addr(),
        &[
            "-t",
            "t1",
            "-s",
            "marko",
            "-au",
            "marko",
            "-ap",
            "marko-secret",
        ],
        Duration::from_secs(20),
    );
    assert!(
        status.success(),
        "sipp failed ({status:?}):\n{out}\n--- messages ---\n{messages}\n--- server ---\n{}",
        server.log()
    );
}

#[test]
fn sipp_with_a_wrong_password_is_refused() {
    if skip_without_sipp() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let (status, out, messages) = sipp(
        "register_wrong_password.xml",
        server.sip_addr(),
        &["-s", "ana", "-au", "ana", "-ap", "not-the-password"],
        Duration::from_secs(20),
    );
    assert!(
        status.success(),
        "sipp failed ({status:?}):\n{out}\n{messages}"
    );
    assert!(!messages.contains("SIP/2.0 200"), "{messages}");
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    if skip_without_sipp() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let shape = |user: &str| {
        let (status, out, messages) = sipp(
            "register_wrong_password.xml",
            server.sip_addr(),
            &["-s", user, "-au", user, "-ap", "guess"],
            Duration::from_secs(20),
        );
        assert!(status.success(), "{out}\n{messages}");
        // The final answer's status line and header names, without values that vary.
        let last = messages
            .split("SIP/2.0 ")
            .filter(|m| m.starts_with("40"))
            .last()
            .unwrap_or_default()
            .to_owned();
        let status_line = last.lines().next().unwrap_or_default().to_owned();
        let mut names: Vec<String> = last
            .lines()
            .skip(1)
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(n, _)| n.trim().to_ascii_lowercase())
            })
            .filter(|n| !n.is_empty() && !n.contains(' '))
            .collect();
        names.sort();
        (status_line, names)
    };
    assert_eq!(shape("ana"), shape("nobody"));
}
