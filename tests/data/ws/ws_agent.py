#!/usr/bin/env python3
"""An agent phone that speaks SIP over WebSocket (RFC 7118) the way JsSIP does.

It connects with the `sip` subprotocol, REGISTERs with a JsSIP-style contact (a random
`.invalid` host, `transport=ws`, `reg-id` and `+sip.instance`, RFC 5626) answering the digest
challenge, and then, with --answer, answers the INVITE that arrives down the same socket.
A WebRTC offer (UDP/TLS/RTP/SAVPF) is answered by aiortc, a real WebRTC stack: ICE against
the server's ICE-lite candidate, DTLS (we are the active side), SRTP with a 440 Hz tone sent
and the server's audio received and counted. With --plain-rtp the agent answers any offer
with plain RTP/AVP PCMU instead (a SIP phone on WebSocket that is not a browser). The call
ends by the caller's BYE or, with --hangup-after S, by ours. Every step is printed as one
line on stdout (REGISTERED, INVITE, ANSWERED, DTLS ..., BYE ..., RTP-IN n, RTP-OUT n,
CLOSED) for the Rust test to check. With --close-after-register it closes the
socket right after registering, so the test can see the binding go with the connection.

Forking and re-INVITEs: with --ring-only it rings and never answers, so the test sees the
CANCEL another contact's answer brings (CANCELLED); --answer-delay S answers S seconds after
the INVITE. The OFFER line names the offer's ICE ufrag and candidate port, so two contacts'
offers can be told apart. --hold-at S / --resume-at S put the call on hold and take it back
S seconds after the answer by re-INVITEs that aiortc itself negotiates (a=sendonly, then
a=sendrecv), printing the answer's direction (REINVITE) and the packets heard while held and
after the resume (HELD-IN, RESUMED-IN); --reinvite-without-sdp-at S sends a re-INVITE
without SDP, answers the server's offer in the ACK (REINVITE-NOSDP) and counts the packets
heard after it (AFTER-NOSDP-IN). --call NUMBER places a call instead (an INVITE with
an aiortc offer, as JsSIP's `ua.call()` sends it) and prints the final response
(CALL-RESULT).
"""

import argparse
import asyncio
import hashlib
import random
import re
import socket
import string
import struct
import sys
import uuid

import websockets


def token(n=10):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def say(*words):
    print(*words, flush=True)


def parse(text):
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers, body


def header(headers, name):
    for n, v in headers:
        if n == name:
            return v
    return None


def all_headers(headers, name):
    return [v for n, v in headers if n == name]


class Agent:
    def __init__(self, args):
        self.args = args
        self.host = token(12) + ".invalid"
        self.user = token(8)
        self.instance = str(uuid.uuid4())
        self.call_id = token(20)
        self.tag = token(10)
        self.cseq = 0
        # CSeq of our last request inside an answered call.
        self.dialog_cseq = 0
        self.ws = None
        self.transport = "wss" if args.url.startswith("wss:") else "ws"

    def via(self):
        return f"SIP/2.0/{self.transport.upper()} {self.host};branch=z9hG4bK{token(12)}"

    def contact(self):
        return (f'<sip:{self.user}@{self.host};transport={self.transport}>;+sip.ice;reg-id=1;'
                f'+sip.instance="<urn:uuid:{self.instance}>";expires=600')

    async def register(self, auth=None):
        self.cseq += 1
        lines = [
            f"REGISTER sip:{self.args.domain} SIP/2.0",
            f"Via: {self.via()}",
            "Max-Forwards: 69",
            f"To: <sip:{self.args.agent}@{self.args.domain}>",
            f"From: <sip:{self.args.agent}@{self.args.domain}>;tag={self.tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: {self.contact()}",
            "Expires: 600",
            "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY",
            "Supported: path,gruu,outbound",
            "User-Agent: ws_agent.py (JsSIP-style)",
        ]
        if auth:
            lines.append(f"Authorization: {auth}")
        lines.append("Content-Length: 0")
        await self.ws.send("\r\n".join(lines) + "\r\n\r\n")

    def digest(self, challenge):
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        realm, nonce = params["realm"], params["nonce"]
        uri = f"sip:{self.args.domain}"
        ha1 = hashlib.md5(f"{self.args.agent}:{realm}:{self.args.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
        cnonce, nc = token(8), "00000001"
        response = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
        return (f'Digest algorithm=MD5, username="{self.args.agent}", realm="{realm}", '
                f'nonce="{nonce}", uri="{uri}", response="{response}", qop=auth, '
                f'cnonce="{cnonce}", nc={nc}{opaque}')

    async def recv(self, timeout):
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(frame, bytes):
            frame = frame.decode()
        return parse(frame)

    async def login(self):
        await self.register()
        while True:
            start, headers, _ = await self.recv(10)
            if start.startswith("SIP/2.0 401"):
                await self.register(self.digest(header(headers, "www-authenticate")))
            elif start.startswith("SIP/2.0 200"):
                say("REGISTERED", " ".join(all_headers(headers, "contact")))
                for tags in all_headers(headers, "require"):
                    say("REQUIRE", tags)
                return
            elif start.startswith("SIP/2.0 1"):
                continue
            else:
                say("REGISTER-FAILED", start)
                sys.exit(1)

    def response(self, headers, status, extra=(), body=""):
        lines = [f"SIP/2.0 {status}"]
        for name in ("via", "record-route"):
            lines += [f"{name.title()}: {v}" for v in all_headers(headers, name)]
        to = header(headers, "to")
        if ";tag=" not in to:
            to += f";tag={self.tag}"
        lines += [f"To: {to}", f"From: {header(headers, 'from')}",
                  f"Call-ID: {header(headers, 'call-id')}", f"CSeq: {header(headers, 'cseq')}"]
        lines += list(extra)
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    async def serve_webrtc_call(self, headers, body):
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from aiortc.mediastreams import AudioStreamTrack
        import fractions
        import math
        import av

        class Tone(AudioStreamTrack):
            """20 ms frames of a 440 Hz tone, 8 kHz mono."""
            def __init__(self):
                super().__init__()
                self.n = 0

            async def recv(self):
                await asyncio.sleep(0.02)
                samples = [int(math.sin(2 * math.pi * 440 * (i + self.n * 160) / 8000.0) * 8000)
                           for i in range(160)]
                self.n += 1
                frame = av.AudioFrame(format="s16", layout="mono", samples=160)
                frame.planes[0].update(struct.pack("<160h", *samples))
                frame.sample_rate = 8000
                frame.pts = (self.n - 1) * 160
                frame.time_base = fractions.Fraction(1, 8000)
                return frame

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(Tone())
        frames = {"in": 0}

        @pc.on("track")
        def on_track(track):
            async def drain():
                while True:
                    try:
                        await track.recv()
                    except Exception:
                        return
                    frames["in"] += 1
            asyncio.ensure_future(drain())

        @pc.on("connectionstatechange")
        async def on_state():
            say("WEBRTC", pc.connectionState)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = pc.localDescription.sdp.replace("\n", "\r\n").replace("\r\r\n", "\r\n")
        contact = f"Contact: <sip:{self.user}@{self.host};transport={self.transport};ob>"
        await self.ws.send(self.response(
            headers, "200 OK", [contact, "Content-Type: application/sdp"], sdp))
        say("ANSWERED", "webrtc")
        return pc, frames

    async def serve_call(self):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.setblocking(False)
        port = rtp.getsockname()[1]
        invite = None
        sent = received = 0
        relay = None
        deadline = asyncio.get_running_loop().time() + self.args.timeout
        hangup_at = None
        seq, ts, ssrc = 1, 0, random.getrandbits(32)
        webrtc = None
        ringing = None
        answered_at = None
        marks = {}
        while asyncio.get_running_loop().time() < deadline:
            try:
                start, headers, body = await self.recv(0.02)
            except asyncio.TimeoutError:
                start = None
            if start and start.startswith("INVITE "):
                invite = headers
                say("INVITE", start.split()[1])
                await self.ws.send(self.response(headers, "180 Ringing"))
                if "UDP/TLS/RTP/SAVPF" in body and not self.args.plain_rtp:
                    host = re.search(r"a=candidate:\S+ 1 udp \d+ \S+ (\d+) typ host", body)
                    say("OFFER", "webrtc",
                        "ice-lite" if "a=ice-lite" in body else "full-ice",
                        "setup:" + re.search(r"a=setup:(\w+)", body).group(1),
                        "ufrag:" + re.search(r"a=ice-ufrag:(\S+)", body).group(1),
                        "port:" + (host.group(1) if host else "-"))
                    if self.args.ring_only:
                        ringing = headers
                        continue
                    if self.args.answer_delay:
                        await asyncio.sleep(self.args.answer_delay)
                    webrtc = await self.serve_webrtc_call(headers, body)
                    answered_at = asyncio.get_running_loop().time()
                    if self.args.hangup_after:
                        hangup_at = answered_at + self.args.hangup_after
                    continue
                m = re.search(r"m=audio (\d+)", body)
                c = re.search(r"c=IN IP4 (\S+)", body)
                relay = (c.group(1), int(m.group(1)))
                sdp = ("v=0\r\no=ws 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                       f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
                contact = f"Contact: <sip:{self.user}@{self.host};transport={self.transport};ob>"
                await self.ws.send(self.response(
                    headers, "200 OK", [contact, "Content-Type: application/sdp"], sdp))
                say("ANSWERED")
                if self.args.hangup_after:
                    hangup_at = asyncio.get_running_loop().time() + self.args.hangup_after
            elif start and start.startswith("CANCEL ") and ringing:
                await self.ws.send(self.response(headers, "200 OK"))
                await self.ws.send(self.response(ringing, "487 Request Terminated"))
                say("CANCELLED")
                ringing = None
            elif start and start.startswith("ACK "):
                say("ACK")
            elif start and start.startswith("BYE "):
                await self.ws.send(self.response(headers, "200 OK"))
                say("BYE", "from-caller")
                break
            elif start and start.startswith("SIP/2.0 ") and "BYE" in (header(headers, "cseq") or ""):
                say("BYE", "answered", start.split()[1])
                break
            elif start and not start.startswith("SIP/2.0"):
                await self.ws.send(self.response(headers, "200 OK"))
            if relay:
                packet = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                rtp.sendto(packet + b"\xff" * 160, relay)
                seq, ts, sent = seq + 1, ts + 160, sent + 1
                while True:
                    try:
                        rtp.recv(2048)
                        received += 1
                    except BlockingIOError:
                        break
            if hangup_at and asyncio.get_running_loop().time() >= hangup_at:
                hangup_at = None
                await self.bye(invite)
            if webrtc and answered_at:
                await self.hold_and_resume(invite, webrtc[0], answered_at, marks)
        if webrtc and "resume-settled" in marks:
            say("RESUMED-IN", await self.received(webrtc[0]) - marks["resume-settled"])
        if webrtc and "nosdp-settled" in marks:
            say("AFTER-NOSDP-IN", await self.received(webrtc[0]) - marks["nosdp-settled"])
        if webrtc:
            pc, frames = webrtc
            stats = await pc.getStats()
            for report in stats.values():
                if report.type == "inbound-rtp":
                    say("INBOUND-RTP", report.packetsReceived)
                if report.type == "outbound-rtp":
                    sent = report.packetsSent
            dtls = pc.getTransceivers()[0].receiver.transport
            # The server's DTLS close alert races the BYE: give it a moment to arrive.
            for _ in range(20):
                if dtls.state == "closed":
                    break
                await asyncio.sleep(0.1)
            say("DTLS", dtls.state, "srtp-profile" if dtls._rx_srtp else "no-srtp")
            received = frames["in"]
            await pc.close()
        say("RTP-OUT", sent)
        say("RTP-IN", received)

    async def received(self, pc):
        for report in (await pc.getStats()).values():
            if report.type == "inbound-rtp":
                return report.packetsReceived
        return 0

    async def hold_and_resume(self, invite, pc, answered_at, marks):
        """Holds at --hold-at and resumes at --resume-at (seconds after the answer). The
        packets heard are read half a second after each re-INVITE (in-flight packets settle),
        and at the resume: HELD-IN is what arrived while held."""
        loop = asyncio.get_running_loop()
        since = loop.time() - answered_at
        for name, at, direction in (("hold", self.args.hold_at, "sendonly"),
                                    ("resume", self.args.resume_at, "sendrecv"),
                                    ("nosdp", self.args.reinvite_without_sdp_at, None)):
            if at and since >= at and name not in marks:
                if name == "resume" and "hold-settled" in marks:
                    say("HELD-IN", await self.received(pc) - marks["hold-settled"])
                marks[name] = loop.time()
                if direction:
                    await self.reinvite(invite, pc, direction, name)
                else:
                    await self.reinvite_without_sdp(invite, pc)
            settled = name + "-settled"
            if name in marks and settled not in marks and loop.time() >= marks[name] + 0.5:
                marks[settled] = await self.received(pc)

    async def reinvite(self, invite, pc, direction, name):
        """A re-INVITE negotiated by aiortc itself, as a browser renegotiates: the
        transceiver's new direction, aiortc's offer, our answer applied to aiortc."""
        from aiortc import RTCSessionDescription
        pc.getTransceivers()[0].direction = direction
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp.replace("\n", "\r\n").replace("\r\r\n", "\r\n")
        self.dialog_cseq += 1
        cseq = self.dialog_cseq
        contact = f"Contact: <sip:{self.user}@{self.host};transport={self.transport};ob>"
        await self.ws.send(self.in_dialog(invite, "INVITE", cseq,
                                          [contact, "Content-Type: application/sdp"], sdp))
        status, body = await self.in_dialog_response(cseq)
        direction = re.search(r"a=(sendrecv|sendonly|recvonly|inactive)", body)
        ufrag = re.search(r"a=ice-ufrag:(\S+)", body)
        say("REINVITE", name, status, direction.group(1) if direction else "-",
            "ufrag:" + (ufrag.group(1) if ufrag else "-"))
        if status == 200:
            await self.ws.send(self.in_dialog(invite, "ACK", cseq, [], ""))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))

    async def in_dialog_response(self, cseq):
        """Waits for the final response to our in-dialog INVITE `cseq`, answering requests."""
        while True:
            start, headers, body = await self.recv(5)
            if not start.startswith("SIP/2.0"):
                await self.ws.send(self.response(headers, "200 OK"))
                continue
            if f"{cseq} INVITE" in header(headers, "cseq") and int(start.split()[1]) >= 200:
                return int(start.split()[1]), body

    async def reinvite_without_sdp(self, invite, pc):
        """A re-INVITE without SDP: the server offers in its 200, aiortc answers in the ACK."""
        from aiortc import RTCSessionDescription
        self.dialog_cseq += 1
        cseq = self.dialog_cseq
        contact = f"Contact: <sip:{self.user}@{self.host};transport={self.transport};ob>"
        await self.ws.send(self.in_dialog(invite, "INVITE", cseq, [contact], ""))
        status, body = await self.in_dialog_response(cseq)
        kind = "webrtc" if "UDP/TLS/RTP/SAVPF" in body else ("plain" if body else "none")
        ufrag = re.search(r"a=ice-ufrag:(\S+)", body)
        say("REINVITE-NOSDP", status, kind, "ufrag:" + (ufrag.group(1) if ufrag else "-"))
        if status != 200 or kind != "webrtc":
            return
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = pc.localDescription.sdp.replace("\n", "\r\n").replace("\r\r\n", "\r\n")
        await self.ws.send(self.in_dialog(invite, "ACK", cseq,
                                          ["Content-Type: application/sdp"], sdp))

    def in_dialog(self, invite, method, cseq, extra, body):
        # The INVITE's From is the far end; our To tag is self.tag.
        target = re.search(r"<([^>]+)>", header(invite, "contact")).group(1)
        routes = [f"Route: {v}" for v in all_headers(invite, "record-route")]
        to = header(invite, "from")
        frm = header(invite, "to")
        if ";tag=" not in frm:
            frm += f";tag={self.tag}"
        lines = [f"{method} {target} SIP/2.0", f"Via: {self.via()}", "Max-Forwards: 69",
                 f"To: {to}", f"From: {frm}", f"Call-ID: {header(invite, 'call-id')}",
                 f"CSeq: {cseq} {method}", *routes, *extra,
                 f"Content-Length: {len(body.encode())}"]
        return "\r\n".join(lines) + "\r\n\r\n" + body

    async def place_call(self):
        """An INVITE from the browser with a WebRTC offer, as JsSIP's `ua.call()` sends it."""
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.mediastreams import AudioStreamTrack
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(AudioStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp.replace("\n", "\r\n").replace("\r\r\n", "\r\n")
        uri = f"sip:{self.args.call}@{self.args.domain}"
        lines = [f"INVITE {uri} SIP/2.0", f"Via: {self.via()}", "Max-Forwards: 69",
                 f"To: <{uri}>",
                 f"From: <sip:{self.args.agent}@{self.args.domain}>;tag={self.tag}",
                 f"Call-ID: {token(20)}", "CSeq: 1 INVITE",
                 f"Contact: <sip:{self.user}@{self.host};transport={self.transport};ob>",
                 "Supported: ice,replaces,outbound", "Content-Type: application/sdp",
                 f"Content-Length: {len(sdp.encode())}"]
        await self.ws.send("\r\n".join(lines) + "\r\n\r\n" + sdp)
        while True:
            start, headers, _ = await self.recv(10)
            if start.startswith("SIP/2.0 1"):
                continue
            say("CALL-RESULT", start[len("SIP/2.0 "):])
            for warning in all_headers(headers, "warning"):
                say("WARNING", warning)
            break
        await pc.close()

    async def bye(self, invite):
        self.dialog_cseq += 1
        await self.ws.send(self.in_dialog(invite, "BYE", self.dialog_cseq, [], ""))
        say("BYE", "sent")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--domain", default="callcenter.local")
    ap.add_argument("--answer", action="store_true")
    ap.add_argument("--hangup-after", type=float, default=0)
    ap.add_argument("--close-after-register", action="store_true")
    ap.add_argument("--plain-rtp", action="store_true")
    ap.add_argument("--ring-only", action="store_true")
    ap.add_argument("--answer-delay", type=float, default=0)
    ap.add_argument("--hold-at", type=float, default=0)
    ap.add_argument("--resume-at", type=float, default=0)
    ap.add_argument("--reinvite-without-sdp-at", type=float, default=0)
    ap.add_argument("--call", help="place a call to this number instead of answering")
    ap.add_argument("--ca", help="CA certificate (PEM) that signed a wss: server's certificate")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    agent = Agent(args)
    ssl_context = None
    if args.url.startswith("wss:"):
        import ssl
        ssl_context = ssl.create_default_context(cafile=args.ca)
    async with websockets.connect(args.url, subprotocols=["sip"], ssl=ssl_context) as ws:
        say("SUBPROTOCOL", ws.subprotocol)
        agent.ws = ws
        await agent.login()
        if args.close_after_register:
            await ws.close()
            say("CLOSED")
            return
        if args.call:
            await agent.place_call()
        elif args.answer or args.ring_only:
            await agent.serve_call()
    say("CLOSED")


asyncio.run(main())
