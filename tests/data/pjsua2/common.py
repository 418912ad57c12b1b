"""What both PJSUA2 peers share: a PJSIP endpoint on one loopback UDP port with the null
audio device, polled from the main thread, and its orderly teardown (PJSUA2 asserts when
objects outlive the library)."""
import gc
import json

import pjsua2 as pj


def out(**kw):
    """One JSON line on stdout: the test reads these."""
    print(json.dumps(kw), flush=True)


def start_endpoint(local_port, no_vad=False):
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = 3
    cfg.logConfig.consoleLevel = 3
    cfg.medConfig.noVad = no_vad
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = int(local_port)
    tcfg.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    return ep


def stop(ep, keep):
    """Hangs up, shuts the accounts down, drops every PJSUA2 object in `keep` (the script
    deleted its own names for them) and destroys the library."""
    ep.hangupAllCalls()
    ep.libHandleEvents(200)
    for obj in keep:
        if isinstance(obj, pj.Account):
            obj.shutdown()
    keep.clear()
    gc.collect()
    ep.libDestroy()
