//! The shipped deployment files, checked by the tools that consume them: `systemd-analyze
//! verify` for the unit, `kamailio -c` for the dispatcher configuration, `promtool` for the
//! compose file's Prometheus configuration, `docker compose config` (or docker-compose) for
//! the compose file, and `check-config` for the container's Switchboard configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::*;

fn deploy(path: &str) -> PathBuf {
    repo_root().join("deploy").join(path)
}

/// Runs a tool; `None` (with a SKIPPED line) when it is not installed and either not in CI
/// or not `required` there (systemd-analyze exists only where systemd does).
fn tool(program: &str, args: &[&str], cwd: &Path, required: bool) -> Option<Output> {
    match Command::new(program).args(args).current_dir(cwd).output() {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                !required || std::env::var("CI").as_deref() != Ok("true"),
                "{program} is needed (tests/run.sh installs it): {e}"
            );
            eprintln!("SKIPPED: {program} is not installed ({e}); tests/run.sh installs it");
            None
        }
    }
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} refused:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    // The unit names the installed binary; verify a copy that names the one under test.
    let unit = std::fs::read_to_string(deploy("systemd/switchboard.service")).unwrap();
    assert!(unit.contains("Type=notify"), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("switchboard.service");
    std::fs::write(
        &copy,
        unit.replace(
            "ExecStart=/usr/local/bin/switchboard",
            &format!("ExecStart={}", switchboard_bin().display()),
        ),
    )
    .unwrap();
    if let Some(out) = tool(
        "systemd-analyze",
        &["verify", copy.to_str().unwrap()],
        dir.path(),
        false,
    ) {
        assert_ok("systemd-analyze verify", &out);
        // Warnings about the host's other units are not ours.
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(!warnings.contains("switchboard.service"), "{warnings}");
    }
}

#[test]
fn kamailio_accepts_the_dispatcher_configuration() {
    let cfg = deploy("kamailio/kamailio.cfg");
    let list = deploy("kamailio/dispatcher.list");
    let list_define = format!("DISPATCHER_LIST=\"{}\"", list.display());
    if let Some(out) = tool(
        "kamailio",
        &["-c", "-f", cfg.to_str().unwrap(), "-A", &list_define],
        &deploy("kamailio"),
        true,
    ) {
        assert_ok("kamailio -c", &out);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("config file ok"), "{text}");
    }
}

#[test]
fn compose_files_are_accepted() {
    // The container's Switchboard configuration, with the state directory the image sets.
    let out = Command::new(switchboard_bin())
        .args(["check-config"])
        .arg(deploy("compose/switchboard.toml"))
        .env("STATE_DIRECTORY", "/var/lib/switchboard")
        .output()
        .unwrap();
    assert_ok("check-config", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("spool /var/lib/switchboard/spool"),
        "{stdout}"
    );

    // Prometheus as compose mounts it: its configuration beside the shipped alert rules.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(deploy("compose/prometheus.yml"), dir.path().join("p.yml")).unwrap();
    std::fs::copy(
        deploy("prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    if let Some(out) = tool("promtool", &["check", "config", "p.yml"], dir.path(), true) {
        assert_ok("promtool check config", &out);
    }

    // The compose file itself: `docker compose config` (v2), else docker-compose (v1).
    let compose = deploy("compose.yaml");
    let compose = compose.to_str().unwrap();
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let (program, args): (&str, Vec<&str>) = if v2 {
        ("docker", vec!["compose", "-f", compose, "config", "-q"])
    } else {
        ("docker-compose", vec!["-f", compose, "config", "-q"])
    };
    let run = |token: Option<&str>| {
        let mut cmd = Command::new(program);
        cmd.args(&args).current_dir(deploy(""));
        match token {
            Some(t) => cmd.env("SWITCHBOARD_API_TOKEN", t),
            None => cmd.env_remove("SWITCHBOARD_API_TOKEN"),
        };
        cmd.output()
    };
    match run(Some("0123456789abcdef")) {
        Ok(out) => {
            assert_ok(&format!("{program} config"), &out);
            // Without the API token the file refuses to start, saying what to set.
            let out = run(None).unwrap();
            assert!(!out.status.success());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("set SWITCHBOARD_API_TOKEN"), "{err}");
        }
        // tests/run.sh installs Debian's docker-compose (the file is checked, not run: the
        // Docker engine is not among the suite's peers).
        Err(e) => crate::harness::peer_missing(&format!("{program} ({e})")),
    }
}
