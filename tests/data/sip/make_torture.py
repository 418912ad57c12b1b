#!/usr/bin/env python3
"""Writes the RFC 4475-style torture cases of this corpus (valid/ and invalid/).

The messages are written from RFC 4475's descriptions, adapted where Switchboard's
policy differs (see README.md). Line ends become CRLF; `{CL}` is replaced by the body
length. Run from this directory: `python3 make_torture.py`. The real captures
(`valid/real-*`) are not generated here.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def msg(head, body=b"", crlf=True):
    if isinstance(body, str):
        body = body.replace("\n", "\r\n").encode()
    head = head.lstrip("\n")
    if crlf:
        head = head.replace("\n", "\r\n")
    head = head.replace("{CL}", str(len(body)))
    return head.encode() + body


def write(kind, name, data, expect=None):
    path = os.path.join(HERE, kind, name + ".sip")
    with open(path, "wb") as f:
        f.write(data)
    if expect:
        with open(os.path.join(HERE, kind, name + ".expect"), "w") as f:
            for k, v in expect.items():
                f.write(f"{k}: {v}\n")


SDP = """v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.3
s=-
c=IN IP4 192.0.2.4
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"""

V = "valid"
I = "invalid"

# ---------------------------------------------------------------- valid (RFC 4475 §3.1.1)
write(V, "wsinv", msg("""
INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : {CL}
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

""", SDP), {"kind": "request", "method": "INVITE", "call-id": "wsinv.ndaksdj@192.0.2.1",
            "vias": 3, "contacts": 1, "cseq": "9 INVITE", "from-tag": "98asjd8",
            "to-tag": "1918181833n", "top-branch": "390skdjuw", "body-len": len(SDP.replace("\n", "\r\n")),
            "max-forwards": 68})

write(V, "intmeth", msg("""
!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439";tag=_token~1'+`*%!-.
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/"][?}{
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~
Max-Forwards: 255
extensionHeader-!.%*+_`'~:\ufeff\u5927\u505c\u96fb
Content-Length: 0

"""), {"kind": "request", "method": "!interesting-Method0123456789_*+`.%indeed'~",
       "from-tag": "_token~1'+`*%!-.", "top-branch": "z9hG4bK-.!%66*_+`'~",
       "uri-user": "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"})

write(V, "esc01", msg("""
INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: {CL}

""", SDP), {"kind": "request", "method": "INVITE", "uri-user-unescaped": "sips:user@example.com",
            "call-id": "esc01.239409asdfakjkn23onasd0-3234", "contacts": 1})

write(V, "escnull", msg("""
REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0

"""), {"kind": "request", "method": "REGISTER", "contacts": 2, "from-tag": "839923423"})

write(V, "esc02", msg("""
RE%47IST%45R sip:registrar.example.com SIP/2.0
To: "%Z%45" <sip:resource@example.com>
From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

"""), {"kind": "request", "method": "RE%47IST%45R", "contacts": 2})

write(V, "lwsdisp", msg("""
OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

"""), {"kind": "request", "method": "OPTIONS", "from-display": "caller", "from-tag": "323"})

long_user = "very" * 40 + "long"
long_param = "shouldinternalizeitsvalue" * 20
vias = "".join(f"Via: SIP/2.0/TCP sip{i}.example.com;branch=z9hG4bK{i:04d}\n" for i in range(1, 41))
write(V, "longreq", msg(f"""
INVITE sip:user@example.com SIP/2.0
To: "I have a user name of {'extreme' * 30} proportion"<sip:user@example.com:6000;unknownparam1=very{long_param};unknownparam2={long_param}>
From: sip:{long_user}@example.net;tag=12982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982424;unknownheaderparam{long_param}=unknowheaderparamvalue{long_param};unknownValuelessparam{long_param}
Call-ID: longreq.one{'really' * 80}longcallid
CSeq: 3882340 INVITE
Unknown-{long_param}-Name: unknown-{long_param}-value; unknown-{long_param}-parameter-name = unknown-{long_param}-parameter-value
{vias}Max-Forwards: 70
Contact: <sip:amazinglylongcallername{long_param}@host5.example.net>
Content-Type: application/sdp
l: {{CL}}

""", SDP), {"kind": "request", "method": "INVITE", "vias": 40, "top-branch": "z9hG4bK0001"})

write(V, "dblreq", msg("""
REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0

INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 150

""", SDP), {"kind": "request", "method": "REGISTER", "body-len": 0,
            "call-id": "dblreq.0ha0isndaksdj99sdfafnl3lk233412"})

write(V, "semiuri", msg("""
OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

"""), {"kind": "request", "uri-user": "user;par=u%40example.net", "uri-host": "example.com",
       "list-accept": 6})

write(V, "transports", msg("""
OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

"""), {"kind": "request", "vias": 5, "top-transport": "UDP",
       "call-id": "transports.kijh4akdnaqjkwendsasfdj"})

mpart_body = (b"--boundary42\r\nContent-Type: application/sdp\r\n\r\n"
              + SDP.replace("\n", "\r\n").encode()
              + b"\r\n--boundary42\r\nContent-Type: application/octet-stream\r\n\r\n"
              + bytes(range(256)) + b"\r\n\r\n\r\n"
              + b"\r\n--boundary42--\r\n")
write(V, "mpart01", msg("""
MESSAGE sip:kumiko@example.org SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5080>
Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=
Contact: <sip:fluffy@127.0.0.1:5070>
To: <sip:kumiko@example.org>
From: <sip:fluffy@example.com>;tag=2fb0dcc9
Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..
CSeq: 1 MESSAGE
Content-Transfer-Encoding: binary
Content-Type: multipart/mixed;boundary=boundary42
Content-Length: {CL}

""", mpart_body), {"kind": "request", "method": "MESSAGE", "body-len": len(mpart_body)})

write(V, "unreason", msg("""
SIP/2.0 200 = 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: {CL}
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>

""", SDP), {"kind": "response", "status": 200, "to-tag": "2229", "cseq": "35 INVITE"})

write(V, "noreason", msg("""
SIP/2.0 100 
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

"""), {"kind": "response", "status": 100, "reason": ""})

# ---- valid syntax, semantics left to the protocol layer (RFC 4475 §3.3)
write(V, "unksm", msg("""
OPTIONS isbn:2983792873 SIP/2.0
To: <isbn:2983792873>
From: <sip:caller@example.net>;tag=234231
Max-Forwards: 70
Call-ID: unksm.dfbasdfkjhiu1234@example.net
CSeq: 1 OPTIONS
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw
l: 0

"""), {"kind": "request", "uri": "isbn:2983792873", "uri-scheme": "isbn"})

write(V, "unksm2", msg("""
REGISTER sip:example.com SIP/2.0
To: isbn:2983792873
From: <http://www.example.com>;tag=3234233
Call-ID: unksm2.daksdj@hyphenated-host.example.com
CSeq: 234902 REGISTER
Max-Forwards: 70
Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw
Contact: <name:John_Smith>
l: 0

"""), {"kind": "request", "method": "REGISTER", "contacts": 1})

write(V, "novelsc", msg("""
OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: novelsc.asdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0

"""), {"kind": "request", "uri": "soap.beep://192.0.2.103:3002"})

write(V, "zeromf", msg("""
OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=3ghsd41
Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas
CSeq: 39234321 OPTIONS
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i
Max-Forwards: 0
Content-Length: 0

"""), {"kind": "request", "max-forwards": 0})

write(V, "bcast", msg("""
SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923;received=255.255.255.255
Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23
Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: {CL}
Content-Type: application/sdp
Contact: <sip:user@host28.example.com>

""", SDP), {"kind": "response", "vias": 2})

write(V, "bext01", msg("""
OPTIONS sip:user@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.net;tag=242etr
Max-Forwards: 6
Call-ID: bext01.0ha0isndaksdj
Require: nothingSupportsThis, nothingSupportsThisEither
Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis
CSeq: 8 OPTIONS
Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw
Content-Length: 0

"""), {"kind": "request", "list-require": 2})

write(V, "baddate-accepted", msg("""
INVITE sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=2234923
Max-Forwards: 70
Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234
CSeq: 1392934 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
Date: Fri, 01 Jan 2010 16:00:00 EST
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
Content-Length: {CL}

""", SDP), {"kind": "request", "date": "Fri, 01 Jan 2010 16:00:00 EST"})

write(V, "regescrt", msg("""
REGISTER sip:example.com SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=8
Max-Forwards: 70
Call-ID: regescrt.k345asrl3fdbv@192.0.2.1
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>
L:0

"""), {"kind": "request", "contacts": 1})

write(V, "cparam01", msg("""
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards: 70
From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe
To: sip:watson@example.com
Call-ID: cparam01.70710@saturn.example.com
CSeq: 2 REGISTER
Contact: sip:+19725552222@gw1.example.net;unknownparam
l: 0

"""), {"kind": "request", "contacts": 1})

write(V, "cparam02", msg("""
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards: 70
From: sip:watson@example.com;tag=838293
To: sip:watson@example.com
Call-ID: cparam02.70710@saturn.example.com
CSeq: 3 REGISTER
Contact: <sip:+19725552222@gw1.example.net;unknownparam>;expires=3600;q=0.5, "Mr. Watson" <sip:watson@bell.example.com>;q=0.7
l: 0

"""), {"kind": "request", "contacts": 2})

write(V, "inv2543", msg("""
INVITE sip:UserB@example.com SIP/2.0
Via: SIP/2.0/UDP iftgw.example.com
From: <sip:+13035551111@ift.client.example.net;user=phone>
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>
To: sip:+16505552222@ss1.example.net;user=phone
Call-ID: inv2543.1717@ift.client.example.com
CSeq: 56 INVITE
Content-Type: application/sdp

""", SDP), {"kind": "request", "body-len": len(SDP.replace("\n", "\r\n"))})

# ---- IPv6 (RFC 5118), compact forms, WebSocket, framing variants
write(V, "ipv6-register", msg("""
REGISTER sip:[2001:db8::10] SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=81x2
Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111;received=2001:db8::9:255
Call-ID: SSG9559905523997077@hlau_4100
Max-Forwards: 70
Contact: "Caller" <sip:caller@[2001:db8::1]>
CSeq: 98176 REGISTER
Content-Length: 0

"""), {"kind": "request", "uri-host": "[2001:db8::10]", "top-host": "[2001:db8::9:1]"})

write(V, "ipv6-port", msg("""
INVITE sip:agent@[2001:db8::10]:5070 SIP/2.0
To: sip:agent@[2001:db8::10]:5070
From: sip:user@example.com;tag=81x2
Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;rport
Call-ID: SSG9559905523997077@hlau_4100
Max-Forwards: 70
Contact: "Caller" <sip:caller@[2001:db8::9:1]:6050>
CSeq: 98176 INVITE
Content-Length: 0

"""), {"kind": "request", "uri-host": "[2001:db8::10]", "uri-port": 5070, "top-port": 6050})

write(V, "compact-all", msg("""
INVITE sip:queue@switchboard.example SIP/2.0
v: SIP/2.0/TCP pbx.example.net:5060;branch=z9hG4bKc0mp4ct
f: "Trunk" <sip:+15551230000@pbx.example.net>;tag=ab12
t: <sip:queue@switchboard.example>
i: compact-all-9987@pbx.example.net
m: <sip:+15551230000@pbx.example.net:5060;transport=tcp>
k: 100rel, timer
s: support call
x: 1800;refresher=uac
o: presence
u: presence, dialog
r: <sip:agent@switchboard.example>
b: <sip:pbx@example.net>
e: gzip
c: application/sdp
CSeq: 1 INVITE
Max-Forwards: 70
l: {CL}

""", SDP), {"kind": "request", "call-id": "compact-all-9987@pbx.example.net", "contacts": 1,
            "list-supported": 2, "subject": "support call", "session-expires": "1800;refresher=uac"})

write(V, "jssip-register-wss", msg("""
REGISTER sip:switchboard.example SIP/2.0
Via: SIP/2.0/WSS 9a8e7h2kqb1t.invalid;branch=z9hG4bK4371386
Max-Forwards: 69
To: <sip:ana@switchboard.example>
From: "Ana" <sip:ana@switchboard.example>;tag=9hmb5ovgc1
Call-ID: 5e3ocbhsk1ar2k1oh7t0u6
CSeq: 1 REGISTER
Contact: <sip:h7f2q1ri@9a8e7h2kqb1t.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance="<urn:uuid:8e0a8e1a-5a0c-4c2b-9d0e-1f43e6f3b9a2>";expires=600
Expires: 600
Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY
Supported: path,gruu,outbound
User-Agent: JsSIP 3.10.1
Content-Length: 0

"""), {"kind": "request", "method": "REGISTER", "top-transport": "WSS", "contacts": 1,
       "contact-instance": "\"<urn:uuid:8e0a8e1a-5a0c-4c2b-9d0e-1f43e6f3b9a2>\"", "expires": 600})

write(V, "contact-star", msg("""
REGISTER sip:switchboard.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKunreg
Max-Forwards: 70
To: <sip:ana@switchboard.example>
From: <sip:ana@switchboard.example>;tag=x1
Call-ID: unregister-all@192.0.2.7
CSeq: 9 REGISTER
Contact: *
Expires: 0
Content-Length: 0

"""), {"kind": "request", "contacts": "*", "expires": 0})

write(V, "multi-contact", msg("""
REGISTER sip:switchboard.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKmulti
Max-Forwards: 70
To: "Ana" <sip:ana@switchboard.example>
From: "Ana" <sip:ana@switchboard.example>;tag=x2
Call-ID: multi-contact@192.0.2.7
CSeq: 10 REGISTER
Contact: <sip:ana@192.0.2.7:5062>;expires=600;q=1.0, "Ana, desk" <sip:ana@192.0.2.8:5062;transport=tcp>;expires=300,
 <sip:ana@[2001:db8::7]:5062>;q=0.1
Contact: sip:ana@192.0.2.9
Content-Length: 0

"""), {"kind": "request", "contacts": 4})

write(V, "bare-lf", msg("""
OPTIONS sip:switchboard.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKlf
Max-Forwards: 70
To: <sip:switchboard.example>
From: <sip:ana@switchboard.example>;tag=lf
Call-ID: bare-lf@192.0.2.7
CSeq: 1 OPTIONS
Content-Length: 0

""", crlf=False), {"kind": "request", "call-id": "bare-lf@192.0.2.7"})

write(V, "leading-crlf", b"\r\n\r\n" + msg("""
OPTIONS sip:switchboard.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKcrlf
Max-Forwards: 70
To: <sip:switchboard.example>
From: <sip:ana@switchboard.example>;tag=crlf
Call-ID: leading-crlf@192.0.2.7
CSeq: 1 OPTIONS
Content-Length: 0

"""), {"kind": "request", "call-id": "leading-crlf@192.0.2.7"})

crlf_body = "first line\r\n\r\n\r\nafter blank lines\r\n\r\n"
write(V, "body-crlf", msg("""
MESSAGE sip:ana@switchboard.example SIP/2.0
Via: SIP/2.0/TCP 192.0.2.7:5062;branch=z9hG4bKbody
Max-Forwards: 70
To: <sip:ana@switchboard.example>
From: <sip:bob@switchboard.example>;tag=b
Call-ID: body-crlf@192.0.2.7
CSeq: 1 MESSAGE
Content-Type: text/plain
Content-Length: {CL}

""", crlf_body.encode()), {"kind": "request", "body-len": len(crlf_body)})

write(V, "no-content-length", msg("""
MESSAGE sip:ana@switchboard.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKnocl
Max-Forwards: 70
To: <sip:ana@switchboard.example>
From: <sip:bob@switchboard.example>;tag=b
Call-ID: no-content-length@192.0.2.7
CSeq: 1 MESSAGE
Content-Type: text/plain

""", b"Body of an UDP message without Content-Length"), {"kind": "request", "body-len": 45})

write(V, "response-401", msg("""
SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKr401;received=192.0.2.7;rport=5062
Via: SIP/2.0/UDP proxy.example.net;branch=z9hG4bKp1
Record-Route: <sip:proxy.example.net;lr>, <sip:edge.example.net;lr;transport=tcp>
From: "Ana \\"the agent\\" Silva" <sip:ana@switchboard.example>;tag=x1
To: <sip:ana@switchboard.example>;tag=srv1
Call-ID: r401@192.0.2.7
CSeq: 1 REGISTER
WWW-Authenticate: Digest realm="switchboard", nonce="abc,def", qop="auth", algorithm=SHA-256
WWW-Authenticate: Digest realm="switchboard", nonce="abc,def", qop="auth", algorithm=MD5
Server: Switchboard
Content-Length: 0

"""), {"kind": "response", "status": 401, "vias": 2, "from-display": "Ana \"the agent\" Silva",
       "list-record-route": 2, "top-rport": "5062"})

write(V, "tel-uri", msg("""
INVITE tel:+1-201-555-0123;phone-context=example.com SIP/2.0
Via: SIP/2.0/UDP pbx.example.net;branch=z9hG4bKtel
Max-Forwards: 70
To: <tel:+1-201-555-0123>
From: "Caller" <sip:+15551230000@pbx.example.net;user=phone>;tag=t1
P-Asserted-Identity: <tel:+15551230000>
Call-ID: tel-uri@pbx.example.net
CSeq: 1 INVITE
Content-Length: 0

"""), {"kind": "request", "uri-scheme": "tel", "uri-host": "+1-201-555-0123"})

# -------------------------------------------------------------- invalid (RFC 4475 §3.1.2)
# File name: <case>.<ParseError kind>.sip; the corpus test expects Message::parse or,
# when that succeeds, validate() to fail with exactly that kind.
write(I, "badinv01.BadVia", msg("""
INVITE sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: 7
Call-ID: badinv01.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;;,;,,
Contact: "Joe" <sip:joe@example.org>;;;;
Content-Length: {CL}
Content-Type: application/sdp

""", SDP))

write(I, "clerr.BodyTooShort", msg("""
INVITE sip:user@example.com SIP/2.0
Max-Forwards: 80
To: sip:j.user@example.com
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: clerr.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523
Content-Type: application/sdp
Content-Length: 9999

""", SDP))

write(I, "ncl.BadContentLength", msg("""
INVITE sip:user@example.com SIP/2.0
Max-Forwards: 254
To: sip:j.user@example.com
From: sip:caller@example.net;tag=32394234
Call-ID: ncl.0ha0isndaksdj2193423r542w35
CSeq: 0 INVITE
Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw
Contact: <sip:caller@example53.example.net>
Content-Type: application/sdp
Content-Length: -999

""", SDP))

write(I, "scalar02.BadCSeq", msg("""
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36893488147419103232 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: 1000000000000000000
Contact: <sip:user@host129.example.com>
  ;expires=280297596632815
Content-Length: 0

"""))

write(I, "scalarlg.BadCSeq", msg("""
SIP/2.0 503 Service Unavailable
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=2easdjfejw
CSeq: 9292394834772304023312 OPTIONS
Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r
Retry-After: 949302838503028349304023988
Warning: 1812 overflow.example.net "Device overflow"
Content-Length: 0

"""))

write(I, "quotbal.BadTo", msg("""
INVITE sip:user@example.com SIP/2.0
To: "Mr. J. User <sip:j.user@example.com>
From: sip:caller@example.net;tag=93334
Max-Forwards: 10
Call-ID: quotbal.aksdj
Contact: <sip:caller@host59.example.net>
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234
Content-Type: application/sdp
Content-Length: {CL}

""", SDP))

write(I, "ltgtruri.BadRequestUri", msg("""
INVITE <sip:user@example.com> SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=39291
Max-Forwards: 23
Call-ID: ltgtruri.1@192.0.2.5
CSeq: 1 INVITE
Via: SIP/2.0/UDP 192.0.2.5
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
Content-Length: {CL}

""", SDP))

write(I, "lwsruri.BadStartLine", msg("""
INVITE sip:user@example.com; lr SIP/2.0
To: sip:user@example.com;tag=3xfe-9921883-z9f
From: sip:caller@example.net;tag=231413434
Max-Forwards: 5
Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423
CSeq: 2130706432 INVITE
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395
Contact: <sip:caller@host1.example.net>
Content-Type: application/sdp
Content-Length: {CL}

""", SDP))

write(I, "lwsstart.BadStartLine", msg("""
INVITE  sip:user@example.com  SIP/2.0
Max-Forwards: 8
To: sip:user@example.com
From: sip:caller@example.net;tag=8814
Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com
CSeq: 1893884 INVITE
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923
Contact: <sip:caller@host1.example.net>
Content-Type: application/sdp
Content-Length: {CL}

""", SDP))

write(I, "trws.BadStartLine", msg("""
OPTIONS sip:remote-target@example.com SIP/2.0  
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093
To: <sip:remote-target@example.com>
From: <sip:local-resource@example.com>;tag=329429089
Call-ID: trws.oicu34958239neffasdhr2345r
Accept: application/sdp
CSeq: 238923 OPTIONS
Max-Forwards: 70
Content-Length: 0

"""))

write(I, "escruri.BadRequestUri", msg("""
INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=341518
Max-Forwards: 7
Contact: <sip:caller@host39923.example.net>
Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5
CSeq: 149209342 INVITE
Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw
Content-Type: application/sdp
Content-Length: {CL}

""", SDP))

write(I, "regbadct.BadContact", msg("""
REGISTER sip:example.com SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=998332
Max-Forwards: 70
Call-ID: regbadct.k345asrl3fdbv@10.0.0.1
CSeq: 1 REGISTER
Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw
Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E
l: 0

"""))

write(I, "badaspec.BadTo", msg("""
OPTIONS sip:user@example.org SIP/2.0
Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234
Max-Forwards: 70
From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423
To: "Watson, Thomas" < sip:t.watson@example.org >
Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3
Accept: application/sdp
CSeq: 3923239 OPTIONS
l: 0

"""))

write(I, "baddn.BadFrom", msg("""
OPTIONS sip:t.watson@example.org SIP/2.0
Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards:      70
From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43
To:      Watson, Thomas <sip:t.watson@example.org>
Call-ID: baddn.31415@c.example.com
Accept: application/sdp
CSeq:    3923239 OPTIONS
l: 0

"""))

write(I, "badvers.BadVersion", msg("""
OPTIONS sip:t.watson@example.org SIP/7.0
Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw
Max-Forwards:     70
From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To:      T. Watson <sip:t.watson@example.org>
Call-ID: badvers.31417@c.example.com
CSeq:    1 OPTIONS
l: 0

"""))

write(I, "mismatch01.CSeqMethodMismatch", msg("""
OPTIONS sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch01.dj0234sxdfl3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
l: 0

"""))

write(I, "mismatch02.CSeqMethodMismatch", msg("""
NEWMETHOD sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch02.dj0234sxdfl3
CSeq: 8 INVITE
Contact: <sip:caller@host.example.net>
Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw
Content-Type: application/sdp
l: {CL}

""", SDP))

write(I, "bigcode.BadStatusCode", msg("""
SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i
CSeq: 353494 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

"""))

write(I, "insuf.MissingHeader", msg("""
INVITE sip:user@example.com SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf
Content-Type: application/sdp
l: {CL}

""", SDP))

write(I, "multi01.DuplicateHeader", msg("""
INVITE sip:user@company.com SIP/2.0
Contact: <sip:caller@host25.example.net>
Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw
Max-Forwards: 70
CSeq: 5 INVITE
Call-ID: multi01.98asdh@192.0.2.1
CSeq: 59 INVITE
Call-ID: multi01.98asdh@192.0.2.2
From: sip:caller@example.com;tag=3413415
To: sip:user@example.com
To: sip:other@example.net
From: sip:caller@example.net;tag=2923420123
Content-Type: application/sdp
l: {CL}
Contact: <sip:caller@host36.example.net>
Max-Forwards: 5

""", SDP))

write(I, "mcl01.BadContentLength", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=3923942
Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf
CSeq: 15932 OPTIONS
Content-Length: 13
Max-Forwards: 60
Content-Length: 5
Content-Type: text/plain

There's no way to know how many octets are supposed to be here.
"""))

write(I, "badcl.BadContentLength", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293424
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=3923943
Call-ID: badcl.fhn2323orihawfdoa3o4r52o3
CSeq: 15933 OPTIONS
Max-Forwards: 60
Content-Length: twelve

"""))

write(I, "missing-colon.MissingColon", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=1
Max-Forwards 70
Call-ID: missing-colon@example.net
CSeq: 1 OPTIONS
Content-Length: 0

"""))

write(I, "ctl-in-header.ControlCharacter", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=1
Subject: ring the \x07 bell
Call-ID: ctl@example.net
CSeq: 1 OPTIONS
Content-Length: 0

"""))

write(I, "raw-nul.ControlCharacter", msg("""
REGISTER sip:example.com SIP/2.0
To: sip:null-\x00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: rawnul.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
L:0

"""))

write(I, "bare-cr.ControlCharacter", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
To: <sip:user@example.com>\rX-Smuggled: yes
From: <sip:other@example.net>;tag=1
Call-ID: bare-cr@example.net
CSeq: 1 OPTIONS
Content-Length: 0

"""))

write(I, "no-start-line.BadStartLine", msg("""
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=1
Call-ID: no-start-line@example.net
CSeq: 1 OPTIONS
Content-Length: 0

"""))

write(I, "garbled-start.BadStartLine", msg("""
HELLO WORLD
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
Content-Length: 0

"""))

write(I, "status-no-code.BadStatusCode", msg("""
SIP/2.0 OK
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
Content-Length: 0

"""))

write(I, "status-out-of-range.BadStatusCode", msg("""
SIP/2.0 700 Beyond
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
Content-Length: 0

"""))

write(I, "latin1-header.InvalidUtf8", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
From: "Jos\xe9" <sip:jose@example.net>;tag=1
To: <sip:user@example.com>
Call-ID: latin1@example.net
CSeq: 1 OPTIONS
Content-Length: 0

""").replace("Jos\xe9".encode(), b"Jos\xe9"))

write(I, "truncated-head.Incomplete", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=1
Call-ID: truncated@example.net
"""))

write(I, "only-crlf.Empty", b"\r\n\r\n\r\n")

write(I, "max-forwards-256.BadMaxForwards", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=1
Call-ID: mf256@example.net
CSeq: 1 OPTIONS
Max-Forwards: 256
Content-Length: 0

"""))

write(I, "callid-space.BadCallId", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=1
Call-ID: two words@example.net
CSeq: 1 OPTIONS
Content-Length: 0

"""))

write(I, "via-open-ipv6.BadVia", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP [2001:db8::9:1;branch=z9hG4bK1
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=1
Call-ID: via-open-ipv6@example.net
CSeq: 1 OPTIONS
Content-Length: 0

"""))

write(I, "ruri-open-ipv6.BadRequestUri", msg("""
OPTIONS sip:user@[2001:db8::10 SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
Content-Length: 0

"""))

write(I, "header-name-space.BadHeaderName", msg("""
OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
Call ID: spaced@example.net
Content-Length: 0

"""))

write(I, "fold-first.BadHeaderName", msg("""
OPTIONS sip:user@example.com SIP/2.0
 Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1
Content-Length: 0

"""))

write(I, "no-via.MissingHeader", msg("""
OPTIONS sip:user@example.com SIP/2.0
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=1
Call-ID: no-via@example.net
CSeq: 1 OPTIONS
Content-Length: 0

"""))
