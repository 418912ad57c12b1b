//! The server side of the endpoint: requests in, matched to server transactions, answered
//! by the endpoint itself when no call control is needed, otherwise handed to the TU.

use super::*;

impl Endpoint {
    // ----- requests ----------------------------------------------------------------------

    pub(super) fn on_request(&mut self, now: Instant, src: Peer, mut req: Request) {
        self.stats.count_request(&req.method);
        let via = match stamp_via(&mut req, &src) {
            Ok(via) => via,
            Err(e) => {
                self.reply_stateless(&req, src, 400, e.reason_phrase());
                return;
            }
        };
        let reply_to = reply_target(&src, &via);
        if let Err(e) = req.validate() {
            self.reply_stateless(&req, reply_to, e.status(), e.reason_phrase());
            return;
        }
        match req.method {
            Method::Ack => return self.on_ack(now, src, req, &via),
            Method::Cancel => return self.on_cancel(now, src, reply_to, req, &via),
            _ => {}
        }
        let key = server_match(&req, &via, req.method.as_str());
        if let Some(&id) = self.server_index.get(&key) {
            self.on_server_retransmit(id);
            return;
        }
        let in_dialog = req.to_hdr().ok().is_some_and(|to| to.tag().is_some());
        if !self.has_room(in_dialog) {
            self.refuse_overloaded(&req, reply_to);
            if req.method == Method::Invite && !in_dialog {
                self.events.push_back(Event::OverloadRefused { req, src });
            }
            return;
        }
        let source = src.addr.ip();
        if !in_dialog && !self.source_has_room(source) {
            bump(&mut self.stats.source_share_rejections);
            self.stats.last_share_refused = Some(source);
            self.refuse_overloaded(&req, reply_to);
            // As much an overload `503` as a full table's: the TU records the call.
            if req.method == Method::Invite {
                self.events.push_back(Event::OverloadRefused { req, src });
            }
            return;
        }
        let id = self.new_server(now, key, req.clone(), reply_to);
        if !in_dialog && let Some(e) = self.servers.get_mut(&id) {
            e.counted_source = Some(source);
            *self.per_source.entry(source).or_default() += 1;
        }
        self.dispatch_new(now, id, req, src);
    }

    /// Whether a new server transaction may be created. Requests outside a dialog stop at
    /// `max_transactions`; in-dialog requests and CANCEL have a reserve of the same size
    /// again, so the BYE that ends a call is not refused while new calls are (a refused BYE
    /// ends the call for the caller but not here, leaving its media ports held). The reserve
    /// only runs out when in-dialog transactions alone outnumber the cap, which live calls
    /// cannot cause; it keeps the table bounded against a flood of forged To tags.
    pub(super) fn has_room(&self, in_dialog_or_cancel: bool) -> bool {
        let cap = self.cfg.max_transactions;
        let limit = if in_dialog_or_cancel {
            cap.saturating_mul(2)
        } else {
            cap
        };
        self.servers.len() < limit
    }

    /// Whether `source` may open one more transaction outside a dialog: it holds fewer than
    /// `max_transactions_per_source`.
    pub(super) fn source_has_room(&self, source: IpAddr) -> bool {
        self.per_source.get(&source).copied().unwrap_or(0) < self.cfg.max_transactions_per_source
    }

    /// The stateless `503` of a full transaction table.
    pub(super) fn refuse_overloaded(&mut self, req: &Request, dest: Peer) {
        bump(&mut self.stats.overload_rejections);
        let mut resp = Response::from_request(req, 503, "Service Unavailable", None);
        resp.headers
            .push(HeaderName::RetryAfter, OVERLOAD_RETRY_AFTER_S.to_string());
        self.send_stateless(req, dest, resp);
    }

    pub(super) fn on_server_retransmit(&mut self, id: u64) {
        bump(&mut self.stats.retransmissions_absorbed);
        let Some(e) = self.servers.get_mut(&id) else {
            return;
        };
        if e.txn.on_request_retransmit() == ServerAction::ResendResponse
            && let Some(bytes) = e.last_response.clone()
        {
            let dest = e.reply_to.clone();
            bump(&mut self.stats.retransmissions_sent);
            self.transmits.push_back(Transmit { dest, bytes });
        }
    }

    /// A server transaction for `req`. It keeps the request without its body: responses are
    /// built from the headers, the TU gets the whole request in its event, and a table full
    /// of large bodies (a spray of padded OPTIONS held for Timer J) would cost up to
    /// `max_transactions` × `max_message_size` of memory.
    pub(super) fn new_server(
        &mut self,
        now: Instant,
        key: ServerMatch,
        mut req: Request,
        reply_to: Peer,
    ) -> u64 {
        let _ = now;
        req.body = Vec::new();
        // A new server transaction arms no timer until it answers (send_response schedules).
        let id = self.alloc_id();
        let txn = ServerTxn::new(
            req.method == Method::Invite,
            reply_to.transport.is_reliable(),
            self.cfg.timers,
        );
        self.server_index.insert(key.clone(), id);
        self.servers.insert(
            id,
            ServerEntry {
                txn,
                index: key,
                request: req,
                reply_to,
                last_response: None,
                sched: None,
                counted_source: None,
            },
        );
        id
    }

    pub(super) fn dispatch_new(&mut self, now: Instant, id: u64, req: Request, src: Peer) {
        let in_dialog = req.to_hdr().ok().is_some_and(|to| to.tag().is_some());
        if max_forwards(&req) == Some(0) && req.method != Method::Options {
            return self.reply_own(now, id, &req, 483, "Too Many Hops");
        }
        // A new INVITE goes to call control even when it requires what is not supported:
        // the refusal is a call that must be recorded.
        let required = crate::extensions::unsupported(&req);
        let new_invite = req.method == Method::Invite && !in_dialog;
        if !required.is_empty() && !new_invite {
            let mut resp = Response::from_request(&req, 420, "Bad Extension", None);
            resp.headers
                .push(HeaderName::Other("Unsupported".into()), required.join(", "));
            return self.reply_own_response(now, id, resp);
        }
        match &req.method {
            Method::Register => {
                let outcome = self.registrar.handle_register(now, &req, &src);
                self.reply_own_response(now, id, outcome.response);
                if let Some(agent) = outcome.changed {
                    self.registration_changed(agent, now);
                }
            }
            Method::Options if !in_dialog => {
                let mut resp = Response::from_request(&req, 200, "OK", None);
                resp.headers.push(HeaderName::Allow, ALLOW);
                resp.headers.push(HeaderName::Accept, "application/sdp");
                resp.headers
                    .push(HeaderName::Supported, crate::extensions::SUPPORTED);
                self.reply_own_response(now, id, resp);
            }
            Method::Invite => {
                let trying = Response::from_request(&req, 100, "Trying", None);
                let _ = self.send_response(now, id, trying);
                self.events.push_back(Event::NewRequest {
                    txn: ServerTxnKey(id),
                    req,
                    src,
                });
            }
            Method::Bye
            | Method::Refer
            | Method::Notify
            | Method::Info
            | Method::Update
            | Method::Prack
            | Method::Message
            | Method::Options => {
                self.events.push_back(Event::NewRequest {
                    txn: ServerTxnKey(id),
                    req,
                    src,
                });
            }
            Method::Other(_) => self.reply_own(now, id, &req, 501, "Not Implemented"),
            _ => {
                let mut resp = Response::from_request(&req, 405, "Method Not Allowed", None);
                resp.headers.push(HeaderName::Allow, ALLOW);
                self.reply_own_response(now, id, resp);
            }
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, src: Peer, ack: Request, via: &Via) {
        let key = server_match(&ack, via, "INVITE");
        if let Some(&id) = self.server_index.get(&key)
            && let Some(e) = self.servers.get_mut(&id)
            && matches!(
                e.txn.state(),
                ServerState::Completed | ServerState::Confirmed
            )
        {
            if e.txn.state() == ServerState::Confirmed {
                bump(&mut self.stats.retransmissions_absorbed);
            }
            e.txn.on_ack(now);
            self.schedule(TimerOwner::Server(id));
            return;
        }
        let pending_id = match (ack.call_id(), ack.cseq()) {
            (Some(call_id), Ok(cseq)) => self
                .pending_ack_index
                .get(&(call_id.to_string(), cseq.seq))
                .copied(),
            _ => None,
        };
        let pending = pending_id.and_then(|id| self.pending_acks.get_mut(&id));
        let invite_txn = match pending {
            Some(p) if p.acked => {
                bump(&mut self.stats.retransmissions_absorbed);
                return;
            }
            Some(p) => {
                p.acked = true;
                p.next_retransmit = None;
                Some(p.invite_txn)
            }
            None => None,
        };
        if let Some(id) = pending_id {
            self.schedule(TimerOwner::PendingAck(id));
        }
        self.events.push_back(Event::AckReceived {
            invite_txn,
            ack,
            src,
        });
    }

    pub(super) fn on_cancel(
        &mut self,
        now: Instant,
        src: Peer,
        reply_to: Peer,
        cancel: Request,
        via: &Via,
    ) {
        let _ = src;
        let key = server_match(&cancel, via, "CANCEL");
        if let Some(&id) = self.server_index.get(&key) {
            self.on_server_retransmit(id);
            return;
        }
        if !self.has_room(true) {
            self.refuse_overloaded(&cancel, reply_to);
            return;
        }
        let invite = self
            .server_index
            .get(&server_match(&cancel, via, "INVITE"))
            .copied();
        let id = self.new_server(now, key, cancel.clone(), reply_to);
        match invite.and_then(|inv| self.servers.get(&inv).map(|e| (inv, e.txn.has_final()))) {
            Some((inv, false)) => {
                self.reply_own(now, id, &cancel, 200, "OK");
                self.events.push_back(Event::CancelRequested {
                    invite_txn: ServerTxnKey(inv),
                    cancel,
                });
            }
            // §9.2: the INVITE already has its final response; the CANCEL has no effect.
            Some((_, true)) => self.reply_own(now, id, &cancel, 200, "OK"),
            None => self.reply_own(now, id, &cancel, 481, "Call/Transaction Does Not Exist"),
        }
    }

    /// A response the endpoint itself generates on server transaction `id`.
    pub(super) fn reply_own(
        &mut self,
        now: Instant,
        id: u64,
        req: &Request,
        status: u16,
        reason: &str,
    ) {
        let resp = Response::from_request(req, status, reason, None);
        self.reply_own_response(now, id, resp);
    }

    pub(super) fn reply_own_response(&mut self, now: Instant, id: u64, mut resp: Response) {
        if resp.status > 100 {
            let tag = self.new_tag();
            ensure_to_tag(&mut resp, &tag);
        }
        let _ = self.send_response(now, id, resp);
    }

    pub(super) fn send_response(
        &mut self,
        now: Instant,
        id: u64,
        mut resp: Response,
    ) -> Result<(), Error> {
        let e = self.servers.get_mut(&id).ok_or(Error::UnknownTransaction)?;
        let was_accepted = e.txn.state() == ServerState::Accepted;
        e.txn
            .on_tu_response(now, resp.status)
            .map_err(|r| match r {
                RespondRefusal::AlreadyFinal => Error::AlreadyFinal,
                RespondRefusal::Terminated => Error::UnknownTransaction,
                RespondRefusal::BadStatus => Error::BadStatus(resp.status),
            })?;
        if !resp.headers.contains(&HeaderName::Server) {
            resp.headers
                .push(HeaderName::Server, self.cfg.user_agent.clone());
        }
        let bytes = resp.to_bytes();
        let dest = e.reply_to.clone();
        let is_2xx_to_invite = e.txn.is_invite() && (200..300).contains(&resp.status);
        e.last_response = Some(bytes.clone());
        if !was_accepted {
            bump_class(&mut self.stats.responses_sent, resp.status);
        }
        self.schedule(TimerOwner::Server(id));
        if is_2xx_to_invite && let (Some(call_id), Ok(cseq)) = (resp.call_id(), resp.cseq()) {
            let t1 = self.cfg.timers.t1;
            let key = (call_id.to_string(), cseq.seq);
            let reliable = dest.transport.is_reliable();
            let ack_id = match self.pending_ack_index.get(&key) {
                Some(&ack_id) => ack_id,
                None => {
                    let ack_id = self.alloc_ack_id();
                    self.pending_ack_index.insert(key.clone(), ack_id);
                    self.pending_acks.insert(
                        ack_id,
                        PendingAck {
                            key,
                            invite_txn: ServerTxnKey(id),
                            bytes: Vec::new(),
                            dest: dest.clone(),
                            interval: t1,
                            next_retransmit: None,
                            give_up: now + t1.saturating_mul(64),
                            acked: false,
                            sched: None,
                        },
                    );
                    ack_id
                }
            };
            if let Some(entry) = self.pending_acks.get_mut(&ack_id) {
                entry.bytes = bytes.clone();
                if !reliable && !entry.acked && entry.next_retransmit.is_none() {
                    entry.next_retransmit = Some(now + t1);
                }
            }
            self.schedule(TimerOwner::PendingAck(ack_id));
        }
        self.transmits.push_back(Transmit { dest, bytes });
        Ok(())
    }

    /// A response outside any transaction (the request could not be matched or validated).
    /// Never for ACK.
    pub(super) fn reply_stateless(&mut self, req: &Request, dest: Peer, status: u16, reason: &str) {
        let resp = Response::from_request(req, status, reason, None);
        self.send_stateless(req, dest, resp);
    }

    /// Sends `resp` to `req` outside any transaction, with a To tag and `Server`. Never for
    /// ACK.
    pub(super) fn send_stateless(&mut self, req: &Request, dest: Peer, resp: Response) {
        if req.method == Method::Ack {
            bump(&mut self.stats.dropped);
            return;
        }
        let mut resp = resp;
        let status = resp.status;
        let tag = self.new_tag();
        ensure_to_tag(&mut resp, &tag);
        resp.headers
            .push(HeaderName::Server, self.cfg.user_agent.clone());
        bump_class(&mut self.stats.responses_sent, status);
        self.transmits.push_back(Transmit {
            dest,
            bytes: resp.to_bytes(),
        });
    }

    /// Unparseable input: a 400 when the request is recoverable enough to answer, else drop.
    pub(super) fn on_garbage(&mut self, src: Peer, bytes: &[u8], err: &ParseError) {
        let tag = self.new_tag();
        match raw_error_response(bytes, err, &tag, &self.cfg.user_agent) {
            Some((resp, via)) => {
                let dest = via
                    .and_then(|v| Via::parse(&v).ok())
                    .map_or_else(|| src.clone(), |v| reply_target(&src, &v));
                bump_class(&mut self.stats.responses_sent, err.status());
                self.transmits.push_back(Transmit { dest, bytes: resp });
            }
            None => bump(&mut self.stats.dropped),
        }
    }

    pub(super) fn registration_changed(&mut self, agent: String, now: Instant) {
        let contacts = self.registrar.contacts_for(&agent, now);
        self.events
            .push_back(Event::RegistrationChanged { agent, contacts });
    }
}
