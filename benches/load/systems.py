"""The systems under test of the load benchmark: Switchboard (generated config), Kamailio
(stateful relay) and a throwaway PostgreSQL for CDRs."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from procs import HERE, SIPP_DIR, Proc, free_port, http_get, log, metric_by_label, metric_sum, sipp_uas, tree

# UDP server transactions live 64*T1 after their final response; the wait between steps is
# capped here (load.py sets it from the mode).
COOLDOWN_CAP_S = 60.0

# ---- systems under test -------------------------------------------------------------------


def switchboard_config(sip_port, http_port, agents, db_url, t1_ms=None):
    lines = [
        "[sip]",
        f'listen = ["udp:127.0.0.1:{sip_port}"]',
        *([f"t1_ms = {t1_ms}"] if t1_ms else []),
        'domain = "callcenter.local"',
        'advertised_address = "127.0.0.1"',
        "max_expires_s = 7200",
        "",
        "[media]",
        "rtp_ports = [%s]" % os.environ.get("LOAD_RTP_PORTS", "10000, 31999"),
        "",
        "[http]",
        f'listen = "127.0.0.1:{http_port}"',
        'api_token = "load-bench"',
        "",
        "[database]",
        f'url = "{db_url}"',
        'spool_dir = "spool"',
        "",
        "# The run's work directory (beside this file) holds the SQLite file, spool and recordings.",
        "[state]",
        'dir = "."',
        "",
        "# Every trunk call of the run comes from one SIPp address: the per-source INVITE limit of",
        "# [security] (50/s by default, an attack guard) would refuse most of them.",
        "[security]",
        "invite_rate_per_source = 0",
        "",
        "[[trunks]]",
        'name = "load"',
        'allow = ["127.0.0.1/32"]',
        'dids = { "100" = "order" }',
        "",
        "[[queues]]",
        'name = "orders"',
        'skill = "orders"',
        'strategy = "longest_idle"',
        "ring_timeout_s = 15",
        "wrap_up_s = 0",
        "max_wait_s = 300",
        "max_length = 100000",
        "record = false",
        "",
        "[routing]",
        'new = ["queue:orders"]',
        'regional = ["queue:orders"]',
        "",
    ]
    for i in range(1, agents + 1):
        lines += [
            "[[agents]]",
            f'id = "a{i:05}"',
            f'password = "pw{i:05}"',
            'roles = ["operator"]',
            "skills = { orders = 5 }",
            "",
        ]
    return "\n".join(lines)


class Switchboard:
    def __init__(self, binary, work, agents, db_url="sqlite://switchboard.db", tag="sb", t1_ms=None):
        self.name = "switchboard" if not t1_ms else f"switchboard t1={t1_ms}ms"
        # UDP server transactions live 64*T1 after their final response (Timer J, Timer L) and
        # count against Switchboard's transaction cap; let them expire between steps.
        self.cooldown_s = min(64 * (t1_ms or 500) / 1000 + 1, COOLDOWN_CAP_S)
        self.work = os.path.join(work, tag)
        os.makedirs(self.work, exist_ok=True)
        self.sip_port = free_port()
        self.http_port = free_port()
        self.agent_port = free_port()
        self.agents = agents
        cfg = os.path.join(self.work, "bench.toml")
        with open(cfg, "w") as f:
            f.write(switchboard_config(self.sip_port, self.http_port, agents, db_url, t1_ms))
        env = dict(os.environ, RUST_LOG=os.environ.get("LOAD_RUST_LOG", "warn"))
        self.proc = Proc([binary, "--config", cfg], 7200, self.work, "switchboard", env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if http_get(f"http://127.0.0.1:{self.http_port}/readyz", 1)[0] == 200:
                    break
            except OSError:
                pass
            if not self.proc.alive():
                raise RuntimeError(f"switchboard exited:\n{self.proc.tail()}")
            time.sleep(0.2)
        else:
            raise RuntimeError(f"switchboard not ready:\n{self.proc.tail()}")
        self.target_port = self.sip_port
        self.uas = None
        # The RTP probe's binary and ports for the held-call steps (None: no RTP).
        self.rtp = None

    def pids(self):
        return [self.proc.pid]

    def metrics(self):
        return http_get(f"http://127.0.0.1:{self.http_port}/metrics")[1]

    def register(self, agent_port=None):
        """Registers every agent from agent_port (one SIPp run, per-agent credentials)."""
        agent_port = agent_port or self.agent_port
        inf = os.path.join(self.work, "agents.csv")
        with open(inf, "w") as f:
            f.write("SEQUENTIAL\n")
            for i in range(1, self.agents + 1):
                f.write(f"a{i:05};[authentication username=a{i:05} password=pw{i:05}]\n")
        # Concurrent REGISTERs answered in the same instant get the same nonce from Switchboard,
        # and the second answer using it (nc=00000001 again) is refused as a replay, so a run at
        # speed leaves some agents unregistered: one REGISTER at a time (-l 1), and the whole run
        # repeated (a refresh is harmless)
        # until every agent holds a binding.
        regs, rc, p = 0.0, None, None
        for attempt in range(8):
            argv = [
                "sipp", f"127.0.0.1:{self.sip_port}", "-sf", os.path.join(SIPP_DIR, "register_agents.xml"),
                "-inf", inf, "-i", "127.0.0.1", "-p", str(agent_port), "-mp", str(free_port(4)),
                "-r", "2000", "-m", str(self.agents), "-l", "1", "-nostdin", "-timeout", "120s",
                "-trace_err", "-error_file", os.path.join(self.work, f"register-{attempt}-err.log"),
            ]
            p = Proc(argv, 150, self.work, f"register-{attempt}")
            p.popen.wait()
            p.log.close()
            rc = p.popen.returncode
            regs = metric_sum(self.metrics(), "switchboard_registrations")
            if regs >= self.agents:
                break
            log(f"registration pass {attempt + 1}: {regs:.0f} of {self.agents} agents hold a binding")
        if regs < self.agents:
            raise RuntimeError(f"registration failed (exit {rc}, {regs} bindings):\n{p.tail()}")
        log(f"{self.agents} agents registered from 127.0.0.1:{agent_port}; {self.cooldown_s:.0f} s for their transactions to expire")
        time.sleep(self.cooldown_s)

    def start_agents(self, agent_media=None, ring_ms=0):
        self.uas = sipp_uas(self.work, self.agent_port, agent_media, ring_ms=ring_ms)

    def ended(self):
        return metric_sum(self.metrics(), "switchboard_calls_total")

    def drain(self, before, expect, limit_s=30):
        deadline = time.time() + limit_s
        n = self.ended()
        while n - before < expect and time.time() < deadline:
            time.sleep(0.2)
            n = self.ended()
        return n - before

    def outcomes(self):
        return metric_by_label(self.metrics(), "switchboard_calls_total", "outcome")

    def sip_dropped(self):
        return metric_sum(self.metrics(), "switchboard_sip_dropped_total")

    def stop(self):
        if self.uas:
            self.uas.stop()
        self.proc.stop(30)


class Kamailio:
    name = "kamailio"
    cooldown_s = 3.0

    def __init__(self, work):
        self.work = os.path.join(work, "kamailio")
        os.makedirs(os.path.join(self.work, "run"), exist_ok=True)
        self.target_port = free_port()
        self.agent_port = free_port()
        with open(os.path.join(HERE, "kamailio-relay.cfg")) as f:
            cfg = f.read().replace("@KAM_PORT@", str(self.target_port)).replace("@UAS_PORT@", str(self.agent_port))
        path = os.path.join(self.work, "kamailio.cfg")
        with open(path, "w") as f:
            f.write(cfg)
        argv = [
            "kamailio", "-f", path, "-DD", "-E", "-m", "1024", "-M", "16",
            "-Y", os.path.join(self.work, "run"), "-P", os.path.join(self.work, "run", "kamailio.pid"),
            "-w", self.work,
        ]
        self.proc = Proc(argv, 7200, self.work, "kamailio")
        time.sleep(1.5)
        if not self.proc.alive():
            raise RuntimeError(f"kamailio exited:\n{self.proc.tail()}")
        self.uas = sipp_uas(self.work, self.agent_port, None)
        self._calls = 0

    def pids(self):
        return tree(self.proc.pid)

    def ended(self):
        return 0.0

    def outcomes(self):
        return {}

    def drain(self, before, expect, limit_s=30):
        # Kamailio keeps no call count (None: not measured); wait for its transactions to go
        # quiet instead.
        time.sleep(1.0)
        return None

    def stop(self):
        self.uas.stop()
        # Kamailio's workers ignore SIGTERM (the main process ends them); one the main process
        # missed would outlive the run, so whatever is left of the tree afterwards is killed.
        workers = [p for p in tree(self.proc.pid) if p != self.proc.pid] if self.proc.pid else []
        self.proc.stop(15)
        for p in workers:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    mine = self.work.encode() in f.read()
                if mine:
                    os.kill(p, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass



# ---- PostgreSQL ---------------------------------------------------------------------------


class Postgres:
    def __init__(self, work):
        bins = sorted(
            (d for d in os.listdir("/usr/lib/postgresql") if os.path.isdir(f"/usr/lib/postgresql/{d}/bin")),
            key=lambda s: [int(x) for x in re.findall(r"\d+", s)],
        )
        self.bin = f"/usr/lib/postgresql/{bins[-1]}/bin"
        self.dir = tempfile.mkdtemp(prefix="sb-load-pg-")
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        as_pg = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            as_pg + [f"{self.bin}/initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "postgres",
                     "--no-sync", "-E", "UTF8"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
        )
        subprocess.run(
            as_pg + [f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w", "-o",
                     f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
            check=True, stdout=subprocess.DEVNULL, timeout=120,
        )
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def pids(self):
        try:
            with open(f"{self.dir}/data/postmaster.pid") as f:
                return tree(int(f.readline()))
        except OSError:
            return []

    def stop(self):
        subprocess.run(
            ["runuser", "-u", "postgres", "--", f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-m", "fast",
             "-w", "stop"], stdout=subprocess.DEVNULL, timeout=120,
        )
        shutil.rmtree(self.dir, ignore_errors=True)
