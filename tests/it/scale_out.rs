//! Scale-out behind Kamailio (docs/scale-out.md): a real PostgreSQL shared by two nodes, the
//! shipped `deploy/kamailio/kamailio.cfg` dispatching to them, a baresip agent registering
//! through Kamailio and SIPp trunk calls through it. The home node is killed; the agent's
//! next re-registration and the next call must land on the other node.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_testkit::PgCluster;

use crate::harness::*;

/// The agent's registration interval (seconds): re-registration on the stand-in node must
/// happen within it.
const REGINT: u32 = 10;

fn peers_missing() -> Option<&'static str> {
    let kamailio = Command::new("kamailio")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    let missing = if !kamailio {
        Some("kamailio")
    } else if !have_baresip() {
        Some("baresip (package baresip-core)")
    } else if !have_sipp() {
        Some("sipp (package sip-tester)")
    } else {
        None
    };
    if let Some(peer) = missing
        && std::env::var("CI").as_deref() == Ok("true")
    {
        panic!("{peer} is needed for the scale-out test (tests/run.sh installs it)");
    }
    missing
}

/// Kamailio running the shipped configuration on a free loopback port.
struct Kamailio {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Kamailio {
    /// One cell: `home` first, `stand_in` second.
    fn start(home: u16, stand_in: u16) -> Kamailio {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let list = dir.path().join("dispatcher.list");
        std::fs::write(
            &list,
            format!("1 sip:127.0.0.1:{home} 0 10\n1 sip:127.0.0.1:{stand_in} 0 5\n"),
        )
        .expect("dispatcher list");
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).expect("run dir");
        let log = std::fs::File::create(dir.path().join("kamailio.log")).expect("log");
        let cfg: PathBuf = repo_root().join("deploy/kamailio/kamailio.cfg");
        let child = Command::new("timeout")
            .arg("180")
            .arg("kamailio")
            .arg("-f")
            .arg(&cfg)
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
            .arg(&run)
            .arg("-P")
            .arg(run.join("kamailio.pid"))
            .arg("-w")
            .arg(dir.path())
            .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
            .args(["-A", &format!("DISPATCHER_LIST=\"{}\"", list.display())])
            // Fast detection for the test; the shipped defaults are 5 s, 2 probes, 2 s.
            .args(["-A", "PING_INTERVAL=1", "-A", "PING_THRESHOLD=1"])
            .args(["-A", "FR_TIMER=1000"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn kamailio");
        let kamailio = Kamailio { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !kamailio.answers_options() {
            assert!(
                Instant::now() < deadline,
                "kamailio did not answer OPTIONS; log:\n{}",
                kamailio.log()
            );
        }
        kamailio
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    fn answers_options(&self) -> bool {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let local = socket.local_addr().expect("addr");
        let options = format!(
            "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-ping{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:probe@127.0.0.1>;tag=p1\r\n\
             To: <sip:127.0.0.1:{port}>\r\n\
             Call-ID: ping-{n}@127.0.0.1\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            port = self.port,
            n = local.port(),
        );
        if socket.send_to(options.as_bytes(), self.addr()).is_err() {
            return false;
        }
        let mut buf = [0u8; 2048];
        socket
            .recv(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"SIP/2.0 200"))
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        stop_wrapped(&mut self.child);
    }
}

fn node_config(url: &str) -> (String, Ports) {
    let ports = Ports::new();
    let config = demo_config(&ports)
        .replace("sqlite://switchboard.db", url)
        // Phones may re-register every REGINT seconds.
        .replace(
            "advertised_address = \"127.0.0.1\"",
            "advertised_address = \"127.0.0.1\"\nmin_expires_s = 5",
        );
    (config, ports)
}

fn answered_in_db(pg: &PgCluster, db: &str) -> usize {
    pg.psql(
        db,
        "SELECT count(*) FROM calls WHERE outcome = 'answered' AND agent_id = 'ivan'",
    )
    .map(|out| out.trim().parse().unwrap_or(0))
    .unwrap_or(0)
}

fn registered(server: &Server, id: &str) -> bool {
    server
        .log()
        .lines()
        .any(|l| l.contains("agent registered") && l.contains(&format!("agent={id} ")))
}

/// A trunk call from `caller` to DID 100 through Kamailio, answered by Ivan on `node`, after
/// which PostgreSQL holds `answered` of Ivan's answered calls.
fn call_answered_by_ivan(
    kamailio: &Kamailio,
    node: &Server,
    caller: &str,
    (pg, db, answered): (&PgCluster, &str, usize),
) {
    let (status, out, messages) = trunk_calls_to(
        kamailio.addr(),
        caller,
        "100",
        1500,
        &[],
        Duration::from_secs(30),
    );
    assert!(
        status.success(),
        "{out}\n{messages}\nnode:\n{}\nkamailio:\n{}",
        node.log(),
        kamailio.log()
    );
    let ended = ended_calls(&node.log());
    assert_eq!(ended.len(), 1, "{}", node.log());
    assert_eq!(ended[0]["outcome"], "answered");
    assert_eq!(ended[0]["agent"], "ivan");
    wait_until(
        node,
        &format!("{answered} answered call(s) in PostgreSQL"),
        Duration::from_secs(10),
        || answered_in_db(pg, db) == answered,
    );
}

#[test]
fn two_nodes_behind_kamailio_fail_over_within_the_registration_interval() {
    if let Some(peer) = peers_missing() {
        eprintln!("SKIPPED: {peer} is not installed; tests/run.sh installs it");
        return;
    }
    let started = Instant::now();
    let pg = match PgCluster::start() {
        Ok(pg) => pg,
        Err(e) => panic!("PostgreSQL is needed for this test (tests/run.sh installs it): {e}"),
    };
    let url = pg.fresh_database("scaleout").unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();

    let (config_a, ports_a) = node_config(&url);
    let (config_b, ports_b) = node_config(&url);
    let (sip_a, sip_b) = (ports_a.sip, ports_b.sip);
    let mut node_a = Server::start(&config_a, ports_a);
    let node_b = Server::start(&config_b, ports_b);
    let kamailio = Kamailio::start(sip_a, sip_b);

    // The agent registers through Kamailio and lands on the cell's home node.
    let _ivan = Baresip::start_via(&node_a, kamailio.port, "ivan", REGINT);
    assert!(!registered(&node_b, "ivan"), "{}", node_b.log());

    // A trunk call through Kamailio: a new client, for the department head Ivan, on node A.
    call_answered_by_ivan(&kamailio, &node_a, "+38599100001", (&pg, &db, 1));

    // Node A dies (SIGKILL: no goodbye to anyone).
    node_a.kill_hard();
    let killed = Instant::now();
    wait_until(
        &node_b,
        "ivan re-registered on node B through Kamailio",
        Duration::from_secs(u64::from(REGINT) + 5),
        || registered(&node_b, "ivan"),
    );
    let reregistered = killed.elapsed();

    // The next call goes to node B, which now has the agent; both nodes' records are in the
    // shared database.
    call_answered_by_ivan(&kamailio, &node_b, "+38599100002", (&pg, &db, 2));
    let after_kill = killed.elapsed();
    // Kamailio saw node A stop answering OPTIONS and sent the REGISTER to node B.
    let log = kamailio.log();
    assert!(
        log.contains(&format!(
            "Switchboard node sip:127.0.0.1:{sip_a} stopped answering"
        )),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("REGISTER") && l.ends_with(&format!("node sip:127.0.0.1:{sip_b}"))),
        "{log}"
    );
    eprintln!(
        "scale-out: node A killed; ivan re-registered on node B after {:.1} s \
         (registration interval {REGINT} s); second call answered on node B {:.1} s after \
         the kill; whole test {:.1} s",
        reregistered.as_secs_f64(),
        after_kill.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
