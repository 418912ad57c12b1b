#!/usr/bin/env python3
"""Switchboard load benchmark: calls per second through the queue, CPU and memory per call,
side by side with Kamailio (a stateful tm + record_route relay) in the same run.

Run through benches/load/run.sh, which installs the peers and builds the binaries. Every
process runs under `timeout`, every SIPp run is bounded by -m, and everything is on 127.0.0.1.
Standard library only, so it runs on a fresh machine with any Python 3.
"""

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SIPP_DIR = os.path.join(HERE, "sipp")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
BUFF = str(8 * 1024 * 1024)  # SIPp socket buffers (capped by net.core.rmem_max/wmem_max)

FULL = {
    "agents": 3000,
    "rates": [100, 250, 500, 1000, 1500, 2000, 3000],
    "step_s": 10,
    "hold_rates": [100, 250, 500, 1000, 1500, 2000],
    "hold_ms": 2000,
    "pg_rates": [100, 500, 1000, 2000, 3000],
    "latency_rates": [100, 500, 1000, 2000],
    # The shipped server's pass includes 500/s: the setup latency of the goals table.
    "latency_rates_default": [100, 500],
    "tuned_t1_ms": 25,
    "latency_s": 4,
    "mem_first": 1000,
    "mem_total": 100_000,
    "mem_rate": 1000,
    "mem_chunks": 4,
    "mem_settle_s": 10,
    "cooldown_cap_s": 60,
    "relay_calls": [100, 250, 500, 1000],
    "relay_window_s": 5,
    "perf_rate": 1000,
}
QUICK = {
    "agents": 200,
    "rates": [50, 100],
    "step_s": 3,
    "hold_rates": [50],
    "hold_ms": 1000,
    "pg_rates": [200],
    "latency_rates": [200],
    "latency_rates_default": [100],
    "tuned_t1_ms": 25,
    "latency_s": 2,
    "mem_first": 200,
    "mem_total": 2000,
    "mem_rate": 250,
    "mem_chunks": 2,
    "mem_settle_s": 1,
    # Quick steps are too small to fill the transaction table: no need to wait for Timer J.
    "cooldown_cap_s": 1,
    "relay_calls": [20],
    "relay_window_s": 2,
    "perf_rate": 100,
}


def log(msg):
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# ---- ports and processes ----------------------------------------------------------------

_taken = set()
COOLDOWN_CAP_S = 60.0
# --perf-dir: every Switchboard step is recorded with perf into this directory (see main()).
PERF_DIR = None
PERF_CALL_GRAPH = "dwarf,16384"
# RTP in the held-call series: a packet each way every RTP_INTERVAL_MS per call (5 per
# second each way, a tenth of G.711's 50), from RTP_START_MS after the call's hold music began.
RTP_INTERVAL_MS = 200
RTP_START_MS = 250
# The probe learns a call from the first hold-music packet Switchboard sends the caller; an agent
# answering at once can be bridged before the first one (about 1 % of the calls at 500/s), so in
# the steps with RTP the agents ring this long before answering.
RTP_RING_MS = 60
RTP_FIELDS = ["rtp_calls", "rtp_calls_both_ways", "rtp_calls_every_packet", "rtp_calls_without",
              "rtp_sent_to_agent", "rtp_received_at_agent", "rtp_sent_to_trunk", "rtp_received_at_trunk",
              "rtp_loss_to_agent_pct", "rtp_loss_to_trunk_pct", "rtp_relayed_pps", "rtp_probe_drops",
              "rtp_transit_p99_ms"]


def probe_range():
    """Where the harness picks its ports: outside the kernel's ephemeral range (outgoing
    connections and unbound sends take ports from there at any moment, and a port seen free
    now could be taken before the process that needs it binds) and above the server's RTP
    range (10000-31999 unless LOAD_RTP_PORTS says otherwise)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo, eph_hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        eph_lo, eph_hi = 32768, 60999
    rtp_hi = int(os.environ.get("LOAD_RTP_PORTS", "10000, 31999").split(",")[1])
    above = (eph_hi + 1, 65535)
    below = (rtp_hi + 1, eph_lo - 1)
    # The wider of the two gaps (on Linux defaults: 61000-65535 against 32000-32767).
    return max((above, below), key=lambda r: r[1] - r[0])


PORT_LO, PORT_HI = probe_range()


def free_port(span=1, lo=None, hi=None):
    """A UDP+TCP port p such that p..p+span-1 are free now (SIPp binds media p and p+2)."""
    lo, hi = lo or PORT_LO, hi or PORT_HI - span
    for _ in range(2000):
        p = int.from_bytes(os.urandom(2), "big") % (hi - lo) + lo
        p -= p % 2
        if any(q in _taken for q in range(p, p + span)):
            continue
        ok = True
        for q in range(p, p + span):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
                finally:
                    s.close()
        if ok:
            _taken.update(range(p, p + span))
            return p
    raise RuntimeError("no free port")


class Proc:
    """A child under `timeout`; `pid` is the real program (the child of `timeout`)."""

    def __init__(self, argv, limit_s, cwd, name, env=None, stdout=None, stdin=None):
        self.name = name
        self.log_path = os.path.join(cwd, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            ["timeout", "-s", "TERM", "-k", "5", str(int(limit_s)), *argv],
            cwd=cwd,
            env=env,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else self.log,
            stderr=self.log,
        )
        self.cwd = cwd
        self.pid = None
        for _ in range(200):
            kids = children(self.popen.pid)
            if kids:
                self.pid = kids[0]
                break
            if self.popen.poll() is not None:
                break
            time.sleep(0.01)

    def alive(self):
        return self.popen.poll() is None

    def stop(self, grace=10):
        if self.popen.poll() is None and self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            if self.pid:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.popen.wait(10)
        self.log.close()

    def tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""


def agent_invite_retrans(uas):
    """INVITE retransmissions from the server that reached the agents' SIPp so far: before its
    200 (answered with the 180 again) and after it (absorbed by the global INVITE line of
    agent_uas.xml), from its -trace_counts file; None without an agent side."""
    if uas is None:
        return None
    paths = [os.path.join(uas.cwd, f) for f in os.listdir(uas.cwd)
             if f.startswith("agent_uas_") and f.endswith("_counts.csv") and f"_{uas.pid}_" in f]
    try:
        with open(paths[0], newline="") as f:
            rows = [r for r in csv.reader(f, delimiter=";") if r]
    except (OSError, IndexError):
        return None
    if len(rows) < 2:
        return None
    d = dict(zip(rows[0], rows[-1]))
    # Columns are "<scenario line>_<message>_<what>": line 0 is the call's INVITE (its
    # retransmissions are "0_INVITE_Retrans"), the global INVITE line counts those after the 200.
    keys = [k for k in d if k == "0_INVITE_Retrans" or (k.endswith("_INVITE_Recv") and not k.startswith("0_"))]
    return sum(int(d[k] or 0) for k in keys) if keys else None


def agent_failed(uas):
    """Calls the agents' SIPp counted as failed so far (its statistics file, dumped every
    second); None when there is no agent side to read."""
    try:
        st = read_stat(uas.stat) if uas is not None else None
    except OSError:
        st = None
    return st["failed"] if st else None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            pass
    return total / CLK_TCK


def memory_mb(pids):
    """Proportional set size summed over the processes (equals RSS for one process; does not
    count Kamailio's shared memory once per worker)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def socket_inodes(pids):
    """Inodes of the sockets the processes hold open (`socket:[N]` links in /proc/PID/fd)."""
    out = set()
    for p in pids:
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{p}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    return out


def udp_drops(port, inodes=None):
    """Datagrams the kernel dropped on the UDP socket(s) bound to `port` (the `drops` column of
    /proc/net/udp and udp6: receive buffer full), only those whose inode is in `inodes` when
    given (the server's own sockets, not another process's on the same port). None when no such
    socket exists."""
    total, seen = 0, False
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 13 or int(cols[1].rsplit(":", 1)[1], 16) != port:
                continue
            if inodes is not None and cols[9] not in inodes:
                continue
            total += int(cols[-1])
            seen = True
    return total if seen else None


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def metric_sum(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metric_by_label(text, name, label):
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            m = re.search(label + r'="([^"]*)"', line)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


# ---- SIPp ---------------------------------------------------------------------------------


def elapsed_seconds(v):
    # SIPp prints "HH:MM:SS:uuuuuu" (or "HH:MM:SS.uuuuuu" / "HH:MM:SS:mmm" in some versions).
    parts = re.split(r"[:.]", v.strip())
    h, m, s = int(parts[0]), int(parts[1]), int(parts[2])
    frac = parts[3] if len(parts) > 3 else "0"
    return h * 3600 + m * 60 + s + int(frac) / (10 ** len(frac))


def read_rtt(path):
    """Times (ms since SIPp started, millisecond resolution) at which calls were answered, from
    -trace_rtt: the achieved rate comes from these, not from ElapsedTime, which SIPp prints
    in whole seconds (a step 10 % slow would read as on time)."""
    try:
        with open(path) as f:
            return [float(line.split(";")[0]) for line in f.readlines()[1:] if line.strip()]
    except (OSError, ValueError):
        return []


def achieved_rate(answered_ms, successful, fallback_s):
    """Calls per second between the first and the last answer: n answers span n-1 intervals."""
    if len(answered_ms) >= 2 and answered_ms[-1] > answered_ms[0]:
        return (len(answered_ms) - 1) / ((answered_ms[-1] - answered_ms[0]) / 1000)
    return successful / max(fallback_s, 0.001)


def read_stat(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=";") if r]
    if len(rows) < 2:
        return None
    head, last = rows[0], rows[-1]
    d = dict(zip(head, last))
    return {
        "created": int(d.get("OutgoingCall(C)", "0") or 0) + int(d.get("IncomingCall(C)", "0") or 0),
        "successful": int(d.get("SuccessfulCall(C)", "0") or 0),
        "failed": int(d.get("FailedCall(C)", "0") or 0),
        "retrans": int(d.get("Retransmissions(C)", "0") or 0),
        "elapsed": elapsed_seconds(d.get("ElapsedTime(C)", "00:00:00:0")),
        "rtt_ms": d.get("ResponseTime1(C)", ""),
    }


def sipp_uas(work, port, media_key_port, rtp_echo=False, limit_s=3600, ring_ms=0):
    """The agents' SIPp; with ring_ms the agents ring that long between the 180 and the 200 (a
    copy of agent_uas.xml with a pause at its RING mark, in the work directory)."""
    mp = free_port(4)
    scenario = os.path.join(SIPP_DIR, "agent_uas.xml")
    if ring_ms:
        with open(scenario) as f:
            text = f.read()
        mark = "<!-- RING:"
        if mark not in text:
            raise RuntimeError(f"{scenario} has no {mark} mark")
        scenario = os.path.join(work, "agent_uas_ring.xml")
        with open(scenario, "w") as f:
            f.write(text.replace(mark, f'<pause milliseconds="{int(ring_ms)}"/>\n  {mark}', 1))
    argv = [
        "sipp", "-sf", scenario,
        "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1", "-mp", str(mp),
        "-key", "agent_media", str(media_key_port or mp),
        "-buff_size", BUFF, "-nostdin", "-max_socket", "60000",
        "-trace_err", "-error_file", os.path.join(work, f"uas-{port}-err.log"),
        # The messages of every call SIPp aborts (cheap: nothing is written for good calls).
        "-trace_calldebug", "-calldebug_file", os.path.join(work, f"uas-{port}-calldebug.log"),
        # Per scenario line counts (agent_uas_PID_counts.csv): how many INVITE retransmissions
        # the server sent after the agent's 200 (absorbed by the scenario's global INVITE line).
        "-trace_counts",
    ]
    if rtp_echo:
        argv.append("-rtp_echo")
    # Statistics every second: a step is clean only if the agents' side failed nothing either.
    stat = os.path.join(work, f"uas-{port}.csv")
    argv += ["-trace_stat", "-stf", stat, "-fd", "1"]
    p = Proc(argv, limit_s, work, f"uas-{port}")
    p.stat = stat
    time.sleep(0.3)
    if not p.alive():
        raise RuntimeError(f"agent SIPp did not start:\n{p.tail()}")
    return p


def sipp_trunk(work, target_port, tag, rate, calls, hold_ms, trunk_media=None, rate_period_ms=1000, port=None):
    """Runs the trunk scenario to completion (from SIP port `port`, a free one if None); returns
    SIPp's final statistics."""
    port = port or free_port()
    mp = free_port(4)
    stat = os.path.join(work, f"trunk-{tag}.csv")
    limit = max(200, int(rate * (hold_ms / 1000 + 3)))
    budget = calls / max(rate, 1) + hold_ms / 1000 + 40
    argv = [
        "sipp", f"127.0.0.1:{target_port}", "-sf", os.path.join(SIPP_DIR, "trunk.xml"),
        "-s", "100", "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1", "-mp", str(mp),
        "-key", "trunk_media", str(trunk_media or mp),
        "-r", str(rate), "-rp", str(rate_period_ms), "-m", str(calls), "-l", str(limit),
        "-d", str(hold_ms), "-recv_timeout", "8000", "-timeout", f"{int(budget)}s",
        "-buff_size", BUFF, "-nostdin", "-max_socket", "60000",
        "-trace_stat", "-stf", stat, "-fd", "1",
        "-trace_rtt", "-rtt_freq", "1",
        "-trace_err", "-error_file", os.path.join(work, f"trunk-{tag}-err.log"),
        "-trace_calldebug", "-calldebug_file", os.path.join(work, f"trunk-{tag}-calldebug.log"),
    ]
    p = Proc(argv, budget + 20, work, f"trunk-{tag}")
    p.popen.wait()
    p.log.close()
    st = read_stat(stat)
    if st is None:
        raise RuntimeError(f"trunk SIPp wrote no statistics:\n{p.tail()}")
    st["exit"] = p.popen.returncode
    # SIPp names the file after the scenario and its pid, in its working directory.
    st["answered_ms"] = sorted(read_rtt(os.path.join(work, f"trunk_{p.pid}_rtt.csv")))
    return st


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
        self.proc.stop(15)


# ---- one step -----------------------------------------------------------------------------


def rtp_probe_start(sut, work, tag, hold_ms):
    """The RTP probe in per-call mode for one held-call step (None when the server has no probe
    ports): each call it learns gets a packet each way every RTP_INTERVAL_MS from RTP_START_MS
    after its hold music began until three quarters of the hold (the call is still up then)."""
    rtp = getattr(sut, "rtp", None)
    if not rtp or hold_ms <= 0:
        return None
    call_ms = hold_ms * 3 // 4
    return Proc(
        [rtp["probe"], "--trunk-port", str(rtp["trunk"]), "--agent-port", str(rtp["agent"]),
         "--call-ms", str(call_ms), "--start-ms", str(RTP_START_MS), "--interval-ms", str(RTP_INTERVAL_MS),
         "--drain-ms", "500"],
        7200, work, f"probe-{tag}", stdout=subprocess.PIPE, stdin=subprocess.PIPE,
    )


def rtp_probe_finish(pr):
    """Closes the probe's standard input (the step's calls are over) and reads its totals."""
    out, _ = pr.popen.communicate(input=b"", timeout=120)
    pr.log.close()
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"RTP probe printed nothing:\n{pr.tail()}")


def rtp_columns(res, successful, active_s):
    """The step's RTP columns from the probe's totals."""
    if res is None:
        return {k: "" for k in RTP_FIELDS}
    loss = lambda got, sent: round((1 - got / sent) * 100, 3) if sent else ""
    return {
        "rtp_calls": res["calls"],
        "rtp_calls_both_ways": res["calls_media_both_ways"],
        "rtp_calls_every_packet": res["calls_every_packet"],
        "rtp_calls_without": max(successful - res["calls_media_both_ways"], 0),
        "rtp_sent_to_agent": res["sent_to_agent"],
        "rtp_received_at_agent": res["received_at_agent"],
        "rtp_sent_to_trunk": res["sent_to_trunk"],
        "rtp_received_at_trunk": res["received_at_trunk"],
        "rtp_loss_to_agent_pct": loss(res["received_at_agent"], res["sent_to_agent"]),
        "rtp_loss_to_trunk_pct": loss(res["received_at_trunk"], res["sent_to_trunk"]),
        "rtp_relayed_pps": round((res["received_at_agent"] + res["received_at_trunk"]) / max(active_s, 0.001)),
        "rtp_probe_drops": res["probe_socket_drops"],
        "rtp_transit_p99_ms": res["one_way"]["transit_p99_ms"],
    }


def run_step(sut, work, series, db, rate, step_s, hold_ms):
    calls = int(rate * step_s)
    pids = sut.pids()
    before_ended = sut.ended()
    out0 = sut.outcomes()
    cpu0 = cpu_seconds(pids)
    peak = [memory_mb(pids)]
    la0 = loadavg()
    loads = [la0]
    agent_failed0 = agent_failed(getattr(sut, "uas", None))
    invite_re0 = agent_invite_retrans(getattr(sut, "uas", None))
    tag = f"{sut.name}-{db}-{series}-{rate}"
    # Kernel drops on the server's SIP socket (only the server's own sockets on its SIP port)
    # and on the SIP sockets of the two SIPps (the load generator's own drops).
    sip_inodes = socket_inodes(pids)
    drops0 = udp_drops(sut.target_port, sip_inodes)
    trunk_port = free_port()
    uas_drops0 = udp_drops(sut.agent_port) or 0
    trunk_drops = [0]
    # Datagrams the server read but dropped itself (a full lane of its inbound queue, oversized).
    queue_drops0 = sut.sip_dropped() if isinstance(sut, Switchboard) else None
    probe = rtp_probe_start(sut, work, re.sub(r"[^A-Za-z0-9_.-]+", "_", tag), hold_ms)

    # Sample memory while SIPp runs (a thread would add nothing: SIPp runs as a child).
    result = {}

    def trunk():
        result["st"] = sipp_trunk(work, sut.target_port, tag, rate, calls, hold_ms,
                                  trunk_media=sut.rtp["trunk"] if probe else None, port=trunk_port)

    # perf record of the server for the offered part of the step (the calls' tails excluded).
    rec = None
    if PERF_DIR and isinstance(sut, Switchboard):
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)
        data = os.path.join(PERF_DIR, base + ".data")
        rec = Proc(["perf", "record", "-F", "499", "-g", "--call-graph", PERF_CALL_GRAPH, "-o", data,
                    "-p", str(sut.proc.pid), "--", "sleep", str(step_s)], step_s + 120, PERF_DIR, "perf-" + base)

    import threading

    t = threading.Thread(target=trunk)
    t.start()
    while t.is_alive():
        peak.append(memory_mb(pids))
        loads.append(loadavg())
        # The trunk SIPp's socket lives for the step only: its highest count seen (sampled).
        trunk_drops.append(udp_drops(trunk_port) or 0)
        t.join(0.25)
    st = result["st"]
    rtp_res = rtp_probe_finish(probe) if probe else None
    if rec is not None:
        rec.popen.wait()
        rec.log.close()
    done = sut.drain(before_ended, st["successful"])
    time.sleep(0.5)
    cpu1 = cpu_seconds(sut.pids())
    time.sleep(0.7)  # the agents' SIPp dumps its statistics every second
    agent_failed1 = agent_failed(getattr(sut, "uas", None))
    agents_failed = "" if agent_failed0 is None or agent_failed1 is None else agent_failed1 - agent_failed0
    invite_re1 = agent_invite_retrans(getattr(sut, "uas", None))
    invite_re = "" if invite_re0 is None or invite_re1 is None else invite_re1 - invite_re0
    rss_drained = memory_mb(sut.pids())
    drops1 = udp_drops(sut.target_port, sip_inodes | socket_inodes(sut.pids()))
    sip_drops = "" if drops0 is None or drops1 is None else drops1 - drops0
    sipp_drops = (udp_drops(sut.agent_port) or 0) - uas_drops0 + max(trunk_drops)
    queue_drops = "" if queue_drops0 is None else int(sut.sip_dropped() - queue_drops0)
    peak.append(rss_drained)
    out1 = sut.outcomes()
    answered = out1.get("answered", 0) - out0.get("answered", 0)
    active = max(st["elapsed"] - hold_ms / 1000, 0.001)
    achieved = achieved_rate(st["answered_ms"], st["successful"], active)
    cpu = cpu1 - cpu0
    row = {
        "system": sut.name,
        "db": db,
        "series": series,
        "hold_ms": hold_ms,
        "offered_cps": rate,
        "calls": calls,
        "successful": st["successful"],
        "failed": st["failed"],
        "retransmissions": st["retrans"],
        "achieved_cps": round(achieved, 1),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1k": round(cpu / max(st["successful"] + st["failed"], 1) * 1000, 3),
        "peak_rss_mb": round(max(peak), 1),
        "rss_drained_mb": round(rss_drained, 1),
        "server_ended": "" if done is None else int(done),
        "server_answered": "" if done is None else int(answered),
        "agents_failed": agents_failed,
        "sip_socket_drops": sip_drops,
        "sip_queue_drops": queue_drops,
        "sipp_socket_drops": sipp_drops,
        "agent_invite_retrans": invite_re,
        # The 1-minute load average at the start and the highest seen while the step ran.
        "loadavg_start": la0,
        "loadavg": max(loads),
        "lat_p50_ms": "",
        "lat_p99_ms": "",
        **rtp_columns(rtp_res, st["successful"], active),
    }
    log(
        f"{sut.name:22} {db:8} {series:5} {rate:5}/s: ok {row['successful']:6} failed {row['failed']:4} "
        f"retrans {row['retransmissions']:5} achieved {row['achieved_cps']:7.1f}/s cpu {row['cpu_s']:6.2f}s "
        f"({row['cpu_s_per_1k']:.3f}/1k) peak {row['peak_rss_mb']:.0f} MB drained {row['rss_drained_mb']:.0f} MB "
        f"agents failed {agents_failed if agents_failed != '' else '-'} SIP socket drops {fmt(sip_drops)} "
        f"(SIPp's {sipp_drops}) queue drops {fmt(queue_drops)} INVITE retrans at agents {fmt(invite_re)} load {la0:.2f}->{max(loads):.2f}"
    )
    if rtp_res is not None:
        log(f"{'':22} RTP: {row['rtp_calls']} calls learned, {row['rtp_calls_both_ways']} with media both ways "
            f"({row['rtp_calls_every_packet']} every packet); to agent {row['rtp_received_at_agent']}/"
            f"{row['rtp_sent_to_agent']}, back {row['rtp_received_at_trunk']}/{row['rtp_sent_to_trunk']} "
            f"(~{row['rtp_relayed_pps']} relayed pkt/s); probe socket drops {row['rtp_probe_drops']}")
    return row


# ---- latency from a capture ---------------------------------------------------------------


def read_pcap(path):
    """(timestamp, src_port, dst_port, payload) of every IPv4/UDP frame of a classic pcap
    (written by dumpcap -P) on the loopback interface."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        ts = sec + frac / (1e9 if nano else 1e6)
        if linktype == 1:  # Ethernet (Linux lo)
            if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
        elif linktype == 113:  # Linux cooked
            ip = frame[16:]
        else:
            ip = frame
        if len(ip) < 20 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        udp = ip[ihl:]
        if len(udp) < 8:
            continue
        sport, dport = struct.unpack(">HH", udp[:4])
        yield ts, sport, dport, udp[8:]


FROM_USER = re.compile(rb"\r\n(?:From|f)\s*:[^\r\n]*?sip:\+?(\d+)@", re.I)


def invite_latency(pcap, sut_port, agent_port):
    """INVITE in (to sut_port) -> INVITE out (from sut_port to agent_port), paired by the
    caller number in From; the first copy of each (retransmissions ignored)."""
    t_in, t_out = {}, {}
    for ts, sport, dport, payload in read_pcap(pcap):
        if not payload.startswith(b"INVITE "):
            continue
        m = FROM_USER.search(payload)
        if not m:
            continue
        num = m.group(1)
        if dport == sut_port and sport != agent_port:
            t_in.setdefault(num, ts)
        elif sport == sut_port and dport == agent_port:
            t_out.setdefault(num, ts)
    lat = sorted((t_out[n] - t_in[n]) * 1000 for n in t_out if n in t_in)
    return lat, len(t_in)


def pct(xs, p):
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round((len(xs) - 1) * p)))]


def latency_pass(sut, work, rates, secs):
    out = {}
    if not shutil.which("dumpcap"):
        log("dumpcap (tshark) missing: no latency figures")
        return out
    for rate in rates:
        pcap = os.path.join(work, f"lat-{sut.name}-{rate}.pcap")
        cap = Proc(
            ["dumpcap", "-q", "-P", "-i", "lo", "-B", "256", "-s", "1500", "-f",
             f"udp port {sut.target_port}", "-w", pcap],
            secs + 60, work, f"dumpcap-{sut.name}-{rate}",
        )
        time.sleep(1.0)
        before = sut.ended()
        st = sipp_trunk(work, sut.target_port, f"lat-{sut.name}-{rate}", rate, int(rate * secs), 0)
        sut.drain(before, st["successful"])
        time.sleep(0.5)
        cap.stop()
        time.sleep(sut.cooldown_s)
        lat, invites = invite_latency(pcap, sut.target_port, sut.agent_port)
        out[rate] = (pct(lat, 0.5), pct(lat, 0.99), len(lat), invites)
        failed = st["failed"] > 0.1 * max(st["successful"] + st["failed"], 1)
        log(f"{sut.name:11} latency @{rate}/s: INVITE in -> INVITE out p50 {out[rate][0]:.3f} ms "
            f"p99 {out[rate][1]:.3f} ms ({len(lat)} of {invites} INVITEs paired)")
        try:
            os.remove(pcap)
        except OSError:
            pass
        if failed:
            log(f"{sut.name} latency pass stopped after {rate}/s: {st['failed']} calls failed")
            break
    return out


# ---- series -------------------------------------------------------------------------------


def cps_series(sut, work, db, cfg, rows, only=("zero", "hold")):
    """Stepped rates, zero-length calls then calls of hold_ms. A series stops after a step in
    which more than 10 % of the calls failed: the next, higher rate would only fail more, and
    calls left behind by a collapse would distort it."""
    for series, rate_list, hold in (("zero", cfg["rates"], 0), ("hold", cfg["hold_rates"], cfg["hold_ms"])):
        if series not in only:
            continue
        for rate in rate_list:
            row = run_step(sut, work, series, db, rate, cfg["step_s"], hold)
            rows.append(row)
            time.sleep(sut.cooldown_s)
            if row["failed"] > 0.1 * row["calls"]:
                log(f"{sut.name} {series} series stopped after {rate}/s: {row['failed']} of {row['calls']} calls failed")
                break


def memory_check(binary, work, cfg, t1_ms):
    """RSS after a first small batch of calls, then after each chunk of the rest at the full rate.

    The first chunk at the full rate raises every high-water mark (transaction tables sized for
    rate x 64*T1, allocator arenas); growth from the first full-rate checkpoint to the last is
    what the server keeps per finished call."""
    sb = Switchboard(binary, work, cfg["agents"], tag="sb-memory", t1_ms=t1_ms)
    try:
        sb.register()
        sb.start_agents()
        pid = sb.proc.pid
        rss0 = memory_mb([pid])
        b = sb.ended()
        st1 = sipp_trunk(sb.work, sb.sip_port, "mem-first", cfg["mem_rate"] // 2 or 1, cfg["mem_first"], 0)
        sb.drain(b, st1["successful"])
        time.sleep(cfg["mem_settle_s"])
        rss1 = memory_mb([pid])
        rest = cfg["mem_total"] - cfg["mem_first"]
        chunks = max(1, cfg["mem_chunks"])
        done, ok, failed = cfg["mem_first"], st1["successful"], st1["failed"]
        checkpoints = []
        for i in range(chunks):
            n = rest // chunks + (1 if i < rest % chunks else 0)
            b = sb.ended()
            st = sipp_trunk(sb.work, sb.sip_port, f"mem-rest-{i}", cfg["mem_rate"], n, 0)
            sb.drain(b, st["successful"], limit_s=60)
            time.sleep(cfg["mem_settle_s"])
            done, ok, failed = done + n, ok + st["successful"], failed + st["failed"]
            checkpoints.append({"calls": done, "rss_mb": round(memory_mb([pid]), 1)})
            log(f"memory: after {done} calls RSS {checkpoints[-1]['rss_mb']:.1f} MB")
        rss2 = checkpoints[-1]["rss_mb"]
        growth = (rss2 - rss1) / rss1 * 100 if rss1 else float("nan")
        span = checkpoints[-1]["calls"] - checkpoints[0]["calls"]
        per_call = ((checkpoints[-1]["rss_mb"] - checkpoints[0]["rss_mb"]) * 1024 * 1024 / span
                    if span else float("nan"))
        text = sb.metrics()
        state = {k: v for k, v in metric_by_label(text, "switchboard_call_state_entries", "table").items()}
        res = {
            "rss_start_mb": round(rss0, 1),
            "rss_after_first_mb": round(rss1, 1),
            "rss_after_all_mb": round(rss2, 1),
            "growth_pct": round(growth, 1),
            "checkpoints": checkpoints,
            "bytes_per_call_after_first_chunk": round(per_call, 1),
            "calls_ok": ok,
            "calls_failed": failed,
            "first": cfg["mem_first"],
            "total": cfg["mem_total"],
            "rate": cfg["mem_rate"],
            "outcomes": sb.outcomes(),
            "call_state_entries_after": state,
            "engine_calls_after": metric_sum(text, "switchboard_engine_calls"),
        }
        log(f"memory: RSS start {rss0:.1f} MB, after {cfg['mem_first']} calls {rss1:.1f} MB, after "
            f"{cfg['mem_total']} calls {rss2:.1f} MB ({growth:+.1f} %; {per_call:+.0f} bytes per call after the "
            f"first full-rate chunk); {ok} ok, {failed} failed")
        return res
    finally:
        sb.stop()


def perf_profile(binary, work, cfg, t1_ms, out_dir):
    """perf record of Switchboard during one zero-length-call step; the report goes to perf.txt."""
    if not shutil.which("perf"):
        log("perf missing: no profile")
        return
    sb = Switchboard(binary, work, cfg["agents"], tag="sb-perf", t1_ms=t1_ms)
    try:
        sb.register()
        sb.start_agents()
        data = os.path.join(sb.work, "perf.data")
        rate, secs = cfg["perf_rate"], cfg["step_s"]
        rec = Proc(["perf", "record", "-F", "499", "-g", "-o", data, "-p", str(sb.proc.pid), "--", "sleep", str(secs)],
                   secs + 60, sb.work, "perf-record")
        st = sipp_trunk(sb.work, sb.sip_port, "perf", rate, rate * secs, 0)
        rec.popen.wait()
        rec.log.close()
        report = subprocess.run(
            ["perf", "report", "-i", data, "--stdio", "--no-children", "--percent-limit", "0.7",
             "-g", "none", "--sort", "dso,symbol"],
            capture_output=True, text=True, timeout=300,
        ).stdout
        path = os.path.join(out_dir, "perf.txt")
        with open(path, "w") as f:
            f.write(f"# perf record -F 499 -g of switchboard (t1={t1_ms} ms) during {rate} zero-length calls/s "
                    f"for {secs} s: {st['successful']} ok, {st['failed']} failed\n")
            f.write(report)
        log(f"profile written to {path}")
    finally:
        sb.stop()


def open_fds(pid):
    """Open file descriptors of a process (sockets included)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def relay_series(binary, probe, work, cfg, rows_out):
    m_max = max(cfg["relay_calls"])
    sb = Switchboard(binary, work, max(cfg["agents"], m_max), tag="sb-relay")
    try:
        sb.register()
        trunk_media = free_port(2)
        agent_media = free_port(2)
        sb.start_agents(agent_media=agent_media)
        for m in cfg["relay_calls"]:
            setup_rate = 100
            setup_s = m / setup_rate
            warmup_ms = int((setup_s + 2.0) * 1000)
            window_ms = cfg["relay_window_s"] * 1000
            hold_ms = warmup_ms + window_ms + 3000
            pr = Proc(
                [probe, "--trunk-port", str(trunk_media), "--agent-port", str(agent_media),
                 "--warmup-ms", str(warmup_ms), "--window-ms", str(window_ms), "--drain-ms", "500"],
                (warmup_ms + window_ms) / 1000 + 30, sb.work, f"probe-{m}", stdout=subprocess.PIPE,
            )
            import threading

            result = {}
            t = threading.Thread(target=lambda: result.update(
                st=sipp_trunk(sb.work, sb.sip_port, f"relay-{m}", setup_rate, m, hold_ms, trunk_media=trunk_media)))
            before = sb.ended()
            fds_idle = open_fds(sb.proc.pid)
            t.start()
            # CPU over the counting window only.
            time.sleep(warmup_ms / 1000)
            la = loadavg()
            fds_busy = open_fds(sb.proc.pid)
            cpu0 = cpu_seconds([sb.proc.pid])
            t0 = time.time()
            time.sleep(window_ms / 1000)
            cpu1 = cpu_seconds([sb.proc.pid])
            t1 = time.time()
            rtp = metric_by_label(sb.metrics(), "switchboard_rtp_packets_total", "direction")
            out, _ = pr.popen.communicate(timeout=60)
            pr.log.close()
            t.join()
            st = result["st"]
            sb.drain(before, st["successful"])
            try:
                probe_res = json.loads(out.decode().strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise RuntimeError(f"probe printed nothing:\n{pr.tail()}")
            calls = probe_res["calls_in_window"]
            sent = probe_res["sent_counted"]
            ow = probe_res["one_way"]
            rt = probe_res["round_trip"]
            loss_ow = (1 - ow["received"] / sent) * 100 if sent else float("nan")
            loss_rt = (1 - rt["received"] / sent) * 100 if sent else float("nan")
            cpu = cpu1 - cpu0
            per_call_pct = cpu / (t1 - t0) / max(calls, 1) * 100
            row = {
                "calls": m,
                "bridged_in_window": calls,
                "pkts_per_s": round(2 * 50 * calls),
                "cpu_s": round(cpu, 2),
                "window_s": round(t1 - t0, 2),
                "core_pct_per_call": round(per_call_pct, 4),
                "sent": sent,
                "received_one_way": ow["received"],
                "received_round_trip": rt["received"],
                "loss_one_way_pct": round(loss_ow, 3),
                "loss_round_trip_pct": round(loss_rt, 3),
                "transit_p50_ms": ow["transit_p50_ms"],
                "transit_p99_ms": ow["transit_p99_ms"],
                "jitter_mean_ms": ow["jitter_mean_ms"],
                "jitter_max_ms": ow["jitter_max_ms"],
                "rt_jitter_mean_ms": rt["jitter_mean_ms"],
                "probe_socket_drops": probe_res.get("probe_socket_drops", 0),
                # Descriptors the calls hold (RTP/RTCP sockets): open fds with m calls up minus
                # before them, per call.
                "fds_per_call": round((fds_busy - fds_idle) / max(m, 1), 2),
                "sipp_failed": st["failed"],
                "loadavg": la,
                "rtp_metric": json.dumps(rtp),
            }
            rows_out.append(row)
            log(f"relay {m:5} calls ({calls} bridged in window): cpu {cpu:.2f}s over {t1 - t0:.1f}s = "
                f"{per_call_pct:.4f} % of a core per call; loss one-way {loss_ow:.3f} % round-trip "
                f"{loss_rt:.3f} % (probe socket drops {probe_res.get('probe_socket_drops', 0)}); jitter mean {ow['jitter_mean_ms']:.3f} ms max {ow['jitter_max_ms']:.3f} ms; "
                f"transit p99 {ow['transit_p99_ms']:.3f} ms; fds per call {row['fds_per_call']}; SIPp failed {st['failed']}; load {la:.2f}")
    finally:
        sb.stop()


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


# ---- output -------------------------------------------------------------------------------


def clean(row):
    """No call failed on either side, the rate was held (within 5 %), the kernel dropped nothing
    on the server's SIP socket nor the server in its inbound queue and, where the step carried
    RTP, every packet arrived both ways."""
    if not row or row["failed"] != 0 or row.get("agents_failed") not in ("", 0, None):
        return False
    if row["achieved_cps"] < 0.95 * row["offered_cps"] or row.get("sip_socket_drops") not in ("", 0, None):
        return False
    if row.get("sip_queue_drops") not in ("", 0, None):
        return False
    if row.get("rtp_calls", "") != "":
        return (row["rtp_received_at_agent"] == row["rtp_sent_to_agent"]
                and row["rtp_received_at_trunk"] == row["rtp_sent_to_trunk"]
                and row["rtp_sent_to_agent"] > 0)
    return True


def svg_chart(rows, path):
    """Two panels against the offered rate: achieved calls/s, and CPU seconds per 1,000 calls."""
    zero = [r for r in rows if r["series"] == "zero"]
    series = {}
    for r in zero:
        series.setdefault(f"{r['system']} ({r['db']})", []).append(r)
    colors = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e"]
    W, H, pad = 460, 320, 55
    rates = sorted({r["offered_cps"] for r in zero}) or [1]
    xmax = max(rates)

    def panel(ox, title, key, ymax):
        ymax = ymax or 1
        out = [f'<g transform="translate({ox},0)">',
               f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
               f'<line x1="{pad}" y1="{H - pad}" x2="{W - 10}" y2="{H - pad}" stroke="black"/>',
               f'<line x1="{pad}" y1="30" x2="{pad}" y2="{H - pad}" stroke="black"/>']
        sx = lambda x: pad + (W - 10 - pad) * x / xmax
        sy = lambda y: H - pad - (H - pad - 30) * y / ymax
        for i in range(5):
            y = ymax * i / 4
            out.append(f'<text x="{pad - 5}" y="{sy(y) + 4:.1f}" text-anchor="end" font-size="10">{y:.3g}</text>')
            out.append(f'<line x1="{pad}" y1="{sy(y):.1f}" x2="{W - 10}" y2="{sy(y):.1f}" stroke="#ddd"/>')
        for x in rates:
            out.append(f'<text x="{sx(x):.1f}" y="{H - pad + 15}" text-anchor="middle" font-size="10">{x}</text>')
        out.append(f'<text x="{W / 2}" y="{H - 15}" text-anchor="middle" font-size="11">offered calls/s (zero-length calls)</text>')
        for i, (name, rs) in enumerate(sorted(series.items())):
            c = colors[i % len(colors)]
            pts = " ".join(f"{sx(r['offered_cps']):.1f},{sy(r[key]):.1f}" for r in sorted(rs, key=lambda r: r["offered_cps"]))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
            for r in rs:
                out.append(f'<circle cx="{sx(r["offered_cps"]):.1f}" cy="{sy(r[key]):.1f}" r="3" fill="{c}"/>')
            out.append(f'<text x="{pad + 10}" y="{45 + 14 * i}" font-size="11" fill="{c}">{name}</text>')
        out.append("</g>")
        return out

    ymax_cps = max([r["achieved_cps"] for r in zero] + [r["offered_cps"] for r in zero] + [1]) * 1.05
    ymax_cpu = max([r["cpu_s_per_1k"] for r in zero] + [0.5]) * 1.1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" font-family="sans-serif">',
             '<rect width="100%" height="100%" fill="white"/>']
    parts += panel(0, "achieved calls/s", "achieved_cps", ymax_cps)
    parts += panel(W, "CPU seconds per 1,000 calls", "cpu_s_per_1k", ymax_cpu)
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def fmt(x, nd=2):
    if x == "" or x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def markdown(rows, relay, memory, latency, summary, meta):
    out = [f"Run: {meta['date']}, {meta['mode']} mode, {meta['cores']} cores, load average at start "
           f"{meta['load_start']:.2f}, at end {meta['load_end']:.2f}; {meta['agents']} agents; "
           f"Switchboard `RUST_LOG={meta['rust_log']}`; Kamailio {meta['kamailio']}; SIPp {meta['sipp']}.", ""]
    out.append("| system | CDRs | call length | offered/s | achieved/s | ok | failed | failed at the agents | server answered | retrans | "
               "INVITE retrans at the agents | SIP socket drops (SIPp's) | inbound queue drops | CPU s/1k calls | "
               "peak RSS MB | RSS drained MB | INVITE→INVITE p50/p99 ms | SB/Kam CPS | SB/Kam CPU | load (max in step) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    kam = {(r["series"], r["offered_cps"]): r for r in rows if r["system"] == "kamailio"}
    for r in rows:
        k = kam.get((r["series"], r["offered_cps"]))
        ratio_cps = ratio_cpu = "—"
        if r["system"].startswith("switchboard") and k:
            ratio_cps = f"{r['achieved_cps'] / k['achieved_cps']:.2f}" if k["achieved_cps"] else "—"
            ratio_cpu = f"{r['cpu_s_per_1k'] / k['cpu_s_per_1k']:.2f}" if k["cpu_s_per_1k"] else "—"
        lat = "—"
        if r["lat_p50_ms"] != "":
            lat = f"{r['lat_p50_ms']:.2f} / {r['lat_p99_ms']:.2f}"
        kind = "0 s" if r["series"] == "zero" else f"{r['hold_ms'] / 1000:g} s"
        out.append(
            f"| {r['system']} | {r['db']} | {kind} | {r['offered_cps']} | {r['achieved_cps']:.0f} | {r['successful']} | "
            f"{r['failed']} | {fmt(r.get('agents_failed'))} | {fmt(r.get('server_answered'))} | {r['retransmissions']} | "
            f"{fmt(r.get('agent_invite_retrans'))} | {fmt(r.get('sip_socket_drops'))} ({fmt(r.get('sipp_socket_drops'))}) | "
            f"{fmt(r.get('sip_queue_drops'))} | "
            f"{r['cpu_s_per_1k']:.3f} | {r['peak_rss_mb']:.0f} | "
            f"{r['rss_drained_mb']:.0f} | {lat} | {ratio_cps} | {ratio_cpu} | {r['loadavg']:.1f} |"
        )
    with_rtp = [r for r in rows if r.get("rtp_calls", "") != ""]
    if with_rtp:
        out += ["", f"RTP in the held-call steps (every call learned from its hold music gets a packet each way every "
                f"{RTP_INTERVAL_MS} ms from {RTP_START_MS} ms after its music began until three quarters of the hold):", "",
                "| system | offered/s | ok | calls with RTP | media both ways | every packet both ways | ok calls without media | "
                "to the agent: received / sent (loss) | back to the trunk: received / sent (loss) | relayed pkt/s | "
                "transit p99 ms | probe's own socket drops |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in with_rtp:
            out.append(
                f"| {r['system']} | {r['offered_cps']} | {r['successful']} | {r['rtp_calls']} | {r['rtp_calls_both_ways']} | "
                f"{r['rtp_calls_every_packet']} | {r['rtp_calls_without']} | "
                f"{r['rtp_received_at_agent']:,} / {r['rtp_sent_to_agent']:,} ({fmt(r['rtp_loss_to_agent_pct'], 3)} %) | "
                f"{r['rtp_received_at_trunk']:,} / {r['rtp_sent_to_trunk']:,} ({fmt(r['rtp_loss_to_trunk_pct'], 3)} %) | "
                f"{r['rtp_relayed_pps']:,} | {r['rtp_transit_p99_ms']:.3f} | {r['rtp_probe_drops']} |")
    if relay:
        out += ["", "| relayed calls | bridged in window | relayed pkt/s | CPU s (window) | % of a core per call | "
                "loss one-way (received / sent) | loss round trip (received) | probe's own socket drops | transit p50/p99 ms | jitter mean/max ms | load |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in relay:
            out.append(
                f"| {r['calls']} | {r['bridged_in_window']} | {r['pkts_per_s']} | {r['cpu_s']:.2f} / {r['window_s']:.1f} s | "
                f"{r['core_pct_per_call']:.4f} % | {r['loss_one_way_pct']:.3f} % ({r['received_one_way']:,} / {r['sent']:,}) | "
                f"{r['loss_round_trip_pct']:.3f} % ({r['received_round_trip']:,}) | "
                f"{r['probe_socket_drops']} | "
                f"{r['transit_p50_ms']:.3f} / {r['transit_p99_ms']:.3f} | {r['jitter_mean_ms']:.3f} / {r['jitter_max_ms']:.3f} | "
                f"{r['loadavg']:.1f} |")
    if memory:
        out += ["", f"Memory growth: RSS {memory['rss_start_mb']} MB at start, {memory['rss_after_first_mb']} MB after "
                f"the first {memory['first']:,} calls, {memory['rss_after_all_mb']} MB after {memory['total']:,} calls "
                f"at {memory['rate']}/s ({memory['growth_pct']:+.1f} %; {memory['calls_ok']:,} ok, "
                f"{memory['calls_failed']:,} failed; outcomes {json.dumps(memory['outcomes'])}). "
                f"RSS at each checkpoint: "
                + ", ".join(f"{c['rss_mb']} MB after {c['calls']:,}" for c in memory["checkpoints"])
                + f" ({memory['bytes_per_call_after_first_chunk']:+.0f} bytes per call from the first "
                f"full-rate checkpoint to the last); call-control tables afterwards "
                f"{json.dumps(memory['call_state_entries_after'])}, engine calls {memory['engine_calls_after']:.0f}."]
    out += [""] + ["`" + line + "`  " for line in summary.splitlines()]
    out += [""] + goals_table(rows, relay, memory, latency)
    return "\n".join(out) + "\n"


def goals_table(rows, relay, memory, lat):
    """The goals of issue #20 against this run, for Switchboard as shipped (sip.t1_ms = 500)
    and Kamailio in the same run: each goal, the figure, met or not ("—" when the run did not
    measure it)."""
    def step(system, series, rate, db=("sqlite", "-")):
        return next((r for r in rows if r["system"] == system and r["series"] == series
                     and r["offered_cps"] == rate and r["db"] in db), None)

    def ceiling(system):
        zero = [r for r in rows if r["system"] == system and r["series"] == "zero" and r["db"] in ("sqlite", "-")]
        top = max((r for r in zero if clean(r)), key=lambda r: r["offered_cps"], default=None)
        return top, zero

    def yes(ok):
        return "yes" if ok else "no"

    out = ["Goals of issue #20 (Switchboard as shipped, `sip.t1_ms` = 500; Kamailio in the same run):", "",
           "| goal | this run | met |", "|---|---|---|"]
    sb, sb_zero = ceiling("switchboard")
    kam, _ = ceiling("kamailio")
    if sb_zero:
        top_rate = max(r["offered_cps"] for r in sb_zero)
        ratio = f"{sb['achieved_cps'] / kam['achieved_cps']:.2f}× Kamailio's {kam['achieved_cps']:,.0f}/s" if sb and kam else "Kamailio not measured"
        fig = f"{sb['achieved_cps']:,.0f}/s clean (offered {sb['offered_cps']:,}/s); {ratio}" if sb else "no step clean"
        out.append(f"| zero-length calls clean at 3,000/s (the top step), ratio to Kamailio's clean ceiling | {fig} | "
                   f"{yes(sb is not None and sb['offered_cps'] >= 3000 and top_rate >= 3000)} |")
    else:
        out.append("| zero-length calls clean at 3,000/s | not measured | — |")
    a, b = step("switchboard", "zero", 2000), step("kamailio", "zero", 2000)
    if a and b and b["cpu_s_per_1k"]:
        x = a["cpu_s_per_1k"] / b["cpu_s_per_1k"]
        out.append(f"| CPU per 1,000 calls at 2,000/s ≤ 1.0× Kamailio | {a['cpu_s_per_1k']:.3f} vs {b['cpu_s_per_1k']:.3f} CPU-s: "
                   f"{x:.2f}× | {yes(x <= 1.0)} |")
    else:
        out.append("| CPU per 1,000 calls at 2,000/s ≤ 1.0× Kamailio | not measured | — |")
    h = step("switchboard", "hold", 2000)
    if h:
        rtp = "no RTP in the step"
        rtp_ok = False
        if h.get("rtp_calls", "") != "":
            rtp = (f"RTP: {h['rtp_calls_both_ways']:,} calls with media both ways, loss {fmt(h['rtp_loss_to_agent_pct'], 3)} % "
                   f"to the agent and {fmt(h['rtp_loss_to_trunk_pct'], 3)} % back")
            rtp_ok = (h["rtp_received_at_agent"] == h["rtp_sent_to_agent"] and h["rtp_received_at_trunk"] == h["rtp_sent_to_trunk"]
                      and h["rtp_sent_to_agent"] > 0)
        ok = (h["achieved_cps"] >= 1900 and h["failed"] == 0 and h.get("agents_failed") in (0, "")
              and h["retransmissions"] == 0 and rtp_ok)
        out.append(f"| 2-s calls at 2,000/s clean with RTP: ≥ 1,900/s, 0 failed, 0 retransmissions, 0 loss | "
                   f"{h['achieved_cps']:,.1f}/s, {h['successful']:,} ok, {h['failed']} failed "
                   f"({fmt(h.get('agents_failed'))} at the agents), {h['retransmissions']} retransmissions; {rtp} | {yes(ok)} |")
    else:
        out.append("| 2-s calls at 2,000/s clean with RTP | not measured | — |")
    drops = [r for r in (step("switchboard", "zero", 2000), h) if r and r.get("sip_socket_drops", "") != ""]
    if drops:
        fig = "; ".join(f"{'0-s' if r['series'] == 'zero' else '2-s'} calls: {r['sip_socket_drops']} by the kernel, "
                        f"{fmt(r.get('sip_queue_drops'))} in the server's inbound queue" for r in drops)
        out.append(f"| 0 datagrams dropped on the server's SIP socket at 2,000/s | {fig} | "
                   f"{yes(all(r['sip_socket_drops'] == 0 and r.get('sip_queue_drops') in (0, '') for r in drops))} |")
    else:
        out.append("| 0 datagrams dropped on the server's SIP socket at 2,000/s | not measured | — |")
    if relay:
        worst = max(r["core_pct_per_call"] for r in relay)
        lossless = all(r["received_one_way"] == r["sent"] and r["received_round_trip"] == r["sent"] for r in relay)
        fig = " / ".join(f"{r['core_pct_per_call']:.4f}" for r in relay)
        sizes = " / ".join(f"{r['calls']:,}" for r in relay)
        out.append(f"| relay ≤ 0.05 % of a core per call at every size, 0 loss | {fig} % at {sizes} calls; "
                   f"{'0 loss' if lossless else 'loss'} | {yes(worst <= 0.05 and lossless)} |")
    else:
        out.append("| relay ≤ 0.05 % of a core per call, 0 loss | not measured | — |")
    if memory:
        b = memory["bytes_per_call_after_first_chunk"]
        out.append(f"| RSS growth ≤ 1 KB per call after warm-up | {b:+,.0f} bytes per call over {memory['total']:,} calls | "
                   f"{yes(b <= 1024)} |")
    else:
        out.append("| RSS growth ≤ 1 KB per call after warm-up | not measured | — |")
    mine, theirs = lat.get("switchboard", {}).get(500), lat.get("kamailio", {}).get(500)
    if mine:
        k = f"; Kamailio {theirs[0]:.3f} / {theirs[1]:.3f} ms" if theirs else "; Kamailio not measured"
        out.append(f"| setup latency (trunk INVITE in → agent INVITE out) p50 / p99 at 500 calls/s, with Kamailio's | "
                   f"{mine[0]:.3f} / {mine[1]:.3f} ms ({mine[2]:,} of {mine[3]:,} INVITEs paired){k} | "
                   f"{'measured' if theirs else '—'} |")
    else:
        out.append("| setup latency p50 / p99 at 500 calls/s | not measured | — |")
    return out


def tool_version(argv, pattern):
    try:
        out = subprocess.run(argv, capture_output=True, timeout=10, text=True)
        m = re.search(pattern, out.stdout + out.stderr)
        return m.group(1) if m else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def write_results(out_dir, rows, relay, memory, lat, meta, tuned):
    """Writes load.csv, relay.csv, memory.json, load.svg and results.md from what has been
    measured so far: called after every phase, so a crash or a kill keeps the finished ones."""
    for r in rows:
        by_rate = lat.get(r["system"], {}) if r["db"] in ("sqlite", "-") and r["series"] == "zero" else {}
        if r["offered_cps"] in by_rate:
            r["lat_p50_ms"], r["lat_p99_ms"] = by_rate[r["offered_cps"]][0], by_rate[r["offered_cps"]][1]

    def zero_rows(system):
        return [r for r in rows if r["system"] == system and r["db"] in ("sqlite", "-") and r["series"] == "zero"]

    def compare(system):
        """(max clean CPS, kamailio's, cpu/1k of both at the highest rate clean for both)."""
        mine, kams = zero_rows(system), zero_rows("kamailio")
        x = max((r["achieved_cps"] for r in mine if clean(r)), default=0)
        y = max((r["achieved_cps"] for r in kams if clean(r)), default=0)
        kam_clean = {r["offered_cps"]: r for r in kams if clean(r)}
        both = [r for r in mine if clean(r) and r["offered_cps"] in kam_clean]
        a = b = 0.0
        at = None
        if both:
            top = max(both, key=lambda r: r["offered_cps"])
            at, a, b = top["offered_cps"], top["cpu_s_per_1k"], kam_clean[top["offered_cps"]]["cpu_s_per_1k"]
        return x, y, a, b, at

    lines = []
    for system in (f"switchboard t1={tuned}ms", "switchboard"):
        x, y, a, b, at = compare(system)
        ratio = x / y if y else float("nan")
        prefix = "load:" if system == "switchboard" else f"load ({system}):"
        lines.append((f"{prefix} max clean CPS switchboard={x:.0f} kamailio={y:.0f} ratio={ratio:.2f}; "
                      f"cpu/1k switchboard={a:.3f} kamailio={b:.3f}", at))
    summary, at = lines[-1]
    both = at is not None
    if both:
        summary_note = f"(CPU compared at {at} calls/s, the highest rate clean for both)"
    else:
        summary_note = "(no rate was clean for both systems)"
    meta["load_end"] = loadavg()
    fields = ["system", "db", "series", "hold_ms", "offered_cps", "calls", "successful", "failed", "retransmissions",
              "achieved_cps", "cpu_s", "cpu_s_per_1k", "peak_rss_mb", "rss_drained_mb", "server_ended", "server_answered",
              "agents_failed", "agent_invite_retrans", "sip_socket_drops", "sipp_socket_drops", "sip_queue_drops", *RTP_FIELDS,
              "lat_p50_ms", "lat_p99_ms", "postgres_cpu_s", "loadavg_start", "loadavg"]
    with open(os.path.join(out_dir, "load.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    if relay:
        with open(os.path.join(out_dir, "relay.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(relay[0].keys()))
            w.writeheader()
            w.writerows(relay)
    if memory:
        with open(os.path.join(out_dir, "memory.json"), "w") as f:
            json.dump(memory, f, indent=1)
    svg_chart(rows, os.path.join(out_dir, "load.svg"))
    md = markdown(rows, relay, memory, lat, "\n".join(l for l, _ in lines), meta)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md + "\n" + summary_note + "\n")
    return md, lines, summary_note


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small figures, under 3 minutes; proves the harness works")
    ap.add_argument("--binary", required=True)
    ap.add_argument("--probe", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp statistics)")
    ap.add_argument("--only", default="sb,tuned,kam,pg,mem,relay,lat,perf", help="comma list of phases")
    ap.add_argument("--rates", help="comma list: the zero-length series' offered rates instead of the mode's ('none': no such series)")
    ap.add_argument("--hold-rates", help="comma list: the held-call series' offered rates instead of the mode's ('none': no such series)")
    ap.add_argument("--perf-dir", help="perf record -g (dwarf) of Switchboard during every step, one .data file per step here")
    args = ap.parse_args()
    args.binary, args.probe = os.path.abspath(args.binary), os.path.abspath(args.probe)
    cfg = dict(QUICK if args.quick else FULL)
    # "none" leaves a series out (e.g. --hold-rates none for the zero-length steps alone).
    if args.rates:
        cfg["rates"] = [] if args.rates == "none" else [int(r) for r in args.rates.split(",")]
    if args.hold_rates:
        cfg["hold_rates"] = [] if args.hold_rates == "none" else [int(r) for r in args.hold_rates.split(",")]
    global PERF_DIR
    if args.perf_dir:
        PERF_DIR = os.path.abspath(args.perf_dir)
        os.makedirs(PERF_DIR, exist_ok=True)
    global COOLDOWN_CAP_S
    COOLDOWN_CAP_S = cfg["cooldown_cap_s"]
    phases = set(args.only.split(","))
    if args.quick:
        phases.discard("perf")
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sb-load-")
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "mode": "quick" if args.quick else "full",
        "cores": os.cpu_count(), "load_start": loadavg(), "agents": cfg["agents"],
        "rust_log": os.environ.get("LOAD_RUST_LOG", "warn"),
        "kamailio": tool_version(["kamailio", "-v"], r"version:\s*kamailio\s+(\S+)"),
        "sipp": tool_version(["sipp", "-v"], r"SIPp\s+v?(\S+)"),
    }
    log(f"work dir {work}; load average {meta['load_start']:.2f}; mode {meta['mode']}")
    rows, relay, memory, lat = [], [], None, {}
    tuned = cfg["tuned_t1_ms"]
    t_start = time.time()

    def checkpoint():
        # `memory` is assigned later in this function: read it from the enclosing scope.
        write_results(args.out, rows, relay, memory, lat, meta, tuned)
        log(f"results so far written to {args.out}")

    try:
        # Switchboard as shipped (RFC 3261 T1 = 500 ms), then with a loopback-sized T1 so that
        # finished transactions leave the transaction table 20x sooner (what the rest of the
        # server sustains). Each series runs on a fresh server: calls left behind by a collapsed
        # step (a BYE refused with 503 leaves its call up) would poison the next series.
        for phase, t1, lat_rates in (("sb", None, cfg["latency_rates_default"]), ("tuned", tuned, cfg["latency_rates"])):
            if phase not in phases:
                continue
            for series in ("zero", "hold"):
                if not cfg["rates" if series == "zero" else "hold_rates"]:
                    continue
                sb = Switchboard(args.binary, work, cfg["agents"], tag=f"{phase}-{series}", t1_ms=t1)
                try:
                    sb.register()
                    if series == "hold":
                        # RTP both ways through every held call: the probe's two ports are
                        # the media address of the trunk's offer and of the agents' answer.
                        sb.rtp = {"probe": args.probe, "trunk": free_port(2), "agent": free_port(2)}
                        sb.start_agents(agent_media=sb.rtp["agent"], ring_ms=RTP_RING_MS)
                    else:
                        sb.start_agents()
                    if series == "zero" and "lat" in phases:
                        lat[sb.name] = latency_pass(sb, sb.work, lat_rates, cfg["latency_s"])
                    cps_series(sb, sb.work, "sqlite", cfg, rows, only=(series,))
                finally:
                    sb.stop()
                    checkpoint()
        if "kam" in phases:
            kam = Kamailio(work)
            try:
                if "lat" in phases:
                    lat[kam.name] = latency_pass(kam, kam.work, cfg["latency_rates"], cfg["latency_s"])
                cps_series(kam, kam.work, "-", cfg, rows)
            finally:
                kam.stop()
                checkpoint()
        if "pg" in phases:
            pg = Postgres(work)
            try:
                sb = Switchboard(args.binary, work, cfg["agents"], db_url=pg.url, tag="sb-pg", t1_ms=tuned)
                try:
                    sb.register()
                    sb.start_agents()
                    for rate in cfg["pg_rates"]:
                        pg_cpu0 = cpu_seconds(pg.pids())
                        row = run_step(sb, sb.work, "zero", "postgres", rate, cfg["step_s"], 0)
                        row["postgres_cpu_s"] = round(cpu_seconds(pg.pids()) - pg_cpu0, 2)
                        rows.append(row)
                        time.sleep(sb.cooldown_s)
                        if row["failed"] > 0.1 * row["calls"]:
                            break
                finally:
                    sb.stop()
            finally:
                pg.stop()
                checkpoint()
        if "mem" in phases:
            memory = memory_check(args.binary, work, cfg, tuned)
            checkpoint()
        if "relay" in phases:
            try:
                relay_series(args.binary, args.probe, work, cfg, relay)
            finally:
                checkpoint()
        if "perf" in phases:
            perf_profile(args.binary, work, cfg, tuned, args.out)
    except Exception:
        log(f"FAILED; logs kept in {work}")
        raise

    md, lines, summary_note = write_results(args.out, rows, relay, memory, lat, meta, tuned)
    print()
    print(md)
    log(f"wrote {args.out}/load.csv, load.svg, results.md in {time.time() - t_start:.0f} s {summary_note}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    for line, _ in lines:
        print(line)


if __name__ == "__main__":
    sys.exit(main())
