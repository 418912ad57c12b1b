//! The client side of the endpoint: what the TU sends (requests, ACKs for 2xx, CANCEL),
//! responses to it, and the client transactions that carry them.

use super::*;

impl Endpoint {
    // ----- TU actions --------------------------------------------------------------------

    /// The TU answers server transaction `txn`. A `Server` header is added when absent; the
    /// To tag is the TU's business (use the same tag for all responses of a dialog).
    /// A 2xx to an INVITE is retransmitted by the endpoint until the ACK arrives
    /// ([`Event::AckReceived`]) or 64·T1 pass ([`Event::AckTimeout`]).
    pub fn respond(
        &mut self,
        now: Instant,
        txn: ServerTxnKey,
        resp: Response,
    ) -> Result<(), Error> {
        let result = self.send_response(now, txn.0, resp);
        self.settle_timers();
        result
    }

    /// The TU starts a client transaction: sends `req` to `dest`. Adds, when absent: a top
    /// Via with a fresh branch and `rport`, Max-Forwards 70, Call-ID, User-Agent. An ACK
    /// is sent statelessly as by [`Self::send_ack`] and its key never produces events.
    pub fn send_request(&mut self, now: Instant, dest: Peer, req: Request) -> ClientTxnKey {
        let id = self.alloc_id();
        self.start_client(now, id, dest, req);
        self.settle_timers();
        ClientTxnKey(id)
    }

    /// Sends the ACK for a 2xx (build it with [`dialog::ack_for_2xx`]). The endpoint keeps
    /// it for 64·T1 and resends it whenever the 2xx is retransmitted, without telling the
    /// TU again.
    pub fn send_ack(&mut self, now: Instant, dest: Peer, ack: Request) {
        self.remember_and_send_ack(now, dest, ack);
        self.settle_timers();
    }

    pub(super) fn remember_and_send_ack(&mut self, now: Instant, dest: Peer, ack: Request) {
        let mut ack = ack;
        let dest = self.with_local(dest);
        self.prepare_request(&mut ack, &dest);
        let bytes = ack.to_bytes();
        if let (Some(call_id), Ok(cseq), Ok(to)) = (ack.call_id(), ack.cseq(), ack.to_hdr()) {
            let key = (
                call_id.to_string(),
                cseq.seq,
                to.tag().unwrap_or("").to_string(),
            );
            if let Some(old) = self.sent_ack_index.get(&key).copied() {
                self.remove_sent_ack(old);
            }
            let id = self.alloc_ack_id();
            self.sent_ack_index.insert(key.clone(), id);
            self.sent_acks.insert(
                id,
                SentAck {
                    key,
                    bytes: bytes.clone(),
                    dest: dest.clone(),
                    until: now + self.cfg.timers.t1_x64(),
                    sched: None,
                },
            );
            self.schedule(TimerOwner::SentAck(id));
        }
        self.transmits.push_back(Transmit { dest, bytes });
    }

    /// Cancels the INVITE client transaction `invite` (§9.1). The CANCEL is a client
    /// transaction of its own, returned here; its final response comes as
    /// [`Event::Response`]. Before any provisional response the CANCEL is held and sent when
    /// the first one arrives (it is dropped if the INVITE ends first). When the INVITE gets
    /// no final response (not even 487) within 64·T1 of the CANCEL being sent, it ends with
    /// [`Event::TransactionTimeout`], as when Timer B fires.
    pub fn cancel(&mut self, now: Instant, invite: ClientTxnKey) -> Result<ClientTxnKey, Error> {
        let result = self.start_cancel(now, invite);
        self.settle_timers();
        result
    }

    pub(super) fn start_cancel(
        &mut self,
        now: Instant,
        invite: ClientTxnKey,
    ) -> Result<ClientTxnKey, Error> {
        let id = self.alloc_id();
        let entry = self
            .clients
            .get_mut(&invite.0)
            .ok_or(Error::UnknownTransaction)?;
        if !entry.txn.is_invite() {
            return Err(Error::NotInvite);
        }
        match entry.txn.state() {
            ClientState::Calling => {
                entry.deferred_cancel = Some(ClientTxnKey(id));
                Ok(ClientTxnKey(id))
            }
            ClientState::Proceeding => {
                entry.txn.on_cancel_sent(now);
                let cancel = dialog::cancel_for(&entry.request);
                let dest = entry.dest.clone();
                self.schedule(TimerOwner::Client(invite.0));
                self.start_client(now, id, dest, cancel);
                Ok(ClientTxnKey(id))
            }
            _ => Err(Error::AlreadyFinal),
        }
    }

    // ----- responses ---------------------------------------------------------------------

    pub(super) fn on_response(&mut self, now: Instant, resp: Response) {
        bump_class(&mut self.stats.responses_received, resp.status);
        let (Ok(via), Ok(cseq)) = (resp.top_via(), resp.cseq()) else {
            bump(&mut self.stats.dropped);
            return;
        };
        let Some(branch) = via.branch() else {
            bump(&mut self.stats.dropped);
            return;
        };
        let is_invite_2xx = cseq.method == Method::Invite && (200..300).contains(&resp.status);
        if is_invite_2xx && self.resend_ack_for(&resp) {
            return;
        }
        let key = ClientMatch {
            branch: branch.to_string(),
            method: cseq.method.as_str().to_string(),
        };
        let Some(&id) = self.client_index.get(&key) else {
            bump(&mut self.stats.dropped);
            return;
        };
        let Some(e) = self.clients.get_mut(&id) else {
            return;
        };
        let action = e.txn.on_response(now, resp.status);
        let mut deferred = None;
        if (100..200).contains(&resp.status) {
            deferred = e
                .deferred_cancel
                .take()
                .map(|k| (k, dialog::cancel_for(&e.request), e.dest.clone()));
            if deferred.is_some() {
                e.txn.on_cancel_sent(now);
            }
        } else if resp.status >= 200 {
            e.deferred_cancel = None;
        }
        match action {
            ClientAction::PassToTu => self.events.push_back(Event::Response {
                txn: ClientTxnKey(id),
                resp,
            }),
            ClientAction::AckAndPassToTu => {
                let mut ack = dialog::ack_for_non_2xx(&e.request, &resp);
                if !ack.headers.contains(&HeaderName::UserAgent) {
                    ack.headers
                        .push(HeaderName::UserAgent, self.cfg.user_agent.clone());
                }
                let bytes = ack.to_bytes();
                e.ack = Some(bytes.clone());
                self.transmits.push_back(Transmit {
                    dest: e.dest.clone(),
                    bytes,
                });
                self.events.push_back(Event::Response {
                    txn: ClientTxnKey(id),
                    resp,
                });
            }
            ClientAction::ResendAck => {
                bump(&mut self.stats.retransmissions_absorbed);
                if let Some(bytes) = e.ack.clone() {
                    self.transmits.push_back(Transmit {
                        dest: e.dest.clone(),
                        bytes,
                    });
                }
            }
            ClientAction::Nothing | ClientAction::Retransmit | ClientAction::Timeout => {
                bump(&mut self.stats.retransmissions_absorbed);
            }
        }
        if let Some((key, cancel, dest)) = deferred {
            self.start_client(now, key.0, dest, cancel);
        }
        if self.clients.get(&id).is_some_and(|e| e.txn.is_terminated()) {
            self.remove_client(id);
        } else {
            self.schedule(TimerOwner::Client(id));
        }
    }

    /// Resends our ACK when `resp` is a retransmitted 2xx we already acknowledged.
    pub(super) fn resend_ack_for(&mut self, resp: &Response) -> bool {
        let (Some(call_id), Ok(cseq), Ok(to)) = (resp.call_id(), resp.cseq(), resp.to_hdr()) else {
            return false;
        };
        let key = (
            call_id.to_string(),
            cseq.seq,
            to.tag().unwrap_or("").to_string(),
        );
        match self
            .sent_ack_index
            .get(&key)
            .and_then(|id| self.sent_acks.get(id))
        {
            Some(a) => {
                bump(&mut self.stats.retransmissions_absorbed);
                self.transmits.push_back(Transmit {
                    dest: a.dest.clone(),
                    bytes: a.bytes.clone(),
                });
                true
            }
            None => false,
        }
    }

    // ----- client transactions -----------------------------------------------------------

    pub(super) fn prepare_request(&mut self, req: &mut Request, dest: &Peer) {
        if !req.headers.contains(&HeaderName::Via) {
            let branch = self.new_branch();
            let via = format!(
                "SIP/2.0/{} {};branch={branch};rport",
                dest.transport.via_token(),
                self.sent_by(dest)
            );
            req.headers.push_front(HeaderName::Via, via);
        } else if let Ok(mut via) = req.top_via()
            && via.branch().is_none()
        {
            let branch = self.new_branch();
            via.set_param("branch", Some(&branch));
            replace_top_via(&mut req.headers, &via.to_string());
        }
        if !req.headers.contains(&HeaderName::MaxForwards) {
            req.headers.push(HeaderName::MaxForwards, "70");
        }
        if !req.headers.contains(&HeaderName::CallId) {
            let call_id = self.new_call_id();
            req.headers.push(HeaderName::CallId, call_id);
        }
        if !req.headers.contains(&HeaderName::UserAgent) {
            req.headers
                .push(HeaderName::UserAgent, self.cfg.user_agent.clone());
        }
    }

    pub(super) fn start_client(&mut self, now: Instant, id: u64, dest: Peer, req: Request) {
        if req.method == Method::Ack {
            self.remember_and_send_ack(now, dest, req);
            return;
        }
        let mut req = req;
        let dest = self.with_local(dest);
        self.prepare_request(&mut req, &dest);
        let bytes = req.to_bytes();
        let branch = req
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let index = ClientMatch {
            branch,
            method: req.method.as_str().to_string(),
        };
        if let Some(old) = self.client_index.insert(index.clone(), id) {
            self.clients.remove(&old);
        }
        let txn = ClientTxn::new(
            now,
            req.method == Method::Invite,
            dest.transport.is_reliable(),
            self.cfg.timers,
        );
        self.transmits.push_back(Transmit {
            dest: dest.clone(),
            bytes: bytes.clone(),
        });
        self.clients.insert(
            id,
            ClientEntry {
                txn,
                index,
                request: req,
                bytes,
                dest,
                ack: None,
                deferred_cancel: None,
                sched: None,
            },
        );
        self.schedule(TimerOwner::Client(id));
    }

    pub(super) fn remove_client(&mut self, id: u64) {
        if let Some(e) = self.clients.remove(&id)
            && self.client_index.get(&e.index) == Some(&id)
        {
            self.client_index.remove(&e.index);
        }
    }

    pub(super) fn remove_server(&mut self, id: u64) {
        let Some(e) = self.servers.remove(&id) else {
            return;
        };
        if self.server_index.get(&e.index) == Some(&id) {
            self.server_index.remove(&e.index);
        }
        if let Some(ip) = e.counted_source
            && let Some(n) = self.per_source.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&ip);
            }
        }
    }
}
