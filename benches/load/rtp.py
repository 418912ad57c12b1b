"""RTP through the held calls of the load benchmark: the rtpprobe in per-call mode for one
step, and the step's RTP columns."""

import json
import subprocess

from procs import Proc

# RTP in the held-call series: a packet each way every RTP_INTERVAL_MS per call (2.5 per
# second each way, a 20th of G.711's 50; --rtp-interval-ms), from RTP_START_MS after the
# call's hold music began: 3 packets each way in a 2-s call (benches/README.md says why).
RTP_INTERVAL_MS = 400
RTP_START_MS = 500
# The probe learns a call from the first hold-music packet Switchboard sends the caller; an agent
# answering at once can be bridged before the first one (1-2.4 % of the calls at 500-1,000/s), so in
# the steps with RTP the agents ring this long before answering.
RTP_RING_MS = 60
RTP_FIELDS = ["rtp_interval_ms", "rtp_calls", "rtp_calls_both_ways", "rtp_calls_every_packet", "rtp_calls_without",
              "rtp_calls_first_lost",
              "rtp_sent_to_agent", "rtp_received_at_agent", "rtp_sent_to_trunk", "rtp_received_at_trunk",
              "rtp_loss_to_agent_pct", "rtp_loss_to_trunk_pct", "rtp_relayed_pps", "rtp_probe_drops",
              "rtp_transit_p99_ms"]


def rtp_probe_start(sut, work, tag, hold_ms):
    """The RTP probe in per-call mode for one held-call step (None when the server has no probe
    ports): each call it learns gets a packet each way every rtp["interval_ms"] from RTP_START_MS
    after its hold music began until three quarters of the hold (the call is still up then)."""
    rtp = getattr(sut, "rtp", None)
    if not rtp or hold_ms <= 0:
        return None
    call_ms = hold_ms * 3 // 4
    return Proc(
        [rtp["probe"], "--trunk-port", str(rtp["trunk"]), "--agent-port", str(rtp["agent"]),
         "--call-ms", str(call_ms), "--start-ms", str(RTP_START_MS), "--interval-ms", str(rtp["interval_ms"]),
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


def rtp_columns(res, successful, active_s, interval_ms):
    """The step's RTP columns from the probe's totals."""
    if res is None:
        return {k: "" for k in RTP_FIELDS}
    loss = lambda got, sent: round((1 - got / sent) * 100, 3) if sent else ""
    return {
        "rtp_interval_ms": interval_ms,
        "rtp_calls": res["calls"],
        "rtp_calls_both_ways": res["calls_media_both_ways"],
        "rtp_calls_every_packet": res["calls_every_packet"],
        "rtp_calls_without": max(successful - res["calls_media_both_ways"], 0),
        "rtp_calls_first_lost": res.get("calls_first_packet_lost", ""),
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
