//! baresip as an agent's softphone (UDP or TLS), and `Phone`: baresip when installed, else
//! a SIPp agent.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Server, SippAgent, baresip_rtp_range, free_port, in_ci, repo_root, stop_wrapped};

/// Is baresip installed? Tests that need it call [`without_baresip`].
pub fn have_baresip() -> bool {
    Path::new("/usr/bin/baresip").exists() && Path::new("/usr/lib/baresip/modules/g711.so").exists()
}

/// An agent softphone played by baresip (headless): registers with digest, answers calls
/// automatically, sends a prompt WAV as its voice and records what it hears (sndfile).
pub struct Baresip {
    child: Child,
    dir: tempfile::TempDir,
}

/// How a baresip agent reaches its registrar: UDP to 127.0.0.1:`registrar`, or TLS to
/// 127.0.0.1:`port` trusting the PEM authority `ca`.
pub enum BaresipTransport<'a> {
    Udp { registrar: u16 },
    Tls { port: u16, ca: &'a Path },
}

impl Baresip {
    pub fn start(server: &Server, id: &str) -> Baresip {
        Baresip::start_via(server, server.ports.sip, id, 600)
    }

    /// Registers `id` every `regint` seconds at 127.0.0.1:`registrar` (the server, or a
    /// proxy in front of it) and waits until `server` logs the registration.
    pub fn start_via(server: &Server, registrar: u16, id: &str, regint: u32) -> Baresip {
        Baresip::start_over(server, id, &BaresipTransport::Udp { registrar }, regint)
    }

    /// Registers `id` over `transport` every `regint` seconds and waits until `server` logs
    /// the registration.
    pub fn start_over(
        server: &Server,
        id: &str,
        transport: &BaresipTransport<'_>,
        regint: u32,
    ) -> Baresip {
        let dir = tempfile::tempdir().expect("tempdir");
        let sip_port = free_port();
        let ctrl_port = free_port();
        let rtp_first = baresip_rtp_range();
        std::fs::create_dir_all(dir.path().join("snd")).expect("snd dir");
        let config = format!(
            "sip_listen 127.0.0.1:{sip_port}\n\
             net_interface 127.0.0.1\n\
             audio_player aubridge,sink\n\
             audio_source aufile,{voice}\n\
             audio_alert aubridge,sink\n\
             rtp_ports {rtp_first}-{rtp_last}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module aufile.so\n\
             module aubridge.so\n\
             module sndfile.so\n\
             module ctrl_tcp.so\n\
             module_tmp uuid.so\n\
             module_tmp account.so\n\
             module_app menu.so\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
             snd_path {snd}\n",
            voice = repo_root().join("sounds/welcome.wav").display(),
            rtp_last = rtp_first + 19,
            snd = dir.path().join("snd").display(),
        );
        let (config, aor) = match transport {
            BaresipTransport::Udp { registrar } => {
                (config, format!("sip:{id}@127.0.0.1:{registrar}"))
            }
            BaresipTransport::Tls { port, ca } => (
                format!("{config}sip_cafile {}\n", ca.display()),
                format!("sip:{id}@127.0.0.1:{port};transport=tls"),
            ),
        };
        std::fs::write(dir.path().join("config"), config).expect("baresip config");
        std::fs::write(
            dir.path().join("accounts"),
            format!("<{aor}>;auth_pass={id}-secret;answermode=auto;regint={regint}\n"),
        )
        .expect("baresip accounts");
        let log = std::fs::File::create(dir.path().join("baresip.log")).expect("log");
        let child = Command::new("timeout")
            .args(["60", "baresip", "-f"])
            .arg(dir.path())
            .args(["-t", "55"])
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn baresip");
        let mut agent = Baresip { child, dir };
        agent.await_registration(server, id);
        agent
    }

    /// Waits until `server` logs `id`'s registration; a baresip that exits or never gets
    /// there fails the test with its own output beside the server's.
    fn await_registration(&mut self, server: &Server, id: &str) {
        let registered = |log: &str| {
            log.lines()
                .any(|l| l.contains("agent registered") && l.contains(&format!("agent={id} ")))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if registered(&server.log()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "baresip {id} exited ({status}) before it registered; its output:\n{}\nserver log:\n{}",
                    self.log(),
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for baresip {id} registered; its output:\n{}\nserver log:\n{}",
            self.log(),
            server.log()
        );
    }

    /// baresip's own output.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// The audio this softphone heard (sndfile's `*-dec.wav`), as samples.
    pub fn heard(&self) -> Vec<i16> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("snd")) else {
            return Vec::new();
        };
        let mut samples = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with("-dec.wav") {
                let bytes = std::fs::read(entry.path()).unwrap_or_default();
                samples.extend(
                    bytes
                        .get(44..)
                        .unwrap_or_default()
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]])),
                );
            }
        }
        samples
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        stop_wrapped(&mut self.child);
    }
}

impl Baresip {
    /// Calls this softphone auto-answered.
    pub fn answered(&self) -> usize {
        self.log().matches("call: answering call").count()
    }
}

/// An agent's softphone for the routing tests: baresip when installed (a real softphone),
/// else a SIPp UAS.
pub enum Phone {
    Baresip(Baresip),
    Sipp(SippAgent),
}

impl Phone {
    pub fn start(server: &Server, id: &str) -> Phone {
        if have_baresip() {
            Phone::Baresip(Baresip::start(server, id))
        } else {
            if in_ci() {
                panic!("baresip is not installed and CI=true: tests/run.sh installs it");
            }
            eprintln!("baresip is not installed: agent {id} is played by SIPp");
            Phone::Sipp(SippAgent::start(server, id, None))
        }
    }

    /// Calls that reached this phone.
    pub fn rang(&self) -> usize {
        match self {
            Phone::Baresip(b) => b.answered(),
            Phone::Sipp(s) => s.invites(),
        }
    }

    /// The phone's user heard the caller: baresip's recording of what it played holds
    /// audio (SIPp echoes, which the relay's per-leg counts already show).
    pub fn assert_heard_the_caller(&self) {
        if let Phone::Baresip(b) = self {
            b.assert_heard_the_caller();
        }
    }
}

impl Baresip {
    /// The softphone's recording of what it played holds audio.
    pub fn assert_heard_the_caller(&self) {
        let heard = self.heard();
        // G.711 silence decodes to within a few steps of zero; speech swings far wider.
        let loud = heard.iter().filter(|s| s.unsigned_abs() > 500).count();
        assert!(
            loud > 200,
            "the agent heard only silence ({loud} loud samples of {})\n{}",
            heard.len(),
            self.log()
        );
    }
}
