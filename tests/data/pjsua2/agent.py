#!/usr/bin/env python3
"""An agent softphone played by PJSUA2 (PJSIP) that registers with digest and answers every
call with a fixed status (486 Busy Here by default), printing one JSON line per call.

usage: agent.py SERVER_HOST SERVER_PORT LOCAL_PORT AGENT PASSWORD SECONDS [STATUS]
"""
import sys
import time

import pjsua2 as pj

from common import out, start_endpoint, stop

host, port, local_port, agent, password, seconds = sys.argv[1:7]
status = int(sys.argv[7]) if len(sys.argv) > 7 else 486


calls = []


class Call(pj.Call):
    def onCallState(self, prm):
        ci = self.getInfo()
        out(event="call_state", state=ci.stateText, last_status=ci.lastStatusCode)


class Account(pj.Account):
    def onRegState(self, prm):
        out(event="registered", code=prm.code)

    def onIncomingCall(self, prm):
        call = Call(self, prm.callId)
        calls.append(call)
        out(event="incoming", call_id=call.getInfo().callIdString)
        op = pj.CallOpParam(True)
        op.statusCode = status
        call.answer(op)


ep = start_endpoint(local_port)

acfg = pj.AccountConfig()
acfg.idUri = f"sip:{agent}@{host}:{port}"
acfg.regConfig.registrarUri = f"sip:{host}:{port}"
acfg.regConfig.timeoutSec = 300
acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", agent, 0, password))
acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
acc = Account()
acc.create(acfg)

end = time.time() + float(seconds)
while time.time() < end:
    ep.libHandleEvents(20)

out(event="end", calls=len(calls))
keep = calls + [acc]
calls.clear()
del acc
stop(ep, keep)
