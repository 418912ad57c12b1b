//! Building the requests that follow an INVITE: the ACK for a non-2xx final response
//! (§17.1.1.3), the ACK for a 2xx (§13.2.2.4), CANCEL (§9.1), and a minimal [`Dialog`]
//! (§12) for in-dialog requests such as BYE.
//!
//! 2xx retransmission and ACK matching for the UAS, and re-ACKing retransmitted 2xx for the
//! UAC, are done by the [`Endpoint`](crate::Endpoint) on its timers; this module only builds
//! messages.

use switchboard_sipmsg::{
    ContactValue, HeaderName, Headers, Method, NameAddr, Request, Response, Uri,
};

use crate::Error;

const MAX_FORWARDS: &str = "70";

/// The ACK for a non-2xx final response to `invite`: same Request-URI, top Via, From,
/// Call-ID, CSeq number and Route as the INVITE; To from the response (with its tag).
pub fn ack_for_non_2xx(invite: &Request, resp: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(via) = invite.headers.list(&HeaderName::Via).first() {
        ack.headers.push(HeaderName::Via, *via);
    }
    ack.headers.push(HeaderName::MaxForwards, MAX_FORWARDS);
    copy(invite, &mut ack, &HeaderName::From);
    match resp.headers.get(&HeaderName::To) {
        Some(to) => ack.headers.push(HeaderName::To, to),
        None => copy(invite, &mut ack, &HeaderName::To),
    }
    copy(invite, &mut ack, &HeaderName::CallId);
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(0);
    ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
    for route in invite.headers.get_all(&HeaderName::Route) {
        ack.headers.push(HeaderName::Route, route);
    }
    ack
}

/// The ACK for a 2xx response to `invite` (a request of the new dialog): Request-URI from
/// the response's Contact, Route from its Record-Route reversed, same credentials as the
/// INVITE. The endpoint adds a Via with a new branch when it sends it
/// ([`Endpoint::send_ack`](crate::Endpoint::send_ack)).
pub fn ack_for_2xx(invite: &Request, resp: &Response) -> Result<Request, Error> {
    let dialog = Dialog::from_uac(invite, resp)?;
    let mut ack = dialog.request_with_seq(Method::Ack, dialog.local_seq);
    for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
        copy(invite, &mut ack, &name);
    }
    Ok(ack)
}

/// The CANCEL for `invite` (§9.1): same Request-URI, top Via (so the same branch), From,
/// To, Call-ID, CSeq number and Route.
pub fn cancel_for(invite: &Request) -> Request {
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    if let Some(via) = invite.headers.list(&HeaderName::Via).first() {
        cancel.headers.push(HeaderName::Via, *via);
    }
    cancel.headers.push(HeaderName::MaxForwards, MAX_FORWARDS);
    for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        copy(invite, &mut cancel, &name);
    }
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(0);
    cancel
        .headers
        .push(HeaderName::CSeq, format!("{seq} CANCEL"));
    for route in invite.headers.get_all(&HeaderName::Route) {
        cancel.headers.push(HeaderName::Route, route);
    }
    cancel
}

fn copy(from: &Request, to: &mut Request, name: &HeaderName) {
    for v in from.headers.get_all(name) {
        to.headers.push(name.clone(), v);
    }
}

/// The state of one dialog (§12), enough to send in-dialog requests (BYE, re-INVITE,
/// REFER, NOTIFY) and to recognise requests that belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Our From/To value (name-addr without tag).
    pub local: NameAddr,
    /// The peer's From/To value (name-addr without tag).
    pub remote: NameAddr,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: Uri,
    /// Route set (Record-Route, in the order our requests use it).
    pub route_set: Vec<String>,
    /// Last CSeq number we used.
    pub local_seq: u32,
    /// Last CSeq number the peer used.
    pub remote_seq: Option<u32>,
}

impl Dialog {
    /// The dialog a UAC forms from its INVITE and a 2xx (or tagged 1xx) response.
    pub fn from_uac(invite: &Request, resp: &Response) -> Result<Dialog, Error> {
        Dialog::formed(invite, resp, true)
    }

    /// The dialog a UAS forms from a received INVITE and the response it sends (which must
    /// carry a To tag).
    pub fn from_uas(invite: &Request, resp: &Response) -> Result<Dialog, Error> {
        Dialog::formed(invite, resp, false)
    }

    /// The dialog `invite` and `resp` form, seen by the UAC when `uac`, else by the UAS: the
    /// INVITE's From names the UAC, the response's To the UAS. The UAC's route set is the
    /// response's Record-Route reversed and its remote target the response's Contact (else
    /// the Request-URI); the UAS's are the INVITE's Record-Route and its required Contact.
    fn formed(invite: &Request, resp: &Response, uac: bool) -> Result<Dialog, Error> {
        let from = invite.from_hdr().map_err(Error::Message)?;
        let to = resp.to_hdr().map_err(Error::Message)?;
        let from_tag = from.tag().ok_or(Error::MissingTag("From"))?.to_string();
        let to_tag = to.tag().ok_or(Error::MissingTag("To"))?.to_string();
        let call_id = call_id_of(invite)?;
        let (remote_target, route_set) = if uac {
            let mut route_set = record_route(&resp.headers);
            route_set.reverse();
            let target = first_contact(resp.contacts().ok()).unwrap_or_else(|| invite.uri.clone());
            (target, route_set)
        } else {
            let target =
                first_contact(invite.contacts().ok()).ok_or(Error::MissingHeader("Contact"))?;
            (target, record_route(&invite.headers))
        };
        let seq = invite.cseq().map_err(Error::Message)?.seq;
        let uac_end = (from_tag, without_tag(from));
        let uas_end = (to_tag, without_tag(to));
        let ((local_tag, local), (remote_tag, remote), local_seq, remote_seq) = if uac {
            (uac_end, uas_end, seq, None)
        } else {
            (uas_end, uac_end, 0, Some(seq))
        };
        Ok(Dialog {
            call_id,
            local_tag,
            remote_tag,
            local,
            remote,
            remote_target,
            route_set,
            local_seq,
            remote_seq,
        })
    }

    /// A new in-dialog request (CSeq incremented; not for ACK or CANCEL). The endpoint adds
    /// Via when sending it.
    pub fn request(&mut self, method: Method) -> Request {
        self.local_seq = self.local_seq.saturating_add(1);
        self.request_with_seq(method, self.local_seq)
    }

    fn request_with_seq(&self, method: Method, seq: u32) -> Request {
        let mut req = Request::new(method.clone(), self.remote_target.clone());
        req.headers.push(HeaderName::MaxForwards, MAX_FORWARDS);
        req.headers.push(
            HeaderName::From,
            format!("{};tag={}", self.local, self.local_tag),
        );
        req.headers.push(
            HeaderName::To,
            format!("{};tag={}", self.remote, self.remote_tag),
        );
        req.headers.push(HeaderName::CallId, self.call_id.clone());
        req.headers
            .push(HeaderName::CSeq, format!("{seq} {method}"));
        for r in &self.route_set {
            req.headers.push(HeaderName::Route, r.clone());
        }
        req
    }

    /// Whether `resp` (to a request of ours) belongs to this dialog: Call-ID, our From tag
    /// and the peer's To tag. A 2xx with another To tag comes from a fork.
    pub fn matches_response(&self, resp: &Response) -> bool {
        self.is_ours(
            resp.call_id(),
            (tag(resp.from_hdr()), tag(resp.to_hdr())),
            (&self.local_tag, &self.remote_tag),
        )
    }

    /// Whether `req` belongs to this dialog (Call-ID and both tags match).
    pub fn matches(&self, req: &Request) -> bool {
        self.is_ours(
            req.call_id(),
            (tag(req.from_hdr()), tag(req.to_hdr())),
            (&self.remote_tag, &self.local_tag),
        )
    }

    /// A message's Call-ID and (From, To) tags against this dialog's, `want` in that order.
    fn is_ours(
        &self,
        call_id: Option<&str>,
        (from, to): (Option<String>, Option<String>),
        want: (&str, &str),
    ) -> bool {
        call_id == Some(self.call_id.as_str())
            && from.as_deref() == Some(want.0)
            && to.as_deref() == Some(want.1)
    }
}

/// The Call-ID of the INVITE that forms a dialog.
fn call_id_of(invite: &Request) -> Result<String, Error> {
    invite
        .call_id()
        .map(str::to_string)
        .ok_or(Error::MissingHeader("Call-ID"))
}

/// The tag of a From or To header, when it parses and has one.
fn tag(header: Result<NameAddr, switchboard_sipmsg::ParseError>) -> Option<String> {
    header.ok().and_then(|h| h.tag().map(str::to_string))
}

/// The Record-Route values of a message, in message order.
fn record_route(headers: &Headers) -> Vec<String> {
    headers
        .list(&HeaderName::RecordRoute)
        .into_iter()
        .map(str::to_string)
        .collect()
}

fn without_tag(mut addr: NameAddr) -> NameAddr {
    addr.params.retain(|p| !p.name.eq_ignore_ascii_case("tag"));
    addr
}

fn first_contact(contacts: Option<Vec<ContactValue>>) -> Option<Uri> {
    contacts?.into_iter().find_map(|c| match c {
        ContactValue::Addr(a) => Some(a.uri),
        ContactValue::Star => None,
    })
}

#[cfg(test)]
mod tests {
    use switchboard_sipmsg::Message;

    use super::*;

    fn request(text: &str) -> Request {
        match Message::parse(text.replace('\n', "\r\n").as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn response(text: &str) -> Response {
        match Message::parse(text.replace('\n', "\r\n").as_bytes()) {
            Ok(Message::Response(r)) => r,
            other => panic!("not a response: {other:?}"),
        }
    }

    const INVITE: &str = "INVITE sip:agent@10.0.0.2 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1
Record-Route: <sip:p1.example;lr>
Record-Route: <sip:p2.example;lr>
From: \"Trunk\" <sip:trunk@10.0.0.1>;tag=uac
To: <sip:agent@10.0.0.2>
Call-ID: c1
CSeq: 7 INVITE
Contact: <sip:trunk@10.0.0.1:5060>
Content-Length: 0

";

    const OK: &str = "SIP/2.0 200 OK
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1
Record-Route: <sip:p1.example;lr>
Record-Route: <sip:p2.example;lr>
From: \"Trunk\" <sip:trunk@10.0.0.1>;tag=uac
To: <sip:agent@10.0.0.2>;tag=uas
Call-ID: c1
CSeq: 7 INVITE
Contact: <sip:agent@10.0.0.2:5062>
Content-Length: 0

";

    #[test]
    fn uac_and_uas_see_the_same_dialog_from_their_own_ends() {
        let (invite, ok) = (request(INVITE), response(OK));
        let uac = Dialog::from_uac(&invite, &ok).unwrap();
        let uas = Dialog::from_uas(&invite, &ok).unwrap();
        assert_eq!(
            (uac.local_tag.as_str(), uac.remote_tag.as_str()),
            ("uac", "uas")
        );
        assert_eq!(
            (uas.local_tag.as_str(), uas.remote_tag.as_str()),
            ("uas", "uac")
        );
        assert_eq!(uac.local, uas.remote);
        assert_eq!(uac.remote, uas.local);
        assert_eq!(uac.local.to_string(), "\"Trunk\" <sip:trunk@10.0.0.1>");
        assert_eq!(uac.remote_target.to_string(), "sip:agent@10.0.0.2:5062");
        assert_eq!(uas.remote_target.to_string(), "sip:trunk@10.0.0.1:5060");
        assert_eq!(
            uac.route_set,
            ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
        );
        assert_eq!(
            uas.route_set,
            ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
        );
        assert_eq!((uac.local_seq, uac.remote_seq), (7, None));
        assert_eq!((uas.local_seq, uas.remote_seq), (0, Some(7)));
        assert_eq!(uac.call_id, "c1");
        assert!(uas.matches(&uac.clone().request(Method::Bye)));
    }

    #[test]
    fn a_missing_contact_is_refused_by_the_uas_and_falls_back_for_the_uac() {
        let invite = request(&INVITE.replace("Contact: <sip:trunk@10.0.0.1:5060>\n", ""));
        let ok = response(&OK.replace("Contact: <sip:agent@10.0.0.2:5062>\n", ""));
        assert_eq!(
            Dialog::from_uas(&invite, &ok),
            Err(Error::MissingHeader("Contact"))
        );
        let uac = Dialog::from_uac(&invite, &ok).unwrap();
        assert_eq!(uac.remote_target, invite.uri);
        let untagged = response(&OK.replace(";tag=uas", ""));
        assert_eq!(
            Dialog::from_uac(&invite, &untagged),
            Err(Error::MissingTag("To"))
        );
    }
}
