#!/usr/bin/env python3
"""Full-server CPU per WebRTC call: N browser agents (aiortc over SIP on WebSocket, the
`tests/data/ws/ws_agent.py` of the integration tests) each answer one SIPp trunk call; once all
N calls are bridged, Switchboard's own CPU time (utime + stime from /proc/PID/stat) is read
over a steady window and divided by the calls and the window: the share of a core one call
costs, ICE-lite, DTLS-SRTP, the leg's loopback hop to the relay and the relay itself included.

Media in the window: each browser sends a 440 Hz tone (50 packets/s, SRTP) through its WebRTC
leg and the relay to the trunk, whose SIPp echoes every packet back (`-rtp_echo`) through the
relay and the leg to the browser: 50 packets/s each way per call, as in the RTP relay series
of `benches/load` (100 relayed packets/s per call).

The plain relay figure to set it beside comes from the load bench's relay series (SIPp
phones, `rtpprobe`, the same 100 relayed packets/s per call); on a shared machine run both in
one session, back to back:

    python3 benches/webrtc_cpu.py --binary target/release/switchboard --calls 10
    python3 benches/load/load.py --only relay --binary target/release/switchboard \
        --probe target/load-tools/release/rtpprobe --out target/webrtc-cpu-relay

Prints the result (JSON) and a Markdown table row. Needs sipp, python3 with
aiortc and websockets (PyPI). Every process runs under `timeout`; everything is on 127.0.0.1.
The load generator (aiortc is Python) costs far more CPU than the server; its CPU is printed
too, so a run on a machine without room for it can be recognised.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "load"))

import load  # noqa: E402  (ports, processes, /proc CPU, the load bench's configuration)

AGENT = os.path.join(ROOT, "tests", "data", "ws", "ws_agent.py")
TOKEN = "load-bench"


def api(port, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def metrics(port):
    return load.http_get(f"http://127.0.0.1:{port}/metrics")[1]


def wait(what, cond, limit_s):
    deadline = time.time() + limit_s
    while time.time() < deadline:
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def commit():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(args, work):
    n = args.calls
    sip, http, ws = load.free_port(), load.free_port(), load.free_port()
    config = load.switchboard_config(sip, http, n, "sqlite://switchboard.db").replace(
        f'listen = ["udp:127.0.0.1:{sip}"]',
        f'listen = ["udp:127.0.0.1:{sip}", "ws:127.0.0.1:{ws}"]')
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "bench.toml")
    with open(cfg, "w") as f:
        f.write(config)
    env = dict(os.environ, RUST_LOG="warn")
    budget = args.setup_s + args.window_s + 60
    sb = load.Proc([args.binary, "--config", cfg], budget + 30, work, "switchboard", env=env)
    agents, trunk = [], None
    try:
        wait("/readyz", lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{http}/readyz", timeout=2).status == 200, 30)
        for i in range(1, n + 1):
            argv = ["python3", AGENT, "--url", f"ws://127.0.0.1:{ws}", "--agent", f"a{i:05}",
                    "--password", f"pw{i:05}", "--answer", "--timeout", str(budget)]
            agents.append(load.Proc(argv, budget + 20, work, f"agent-{i}"))
        wait(f"{n} registrations", lambda: load.metric_sum(
            metrics(http), "switchboard_registrations") >= n, 60)
        media = load.free_port(2)
        hold_ms = int((args.setup_s + args.window_s + 3) * 1000)
        trunk = load.Proc(
            ["sipp", f"127.0.0.1:{sip}", "-sf", os.path.join(HERE, "load", "sipp", "trunk.xml"),
             "-s", "100", "-i", "127.0.0.1", "-p", str(load.free_port()),
             "-mi", "127.0.0.1", "-mp", str(media), "-key", "trunk_media", str(media),
             "-rtp_echo", "-r", str(args.rate), "-m", str(n), "-l", str(n), "-d", str(hold_ms),
             "-recv_timeout", "20000", "-timeout", f"{int(budget)}s", "-nostdin"],
            budget + 20, work, "trunk")

        def bridged():
            calls = api(http, "/api/v1/calls/active")
            return sum(1 for c in calls if c.get("agent_media") == "webrtc")

        wait(f"{n} bridged calls", lambda: bridged() >= n, args.setup_s + 30)
        time.sleep(2)  # ICE, DTLS and the first packets settle
        rtp0 = load.metric_by_label(metrics(http), "switchboard_rtp_packets_total", "direction")
        legs0 = load.metric_sum(metrics(http), "switchboard_webrtc_sessions")
        la0 = load.loadavg()
        gen0 = load.cpu_seconds([a.pid for a in agents if a.pid] + [trunk.pid])
        cpu0, t0 = load.cpu_seconds([sb.pid]), time.time()
        time.sleep(args.window_s)
        cpu1, t1 = load.cpu_seconds([sb.pid]), time.time()
        gen1 = load.cpu_seconds([a.pid for a in agents if a.pid] + [trunk.pid])
        la1 = load.loadavg()
        rtp1 = load.metric_by_label(metrics(http), "switchboard_rtp_packets_total", "direction")
        still = bridged()
        window = t1 - t0
        # Packets the relay took in (from the trunk and from the WebRTC legs) and passed on.
        relayed = rtp1.get("in", 0) - rtp0.get("in", 0)
        cpu = cpu1 - cpu0
        return {
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0)),
            "commit": commit(),
            "binary": args.binary,
            "calls": n,
            "bridged_after_window": still,
            "webrtc_legs": legs0,
            "window_s": round(window, 2),
            "server_cpu_s": round(cpu, 3),
            "percent_core_per_call": round(100 * cpu / window / n, 4),
            "relay_packets_per_s": round(relayed / window),
            "generator_cpu_s": round(gen1 - gen0, 2),
            "load_avg": [la0, la1],
        }
    finally:
        for p in ([trunk] if trunk else []) + agents + [sb]:
            p.stop(grace=5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "switchboard"))
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--rate", type=int, default=5, help="call set-up rate (calls/s)")
    ap.add_argument("--window-s", type=float, default=10)
    ap.add_argument("--out", help="work directory (logs); a temporary one by default")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    args.setup_s = args.calls / args.rate + 5
    work = args.out or tempfile.mkdtemp(prefix="webrtc-cpu-")
    r = run(args, work)
    print(json.dumps(r), flush=True)
    print("| WebRTC calls | relayed pkt/s | server CPU s (window) | % of a core per call "
          "| generator CPU s | load avg | date | commit |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {r['calls']} | {r['relay_packets_per_s']} "
          f"| {r['server_cpu_s']} / {r['window_s']} s | {r['percent_core_per_call']} % "
          f"| {r['generator_cpu_s']} | {r['load_avg'][0]}–{r['load_avg'][1]} "
          f"| {r['date']} | {r['commit']} |")


if __name__ == "__main__":
    main()
