//! RFC 3261 §17 transaction state machines (with the RFC 6026 "Accepted" states).
//!
//! These machines know only what the RFC makes them depend on: whether the transaction is
//! for an INVITE, whether the transport is reliable, response status codes, and time. They
//! hold no messages; they tell the [`Endpoint`](crate::Endpoint) what to do with the messages
//! it keeps (retransmit the request, send an ACK, pass a response up, report a timeout).
//!
//! Both machines are one [`Txn`] over their own state enum: the timer plumbing (arming at
//! the initial values of the timer table, retransmission back-off, termination) is written
//! once; the transitions of each side are in its own `impl` block.

use std::time::Duration;

use crate::time::{Instant, Timer, TimerConfig, TimerSlots};

/// The state enum of a transaction machine: [`ClientState`] or [`ServerState`].
pub trait TxnState: Copy + Eq + std::fmt::Debug {
    /// The state in which the endpoint forgets the transaction.
    const TERMINATED: Self;
}

/// A transaction state machine over the states `S`; use [`ClientTxn`] or [`ServerTxn`].
#[derive(Debug, Clone)]
pub struct Txn<S> {
    invite: bool,
    reliable: bool,
    cfg: TimerConfig,
    state: S,
    timers: TimerSlots,
    retransmit_interval: Duration,
}

impl<S: TxnState> Txn<S> {
    fn with_state(invite: bool, reliable: bool, cfg: TimerConfig, state: S) -> Txn<S> {
        let cfg = cfg.sanitized();
        Txn {
            invite,
            reliable,
            cfg,
            state,
            timers: TimerSlots::default(),
            retransmit_interval: cfg.t1,
        }
    }

    /// Current state.
    pub fn state(&self) -> S {
        self.state
    }

    /// Whether this is an INVITE transaction.
    pub fn is_invite(&self) -> bool {
        self.invite
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == S::TERMINATED
    }

    /// The earliest armed timer.
    pub fn next_timer(&self) -> Option<(Instant, Timer)> {
        self.timers.next()
    }

    /// The transport could not deliver the request (§17.1.4) or a response (§17.2.4): the
    /// transaction ends.
    pub fn on_transport_error(&mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = S::TERMINATED;
        self.timers.clear();
    }

    /// Moves to `state`, disarming every timer, then arms `timers` at their initial values.
    fn enter(&mut self, now: Instant, state: S, timers: &[Timer]) {
        self.state = state;
        self.timers.clear();
        for &timer in timers {
            self.arm(now, timer);
        }
    }

    fn arm(&mut self, now: Instant, timer: Timer) {
        self.timers
            .arm_initial(timer, now, &self.cfg, self.reliable);
    }

    /// The last retransmission interval doubled, capped at T2 when `capped`.
    fn doubled_interval(&self, capped: bool) -> Duration {
        let doubled = self.retransmit_interval.saturating_mul(2);
        if capped {
            doubled.min(self.cfg.t2)
        } else {
            doubled
        }
    }

    /// Arms the retransmission `timer` to fire `interval` after `now`; the next back-off
    /// doubles from `interval`.
    fn retransmit_in(&mut self, now: Instant, timer: Timer, interval: Duration) {
        self.retransmit_interval = interval;
        self.timers.arm(timer, now + interval);
    }
}

/// State of a client transaction (§17.1.1 for INVITE, §17.1.2 for non-INVITE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, no response yet.
    Calling,
    /// Non-INVITE request sent, no response yet.
    Trying,
    /// A provisional response was received.
    Proceeding,
    /// A final response (non-2xx for INVITE) was received; absorbing retransmissions.
    Completed,
    /// INVITE got a 2xx; further 2xx are passed up so the dialog can ACK them (RFC 6026).
    Accepted,
    /// Done; the endpoint forgets the transaction.
    Terminated,
}

impl TxnState for ClientState {
    const TERMINATED: Self = ClientState::Terminated;
}

/// What the endpoint must do after a client transaction consumed an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAction {
    /// Nothing (absorbed, or a timer that only changed state).
    Nothing,
    /// Pass the response up to the TU.
    PassToTu,
    /// Send the ACK for the non-2xx final response, then pass the response up.
    AckAndPassToTu,
    /// Send the ACK again (a retransmitted non-2xx final response); do not pass it up.
    ResendAck,
    /// Retransmit the request.
    Retransmit,
    /// The transaction timed out (Timer B or F, or no final response 64·T1 after a
    /// CANCEL); tell the TU.
    Timeout,
}

/// A client transaction state machine.
pub type ClientTxn = Txn<ClientState>;

impl Txn<ClientState> {
    /// A transaction whose request was handed to the transport at `now`.
    pub fn new(now: Instant, invite: bool, reliable: bool, cfg: TimerConfig) -> ClientTxn {
        let (state, retransmit, timeout) = if invite {
            (ClientState::Calling, Timer::A, Timer::B)
        } else {
            (ClientState::Trying, Timer::E, Timer::F)
        };
        let mut txn = Txn::with_state(invite, reliable, cfg, state);
        txn.arm(now, retransmit);
        txn.arm(now, timeout);
        txn
    }

    /// A CANCEL for this INVITE was sent (§9.1). If no final response arrives within 64·T1,
    /// the transaction ends as if Timer B fired: Timer B, disarmed by the provisional
    /// response that allowed the CANCEL, is armed again (a second CANCEL keeps the first
    /// deadline). Only an INVITE in Proceeding can be cancelled; otherwise nothing changes.
    pub fn on_cancel_sent(&mut self, now: Instant) {
        if self.invite
            && self.state == ClientState::Proceeding
            && self.timers.deadline(Timer::B).is_none()
        {
            self.arm(now, Timer::B);
        }
    }

    /// A response with `status` matched this transaction.
    pub fn on_response(&mut self, now: Instant, status: u16) -> ClientAction {
        if self.invite {
            self.invite_response(now, status)
        } else {
            self.non_invite_response(now, status)
        }
    }

    fn invite_response(&mut self, now: Instant, status: u16) -> ClientAction {
        use ClientState::*;
        match (self.state, status) {
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.timers.disarm(Timer::A);
                self.timers.disarm(Timer::B);
                ClientAction::PassToTu
            }
            (Calling | Proceeding, 200..=299) => {
                self.enter(now, Accepted, &[Timer::M]);
                ClientAction::PassToTu
            }
            (Calling | Proceeding, 300..=699) => {
                self.enter(now, Completed, &[Timer::D]);
                ClientAction::AckAndPassToTu
            }
            (Completed, 300..=699) => ClientAction::ResendAck,
            (Accepted, 200..=299) => ClientAction::PassToTu,
            _ => ClientAction::Nothing,
        }
    }

    fn non_invite_response(&mut self, now: Instant, status: u16) -> ClientAction {
        use ClientState::*;
        match (self.state, status) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                ClientAction::PassToTu
            }
            (Trying | Proceeding, 200..=699) => {
                self.enter(now, Completed, &[Timer::K]);
                ClientAction::PassToTu
            }
            _ => ClientAction::Nothing,
        }
    }

    /// `timer` reached its deadline. Callers fire only the timer [`Self::next_timer`] named.
    pub fn on_timer(&mut self, now: Instant, timer: Timer) -> ClientAction {
        use ClientState::*;
        self.timers.disarm(timer);
        match (self.state, timer) {
            (Calling, Timer::A) => {
                self.retransmit_in(now, Timer::A, self.doubled_interval(false));
                ClientAction::Retransmit
            }
            (Trying | Proceeding, Timer::E) => {
                let interval = if self.state == Trying {
                    self.doubled_interval(true)
                } else {
                    self.cfg.t2
                };
                self.retransmit_in(now, Timer::E, interval);
                ClientAction::Retransmit
            }
            (Calling | Proceeding, Timer::B) | (Trying | Proceeding, Timer::F) => {
                self.terminate();
                ClientAction::Timeout
            }
            (Completed, Timer::D | Timer::K) | (Accepted, Timer::M) => {
                self.terminate();
                ClientAction::Nothing
            }
            _ => ClientAction::Nothing,
        }
    }
}

/// State of a server transaction (§17.2.1 for INVITE, §17.2.2 for non-INVITE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE request received, no response sent yet.
    Trying,
    /// A provisional response was sent (INVITE transactions start here: the endpoint sends
    /// 100 Trying at once).
    Proceeding,
    /// A final response was sent (non-2xx for INVITE); answering retransmissions.
    Completed,
    /// INVITE: the ACK for the non-2xx final response arrived; absorbing ACK retransmissions.
    Confirmed,
    /// INVITE: a 2xx was sent; INVITE retransmissions are absorbed (RFC 6026).
    Accepted,
    /// Done; the endpoint forgets the transaction.
    Terminated,
}

impl TxnState for ServerState {
    const TERMINATED: Self = ServerState::Terminated;
}

/// What the endpoint must do after a server transaction consumed an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerAction {
    /// Nothing (absorbed, or a timer that only changed state).
    Nothing,
    /// Send the last response again.
    ResendResponse,
    /// The ACK never came (Timer H); tell the TU.
    Timeout,
}

/// Why the TU may not send a response on a server transaction now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespondRefusal {
    /// A final response was already sent.
    AlreadyFinal,
    /// The transaction has ended.
    Terminated,
    /// Status outside 100–699.
    BadStatus,
}

/// A server transaction state machine.
pub type ServerTxn = Txn<ServerState>;

impl Txn<ServerState> {
    /// A transaction for a request just received.
    pub fn new(invite: bool, reliable: bool, cfg: TimerConfig) -> ServerTxn {
        let state = if invite {
            ServerState::Proceeding
        } else {
            ServerState::Trying
        };
        Txn::with_state(invite, reliable, cfg, state)
    }

    /// Whether a final response has been sent.
    pub fn has_final(&self) -> bool {
        !matches!(self.state, ServerState::Trying | ServerState::Proceeding)
    }

    /// A retransmission of the request arrived.
    pub fn on_request_retransmit(&mut self) -> ServerAction {
        match self.state {
            // Trying: no response yet, nothing to resend. Accepted: RFC 6026 absorbs; the
            // 2xx is retransmitted by the dialog layer on its own schedule.
            ServerState::Trying | ServerState::Accepted | ServerState::Terminated => {
                ServerAction::Nothing
            }
            ServerState::Proceeding | ServerState::Completed => ServerAction::ResendResponse,
            ServerState::Confirmed => ServerAction::Nothing,
        }
    }

    /// An ACK matched this (INVITE) transaction.
    pub fn on_ack(&mut self, now: Instant) -> ServerAction {
        if self.invite && self.state == ServerState::Completed {
            self.enter(now, ServerState::Confirmed, &[Timer::I]);
        }
        ServerAction::Nothing
    }

    /// The TU sends a response with `status`; on `Ok` the endpoint transmits it.
    pub fn on_tu_response(&mut self, now: Instant, status: u16) -> Result<(), RespondRefusal> {
        use ServerState::*;
        if !(100..=699).contains(&status) {
            return Err(RespondRefusal::BadStatus);
        }
        match (self.state, status) {
            (Terminated, _) => Err(RespondRefusal::Terminated),
            // A 2xx retransmission by the dialog layer while the transaction lingers.
            (Accepted, 200..=299) if self.invite => Ok(()),
            (Completed | Confirmed | Accepted, _) => Err(RespondRefusal::AlreadyFinal),
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                Ok(())
            }
            (Trying | Proceeding, 200..=299) if self.invite => {
                self.enter(now, Accepted, &[Timer::L]);
                Ok(())
            }
            (Trying | Proceeding, _) => {
                let timers: &[Timer] = if self.invite {
                    &[Timer::G, Timer::H]
                } else {
                    &[Timer::J]
                };
                self.enter(now, Completed, timers);
                Ok(())
            }
        }
    }

    /// `timer` reached its deadline. Callers fire only the timer [`Self::next_timer`] named.
    pub fn on_timer(&mut self, now: Instant, timer: Timer) -> ServerAction {
        use ServerState::*;
        self.timers.disarm(timer);
        match (self.state, timer) {
            (Completed, Timer::G) => {
                self.retransmit_in(now, Timer::G, self.doubled_interval(true));
                ServerAction::ResendResponse
            }
            (Completed, Timer::H) => {
                self.terminate();
                ServerAction::Timeout
            }
            (Confirmed, Timer::I) | (Completed, Timer::J) | (Accepted, Timer::L) => {
                self.terminate();
                ServerAction::Nothing
            }
            _ => ServerAction::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_micros(n * 1000)
    }

    /// Fires timers with `fire` until none is left before `until`; returns (fire time ms,
    /// timer, action).
    fn run<S: TxnState, A>(
        txn: &mut Txn<S>,
        until: Instant,
        fire: fn(&mut Txn<S>, Instant, Timer) -> A,
    ) -> Vec<(u64, Timer, A)> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            match txn.next_timer() {
                Some((at, t)) if at <= until => {
                    let a = fire(txn, at, t);
                    out.push((at.as_micros() / 1000, t, a));
                }
                _ => break,
            }
        }
        out
    }

    fn run_client(txn: &mut ClientTxn, until: Instant) -> Vec<(u64, Timer, ClientAction)> {
        run(txn, until, ClientTxn::on_timer)
    }

    fn run_server(txn: &mut ServerTxn, until: Instant) -> Vec<(u64, Timer, ServerAction)> {
        run(txn, until, ServerTxn::on_timer)
    }

    #[test]
    fn timer_a_doubles_until_timer_b() {
        let mut txn = ClientTxn::new(ms(0), true, false, TimerConfig::default());
        let fired = run_client(&mut txn, ms(100_000));
        let retransmits: Vec<u64> = fired
            .iter()
            .filter(|f| f.2 == ClientAction::Retransmit)
            .map(|f| f.0)
            .collect();
        // 500, +1000, +2000, +4000, +8000, +16000 → all before 32 s.
        assert_eq!(retransmits, vec![500, 1500, 3500, 7500, 15_500, 31_500]);
        assert_eq!(
            fired.last(),
            Some(&(32_000, Timer::B, ClientAction::Timeout))
        );
        assert!(txn.is_terminated());
    }

    #[test]
    fn reliable_invite_has_no_retransmissions() {
        let mut txn = ClientTxn::new(ms(0), true, true, TimerConfig::default());
        let fired = run_client(&mut txn, ms(100_000));
        assert_eq!(fired, vec![(32_000, Timer::B, ClientAction::Timeout)]);
    }

    #[test]
    fn timer_e_caps_at_t2_and_goes_to_t2_in_proceeding() {
        let mut txn = ClientTxn::new(ms(0), false, false, TimerConfig::default());
        let fired = run_client(&mut txn, ms(10_000));
        let at: Vec<u64> = fired.iter().map(|f| f.0).collect();
        assert_eq!(at, vec![500, 1500, 3500, 7500]);
        assert_eq!(txn.on_response(ms(8_000), 100), ClientAction::PassToTu);
        let fired = run_client(&mut txn, ms(20_000));
        let at: Vec<u64> = fired.iter().map(|f| f.0).collect();
        // Next E was armed at 7500+4000; after that, T2 steps.
        assert_eq!(at, vec![11_500, 15_500, 19_500]);
        let fired = run_client(&mut txn, ms(40_000));
        assert_eq!(
            fired.last(),
            Some(&(32_000, Timer::F, ClientAction::Timeout))
        );
    }

    #[test]
    fn non_2xx_final_is_acked_and_retransmissions_absorbed_until_d() {
        let mut txn = ClientTxn::new(ms(0), true, false, TimerConfig::default());
        assert_eq!(txn.on_response(ms(100), 180), ClientAction::PassToTu);
        assert_eq!(txn.on_response(ms(200), 486), ClientAction::AckAndPassToTu);
        assert_eq!(txn.on_response(ms(300), 486), ClientAction::ResendAck);
        let fired = run_client(&mut txn, ms(100_000));
        assert_eq!(fired, vec![(32_200, Timer::D, ClientAction::Nothing)]);
        assert!(txn.is_terminated());
    }

    #[test]
    fn reliable_d_and_k_are_zero() {
        let mut inv = ClientTxn::new(ms(0), true, true, TimerConfig::default());
        inv.on_response(ms(10), 404);
        assert_eq!(inv.next_timer(), Some((ms(10), Timer::D)));
        let mut reg = ClientTxn::new(ms(0), false, true, TimerConfig::default());
        reg.on_response(ms(10), 200);
        assert_eq!(reg.next_timer(), Some((ms(10), Timer::K)));
    }

    #[test]
    fn invite_2xx_enters_accepted_and_passes_retransmitted_2xx() {
        let mut txn = ClientTxn::new(ms(0), true, false, TimerConfig::default());
        assert_eq!(txn.on_response(ms(50), 200), ClientAction::PassToTu);
        assert_eq!(txn.state(), ClientState::Accepted);
        assert_eq!(txn.on_response(ms(550), 200), ClientAction::PassToTu);
        let fired = run_client(&mut txn, ms(100_000));
        assert_eq!(fired, vec![(32_050, Timer::M, ClientAction::Nothing)]);
    }

    #[test]
    fn non_invite_k_absorbs_then_ends() {
        let mut txn = ClientTxn::new(ms(0), false, false, TimerConfig::default());
        assert_eq!(txn.on_response(ms(10), 200), ClientAction::PassToTu);
        assert_eq!(txn.on_response(ms(20), 200), ClientAction::Nothing);
        let fired = run_client(&mut txn, ms(100_000));
        assert_eq!(fired, vec![(5_010, Timer::K, ClientAction::Nothing)]);
    }

    #[test]
    fn cancel_in_proceeding_rearms_timer_b_once() {
        let mut txn = ClientTxn::new(ms(0), true, false, TimerConfig::default());
        assert_eq!(txn.on_response(ms(100), 180), ClientAction::PassToTu);
        assert_eq!(txn.next_timer(), None, "a provisional disarms A and B");
        txn.on_cancel_sent(ms(1_000));
        assert_eq!(txn.next_timer(), Some((ms(33_000), Timer::B)));
        txn.on_cancel_sent(ms(2_000));
        assert_eq!(txn.next_timer(), Some((ms(33_000), Timer::B)));
        let fired = run_client(&mut txn, ms(100_000));
        assert_eq!(fired, vec![(33_000, Timer::B, ClientAction::Timeout)]);
        assert!(txn.is_terminated());
    }

    #[test]
    fn final_response_after_cancel_stops_the_cancel_timeout() {
        let mut txn = ClientTxn::new(ms(0), true, true, TimerConfig::default());
        txn.on_response(ms(100), 180);
        txn.on_cancel_sent(ms(1_000));
        assert_eq!(txn.next_timer(), Some((ms(33_000), Timer::B)));
        assert_eq!(
            txn.on_response(ms(1_010), 487),
            ClientAction::AckAndPassToTu
        );
        assert_eq!(txn.next_timer(), Some((ms(1_010), Timer::D)));
    }

    #[test]
    fn cancel_outside_proceeding_changes_nothing() {
        let mut calling = ClientTxn::new(ms(0), true, false, TimerConfig::default());
        let before = calling.next_timer();
        calling.on_cancel_sent(ms(100));
        assert_eq!(calling.next_timer(), before);
        let mut accepted = ClientTxn::new(ms(0), true, false, TimerConfig::default());
        accepted.on_response(ms(10), 200);
        accepted.on_cancel_sent(ms(20));
        assert_eq!(accepted.next_timer(), Some((ms(32_010), Timer::M)));
        let mut bye = ClientTxn::new(ms(0), false, false, TimerConfig::default());
        bye.on_response(ms(10), 100);
        let before = bye.next_timer();
        bye.on_cancel_sent(ms(20));
        assert_eq!(bye.next_timer(), before);
    }

    #[test]
    fn server_invite_g_retransmits_capped_then_h_times_out() {
        let mut txn = ServerTxn::new(true, false, TimerConfig::default());
        assert_eq!(txn.on_tu_response(ms(0), 100), Ok(()));
        assert_eq!(txn.on_request_retransmit(), ServerAction::ResendResponse);
        assert_eq!(txn.on_tu_response(ms(1000), 486), Ok(()));
        let fired = run_server(&mut txn, ms(100_000));
        let g: Vec<u64> = fired
            .iter()
            .filter(|f| f.1 == Timer::G)
            .map(|f| f.0 - 1000)
            .collect();
        // 500, 1000, 2000, 4000, 4000, ... (capped at T2) until H at 32 s.
        assert_eq!(&g[..5], &[500, 1500, 3500, 7500, 11_500]);
        assert!(g.windows(2).skip(3).all(|w| w[1] - w[0] == 4000));
        assert_eq!(
            fired.last(),
            Some(&(33_000, Timer::H, ServerAction::Timeout))
        );
    }

    #[test]
    fn server_invite_ack_confirms_then_i_ends() {
        let mut txn = ServerTxn::new(true, false, TimerConfig::default());
        txn.on_tu_response(ms(0), 487).unwrap();
        assert_eq!(txn.on_ack(ms(100)), ServerAction::Nothing);
        assert_eq!(txn.state(), ServerState::Confirmed);
        assert_eq!(txn.on_ack(ms(200)), ServerAction::Nothing);
        assert_eq!(txn.on_request_retransmit(), ServerAction::Nothing);
        let fired = run_server(&mut txn, ms(100_000));
        assert_eq!(fired, vec![(5_100, Timer::I, ServerAction::Nothing)]);
    }

    #[test]
    fn server_invite_2xx_accepted_absorbs_invite_and_allows_2xx_retransmission() {
        let mut txn = ServerTxn::new(true, false, TimerConfig::default());
        txn.on_tu_response(ms(0), 200).unwrap();
        assert_eq!(txn.state(), ServerState::Accepted);
        assert_eq!(txn.on_request_retransmit(), ServerAction::Nothing);
        assert_eq!(txn.on_tu_response(ms(500), 200), Ok(()));
        assert_eq!(
            txn.on_tu_response(ms(500), 486),
            Err(RespondRefusal::AlreadyFinal)
        );
        let fired = run_server(&mut txn, ms(100_000));
        assert_eq!(fired, vec![(32_000, Timer::L, ServerAction::Nothing)]);
    }

    #[test]
    fn server_non_invite_trying_absorbs_and_completed_resends_until_j() {
        let mut txn = ServerTxn::new(false, false, TimerConfig::default());
        assert_eq!(txn.on_request_retransmit(), ServerAction::Nothing);
        txn.on_tu_response(ms(10), 200).unwrap();
        assert_eq!(txn.on_request_retransmit(), ServerAction::ResendResponse);
        let fired = run_server(&mut txn, ms(100_000));
        assert_eq!(fired, vec![(32_010, Timer::J, ServerAction::Nothing)]);
        let mut tcp = ServerTxn::new(false, true, TimerConfig::default());
        tcp.on_tu_response(ms(10), 200).unwrap();
        assert_eq!(tcp.next_timer(), Some((ms(10), Timer::J)));
    }

    #[test]
    fn reliable_server_invite_has_no_g_and_zero_i() {
        let mut txn = ServerTxn::new(true, true, TimerConfig::default());
        txn.on_tu_response(ms(0), 603).unwrap();
        assert_eq!(txn.next_timer(), Some((ms(32_000), Timer::H)));
        txn.on_ack(ms(5));
        assert_eq!(txn.next_timer(), Some((ms(5), Timer::I)));
    }

    #[test]
    fn server_rejects_bad_status_and_second_final() {
        let mut txn = ServerTxn::new(false, false, TimerConfig::default());
        assert_eq!(
            txn.on_tu_response(ms(0), 99),
            Err(RespondRefusal::BadStatus)
        );
        txn.on_tu_response(ms(0), 404).unwrap();
        assert_eq!(
            txn.on_tu_response(ms(0), 200),
            Err(RespondRefusal::AlreadyFinal)
        );
    }
}
