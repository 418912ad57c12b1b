"""The load benchmark's output: clean steps, load.csv, relay.csv, memory.json, load.svg and
results.md with the goals table of issue #20."""

import csv
import json
import os
import re
import subprocess

from procs import loadavg
from rtp import RTP_FIELDS, RTP_START_MS

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
           f"{meta['load_start']:.2f}, at end {meta['load_end']:.2f}; {meta['agents']} agents "
           f"({meta.get('hold_agents', meta['agents'])} in the held-call steps); "
           f"Switchboard `RUST_LOG={meta['rust_log']}`; Kamailio {meta['kamailio']}; SIPp {meta['sipp']}.", ""]
    out.append("| system | CDRs | call length | offered/s | achieved/s | ok | failed | failed at the agents | server answered | retrans | "
               "INVITE retrans at the agents | SIP socket drops (agents' / trunk's SIPp) | inbound queue drops | CPU s/1k calls | "
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
            f"{fmt(r.get('agent_invite_retrans'))} | {fmt(r.get('sip_socket_drops'))} "
            f"({fmt(r.get('sipp_agent_socket_drops'))} / {fmt(r.get('sipp_trunk_socket_drops'))}) | "
            f"{fmt(r.get('sip_queue_drops'))} | "
            f"{r['cpu_s_per_1k']:.3f} | {r['peak_rss_mb']:.0f} | "
            f"{r['rss_drained_mb']:.0f} | {lat} | {ratio_cps} | {ratio_cpu} | {r['loadavg']:.1f} |"
        )
    with_rtp = [r for r in rows if r.get("rtp_calls", "") != ""]
    if with_rtp:
        out += ["", f"RTP in the held-call steps (every call learned from its hold music gets a packet each way every "
                f"{with_rtp[0]['rtp_interval_ms']} ms from {RTP_START_MS} ms after its music began until three quarters "
                f"of the hold):", "",
                "| system | offered/s | ok | calls with RTP | media both ways | every packet both ways | ok calls without media | "
                "calls whose first packet to the agent was lost | "
                "to the agent: received / sent (loss) | back to the trunk: received / sent (loss) | relayed pkt/s | "
                "transit p99 ms | probe's own socket drops |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in with_rtp:
            out.append(
                f"| {r['system']} | {r['offered_cps']} | {r['successful']} | {r['rtp_calls']} | {r['rtp_calls_both_ways']} | "
                f"{r['rtp_calls_every_packet']} | {r['rtp_calls_without']} | {fmt(r.get('rtp_calls_first_lost'))} | "
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
        # The measure is the relay at 1,000 calls; every size is shown beside it.
        at = next((r for r in relay if r["calls"] == 1000), relay[-1])
        lossless = all(r["received_one_way"] == r["sent"] and r["received_round_trip"] == r["sent"] for r in relay)
        fig = " / ".join(f"{r['core_pct_per_call']:.4f}" for r in relay)
        sizes = " / ".join(f"{r['calls']:,}" for r in relay)
        out.append(f"| relay ≤ 0.05 % of a core per call at 1,000 calls, 0 loss | {at['core_pct_per_call']:.4f} % at "
                   f"{at['calls']:,} calls ({fig} % at {sizes} calls); {'0 loss at every size' if lossless else 'loss'} | "
                   f"{yes(at['core_pct_per_call'] <= 0.05 and lossless)} |")
    else:
        out.append("| relay ≤ 0.05 % of a core per call at 1,000 calls, 0 loss | not measured | — |")
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
              "agents_failed", "agent_invite_retrans", "sip_socket_drops", "sipp_agent_socket_drops", "sipp_trunk_socket_drops", "sip_queue_drops", *RTP_FIELDS,
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
