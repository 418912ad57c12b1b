//! Building the requests that follow an INVITE: the ACK for a non-2xx final response
//! (§17.1.1.3), the ACK for a 2xx (§13.2.2.4), CANCEL (§9.1), and a minimal [`Dialog`]
//! (§12) for in-dialog requests such as BYE.
//!
//! 2xx retransmission and ACK matching for the UAS, and re-ACKing retransmitted 2xx for the
//! UAC, are done by the [`Endpoint`](crate::Endpoint) on its timers; this module only builds
//! messages.

use switchboard_sipmsg::{ContactValue, HeaderName, Method, NameAddr, Request, Response, Uri};

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
        let from = invite.from_hdr().map_err(Error::Message)?;
        let to = resp.to_hdr().map_err(Error::Message)?;
        let local_tag = from.tag().ok_or(Error::MissingTag("From"))?.to_string();
        let remote_tag = to.tag().ok_or(Error::MissingTag("To"))?.to_string();
        let mut route_set: Vec<String> = resp
            .headers
            .list(&HeaderName::RecordRoute)
            .into_iter()
            .map(str::to_string)
            .collect();
        route_set.reverse();
        Ok(Dialog {
            call_id: call_id_of(invite)?,
            local_tag,
            remote_tag,
            local: without_tag(from),
            remote: without_tag(to),
            remote_target: first_contact(resp.contacts().ok())
                .unwrap_or_else(|| invite.uri.clone()),
            route_set,
            local_seq: invite.cseq().map_err(Error::Message)?.seq,
            remote_seq: None,
        })
    }

    /// The dialog a UAS forms from a received INVITE and the response it sends (which must
    /// carry a To tag).
    pub fn from_uas(invite: &Request, resp: &Response) -> Result<Dialog, Error> {
        let from = invite.from_hdr().map_err(Error::Message)?;
        let to = resp.to_hdr().map_err(Error::Message)?;
        let remote_tag = from.tag().ok_or(Error::MissingTag("From"))?.to_string();
        let local_tag = to.tag().ok_or(Error::MissingTag("To"))?.to_string();
        Ok(Dialog {
            call_id: call_id_of(invite)?,
            local_tag,
            remote_tag,
            local: without_tag(to),
            remote: without_tag(from),
            remote_target: first_contact(invite.contacts().ok())
                .ok_or(Error::MissingHeader("Contact"))?,
            route_set: invite
                .headers
                .list(&HeaderName::RecordRoute)
                .into_iter()
                .map(str::to_string)
                .collect(),
            local_seq: 0,
            remote_seq: Some(invite.cseq().map_err(Error::Message)?.seq),
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
