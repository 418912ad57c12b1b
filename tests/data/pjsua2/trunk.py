#!/usr/bin/env python3
"""A PBX trunk played by PJSUA2 (PJSIP): one call into Switchboard with session timers and
100rel required, audio from a WAV, then media changes a PBX makes mid-call: a re-INVITE that
moves its RTP port, hold (a=sendonly) and resume, an UPDATE with a new offer. After every
change it measures the RTP it sent and received (PJSIP's own stream counters) and prints
one JSON line per phase, then the call's end.

usage: trunk.py SERVER_HOST SERVER_PORT LOCAL_PORT DID CALLER WAV [PHASE_SECONDS]
"""
import sys
import time

import pjsua2 as pj

from common import out, start_endpoint, stop

host, port, local_port, did, caller, wav = sys.argv[1:7]
phase_s = float(sys.argv[7]) if len(sys.argv) > 7 else 2.0


class Call(pj.Call):
    def __init__(self, acc):
        super().__init__(acc)
        self.state = None
        self.player = None
        self.media_changes = 0

    def onCallState(self, prm):
        ci = self.getInfo()
        self.state = ci.state
        out(event="state", state=ci.stateText, last_status=ci.lastStatusCode)

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, m in enumerate(ci.media):
            if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                am = self.getAudioMedia(i)
                if self.player is None:
                    self.player = pj.AudioMediaPlayer()
                    self.player.createPlayer(wav, 0)  # loops
                self.player.startTransmit(am)
        self.media_changes += 1

    def counts(self):
        st = self.getStreamStat(0)
        return st.rtcp.txStat.pkt, st.rtcp.rxStat.pkt

    def local_rtp_port(self):
        info = self.getMedTransportInfo(0)
        return info.localRtpName


ep = start_endpoint(local_port, no_vad=True)
for codec in ep.codecEnum2():
    prio = 255 if codec.codecId.startswith("PCMA/") or codec.codecId.startswith("PCMU/") else 0
    ep.codecSetPriority(codec.codecId, prio)

acfg = pj.AccountConfig()
acfg.idUri = f"sip:{caller}@127.0.0.1:{local_port}"
acfg.regConfig.registrarUri = ""
acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_REQUIRED
acfg.callConfig.timerSessExpiresSec = 120
acfg.callConfig.timerMinSESec = 90
acfg.callConfig.prackUse = pj.PJSUA_100REL_MANDATORY
acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
acc = pj.Account()
acc.create(acfg)


def pump(seconds):
    end = time.time() + seconds
    while time.time() < end:
        ep.libHandleEvents(20)


call = Call(acc)
prm = pj.CallOpParam(True)
call.makeCall(f"sip:{did}@{host}:{port}", prm)
deadline = time.time() + 10
while call.state != pj.PJSIP_INV_STATE_CONFIRMED and time.time() < deadline:
    ep.libHandleEvents(20)
    if call.state == pj.PJSIP_INV_STATE_DISCONNECTED:
        break

ok = call.state == pj.PJSIP_INV_STATE_CONFIRMED
if ok:
    last = (0, 0)

    def phase(name):
        global last
        pump(phase_s)
        tx, rx = call.counts()
        out(event="phase", phase=name, tx=tx - last[0], rx=rx - last[1],
            rtp=call.local_rtp_port())
        last = (tx, rx)

    def change(name, action):
        """A media change, then the next phase is counted from its settled state."""
        global last
        action()
        pump(0.5)
        last = call.counts()
        phase(name)

    def op(flag):
        p = pj.CallOpParam(True)
        p.opt.flag = flag
        return p

    phase("answered")
    change("reinvite_moved", lambda: call.reinvite(op(pj.PJSUA_CALL_REINIT_MEDIA)))
    change("held", lambda: call.setHold(pj.CallOpParam(True)))
    change("resumed", lambda: call.reinvite(op(pj.PJSUA_CALL_UNHOLD)))
    change("update_moved", lambda: call.update(op(pj.PJSUA_CALL_REINIT_MEDIA)))
    call.hangup(pj.CallOpParam(True))
    pump(1.0)

out(event="end", confirmed=ok, media_changes=call.media_changes)
keep = [call, acc]
del call, acc
stop(ep, keep)
