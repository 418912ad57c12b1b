"""Ports, processes, /proc readers and the SIPp runs of the load benchmark (load.py)."""

import csv
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SIPP_DIR = os.path.join(HERE, "sipp")
CLK_TCK = os.sysconf("SC_CLK_TCK")
BUFF = str(8 * 1024 * 1024)  # SIPp socket buffers (capped by net.core.rmem_max/wmem_max)


# `--keep` sets this: SIPp then keeps every call's messages in memory and writes those of each
# call it aborts (`*-calldebug.log`). Not free: SIPp copies every message it sends or receives
# into the call's buffer, and at 3,000 calls/s that starved the trunk SIPp (its socket dropped
# 53,000 datagrams, and Kamailio's run failed the same way).
CALLDEBUG = False


def calldebug(work, name):
    """SIPp's options for the messages of aborted calls, when `--keep` asked for them."""
    if not CALLDEBUG:
        return []
    return ["-trace_calldebug", "-calldebug_file", os.path.join(work, f"{name}-calldebug.log")]

def log(msg):
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# ---- ports and processes ----------------------------------------------------------------

_taken = set()


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
        # Per scenario line counts (agent_uas_PID_counts.csv): how many INVITE retransmissions
        # the server sent after the agent's 200 (absorbed by the scenario's global INVITE line).
        "-trace_counts",
    ]
    argv += calldebug(work, f"uas-{port}")
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
    ] + calldebug(work, f"trunk-{tag}")
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
