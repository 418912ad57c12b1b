#!/usr/bin/env python3
"""Switchboard load benchmark: calls per second through the queue, CPU and memory per call,
side by side with Kamailio (a stateful tm + record_route relay) in the same run.

Run through benches/load/run.sh, which installs the peers and builds the binaries. Every
process runs under `timeout`, every SIPp run is bounded by -m, and everything is on 127.0.0.1.
Standard library only, so it runs on a fresh machine with any Python 3. This file runs the
steps and series; procs.py (ports, processes, /proc, SIPp), systems.py (Switchboard, Kamailio,
PostgreSQL), rtp.py (the RTP probe in the held-call steps) and report.py (results files and
the goals table) beside it.
"""

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

# The harness's own modules sit beside this file; leave no bytecode cache in the source tree.
sys.dont_write_bytecode = True
import procs  # noqa: E402
import systems  # noqa: E402
from procs import (  # noqa: E402
    Proc, achieved_rate, agent_failed, agent_invite_retrans, cpu_seconds, free_port, loadavg, log, memory_mb,
    metric_by_label, metric_sum, sipp_trunk, socket_inodes, udp_drops,
)
from report import fmt, tool_version, write_results  # noqa: E402
from rtp import RTP_INTERVAL_MS, RTP_RING_MS, rtp_columns, rtp_probe_finish, rtp_probe_start  # noqa: E402
from systems import Kamailio, Postgres, Switchboard  # noqa: E402

# --perf-dir: every Switchboard step is recorded with perf into this directory (see main()).
PERF_DIR = None
PERF_CALL_GRAPH = "dwarf,16384"


FULL = {
    "agents": 3000,
    # The held-call series: 2,000 two-second calls/s keep 4,000 agents talking at once (plus
    # the ones ringing); with fewer, callers wait in the queue and the step measures the queue.
    "hold_agents": 5000,
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
    # CPU is read over this window: 10 s keeps one tick of /proc's 10-ms resolution, and a
    # short burst of something else on the box, small against the figure.
    "relay_window_s": 10,
    "perf_rate": 1000,
}
QUICK = {
    "agents": 200,
    "hold_agents": 200,
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

# ---- one step -----------------------------------------------------------------------------


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

    t = threading.Thread(target=trunk)
    t.start()
    while t.is_alive():
        peak.append(memory_mb(pids))
        loads.append(loadavg())
        # The trunk SIPp's socket lives for the step only: its highest count seen, sampled every
        # 2 s (/proc/net/udp lists every RTP socket of the server: reading it is not free).
        if len(loads) % 8 == 0:
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
    agent_sipp_drops = (udp_drops(sut.agent_port) or 0) - uas_drops0
    trunk_sipp_drops = max(trunk_drops)
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
        "sipp_agent_socket_drops": agent_sipp_drops,
        "sipp_trunk_socket_drops": trunk_sipp_drops,
        "agent_invite_retrans": invite_re,
        # The 1-minute load average at the start and the highest seen while the step ran.
        "loadavg_start": la0,
        "loadavg": max(loads),
        "lat_p50_ms": "",
        "lat_p99_ms": "",
        **rtp_columns(rtp_res, st["successful"], active, (getattr(sut, "rtp", None) or {}).get("interval_ms")),
    }
    log(
        f"{sut.name:22} {db:8} {series:5} {rate:5}/s: ok {row['successful']:6} failed {row['failed']:4} "
        f"retrans {row['retransmissions']:5} achieved {row['achieved_cps']:7.1f}/s cpu {row['cpu_s']:6.2f}s "
        f"({row['cpu_s_per_1k']:.3f}/1k) peak {row['peak_rss_mb']:.0f} MB drained {row['rss_drained_mb']:.0f} MB "
        f"agents failed {agents_failed if agents_failed != '' else '-'} SIP socket drops {fmt(sip_drops)} "
        f"(SIPp's: agents {agent_sipp_drops}, trunk {trunk_sipp_drops}) queue drops {fmt(queue_drops)} INVITE retrans at agents {fmt(invite_re)} load {la0:.2f}->{max(loads):.2f}"
    )
    if rtp_res is not None:
        log(f"{'':22} RTP: {row['rtp_calls']} calls learned, {row['rtp_calls_both_ways']} with media both ways "
            f"({row['rtp_calls_every_packet']} every packet, {row['rtp_calls_first_lost']} lost the first); to agent {row['rtp_received_at_agent']}/"
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
    ap.add_argument("--rtp-interval-ms", type=int, default=RTP_INTERVAL_MS,
                    help=f"RTP in the held-call steps: one packet each way per call every N ms (default "
                         f"{RTP_INTERVAL_MS}; 0: no RTP, the agents answer at once)")
    ap.add_argument("--perf-dir", help="perf record -g (dwarf) of Switchboard during every step, one .data file per step here")
    args = ap.parse_args()
    procs.CALLDEBUG = args.keep
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
    systems.COOLDOWN_CAP_S = cfg["cooldown_cap_s"]
    phases = set(args.only.split(","))
    if args.quick:
        phases.discard("perf")
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sb-load-")
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "mode": "quick" if args.quick else "full",
        "cores": os.cpu_count(), "load_start": loadavg(), "agents": cfg["agents"],
        "hold_agents": cfg["hold_agents"],
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
                agents = cfg["agents" if series == "zero" else "hold_agents"]
                sb = Switchboard(args.binary, work, agents, tag=f"{phase}-{series}", t1_ms=t1)
                try:
                    sb.register()
                    if series == "hold" and args.rtp_interval_ms > 0:
                        # RTP both ways through every held call: the probe's two ports are
                        # the media address of the trunk's offer and of the agents' answer.
                        sb.rtp = {"probe": args.probe, "trunk": free_port(2), "agent": free_port(2),
                                  "interval_ms": args.rtp_interval_ms}
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

