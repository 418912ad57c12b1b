//! The RFC 3261 transaction machines driven by arbitrary event sequences (responses with any
//! status, retransmitted requests, ACKs, CANCELs, transport errors, timers firing, time
//! passing). Never a panic; no timer is ever armed in the past; left alone, every machine
//! terminates within its 64·T1 bound plus its wait timer; a server transaction accepts no second
//! final response (except the core's 2xx retransmissions after a 2xx to INVITE, RFC 6026).

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use switchboard_sip::transaction::{ClientTxn, RespondRefusal, ServerTxn};
use switchboard_sip::{Instant, TimerConfig};

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn status(&mut self) -> u16 {
        let hi = u16::from(self.byte().unwrap_or(0));
        let lo = u16::from(self.byte().unwrap_or(0));
        // Mostly valid statuses, sometimes out of range.
        if hi & 0x80 == 0 {
            100 + ((hi << 8 | lo) % 600)
        } else {
            hi << 8 | lo
        }
    }
}

fn config(input: &mut Input<'_>) -> TimerConfig {
    let ms = |b: Option<u8>, scale: u64| Duration::from_millis(u64::from(b.unwrap_or(0)) * scale);
    TimerConfig {
        t1: ms(input.byte(), 10),
        t2: ms(input.byte(), 40),
        t4: ms(input.byte(), 40),
    }
}

/// Longest a machine may live with no input after its last event: 64·T1 plus the response or
/// ACK wait (32 s or T4), with slack for the configuration's own sanitising.
fn idle_bound(cfg: &TimerConfig) -> Duration {
    let cfg = cfg.sanitized();
    cfg.t1_x64() * 2 + Duration::from_secs(32) + cfg.t4 + Duration::from_secs(1)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.byte().unwrap_or(0);
    let (invite, reliable, client) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    let cfg = config(&mut input);
    let mut now = Instant::ZERO;
    if client {
        let mut txn = ClientTxn::new(now, invite, reliable, cfg);
        while let Some(op) = input.byte() {
            match op % 5 {
                0 => {
                    let status = input.status();
                    if (100..=699).contains(&status) {
                        let _ = txn.on_response(now, status);
                    }
                }
                1 => fire_client(&mut txn, &mut now),
                2 => txn.on_cancel_sent(now),
                3 => txn.on_transport_error(),
                _ => {
                    // Time passes; the driver fires every timer that fell due meanwhile.
                    let until =
                        now + Duration::from_millis(u64::from(input.byte().unwrap_or(0)) * 20);
                    for _ in 0..256 {
                        match txn.next_timer() {
                            Some((at, timer)) if at <= until => {
                                now = now.max(at);
                                let _ = txn.on_timer(now, timer);
                            }
                            _ => break,
                        }
                    }
                    now = until;
                }
            }
            if let Some((at, _)) = txn.next_timer() {
                assert!(at >= now, "timer armed in the past");
            }
        }
        let start = now;
        for _ in 0..256 {
            if txn.is_terminated() {
                break;
            }
            fire_client(&mut txn, &mut now);
            if txn.next_timer().is_none() {
                break;
            }
        }
        assert!(
            txn.is_terminated() || txn.next_timer().is_none(),
            "client transaction still has timers after 256 firings"
        );
        assert!(now.saturating_duration_since(start) <= idle_bound(&cfg));
    } else {
        let mut txn = ServerTxn::new(invite, reliable, cfg);
        let mut first_final: Option<u16> = None;
        while let Some(op) = input.byte() {
            match op % 5 {
                0 => {
                    let _ = txn.on_request_retransmit();
                }
                1 => {
                    let _ = txn.on_ack(now);
                }
                2 => {
                    let status = input.status();
                    let result = txn.on_tu_response(now, status);
                    if let (Some(first), Ok(())) = (first_final, result) {
                        // RFC 6026: only the core's 2xx retransmissions after a 2xx to INVITE.
                        let retransmitted_2xx =
                            invite && (200..300).contains(&first) && (200..300).contains(&status);
                        assert!(
                            retransmitted_2xx,
                            "{status} accepted after the final response {first}"
                        );
                    }
                    if let Err(RespondRefusal::BadStatus) = result {
                        assert!(!(100..=699).contains(&status));
                    }
                    if result.is_ok() && status >= 200 && first_final.is_none() {
                        first_final = Some(status);
                    }
                }
                3 => fire_server(&mut txn, &mut now),
                _ => txn.on_transport_error(),
            }
            if let Some((at, _)) = txn.next_timer() {
                assert!(at >= now, "timer armed in the past");
            }
        }
        let start = now;
        for _ in 0..256 {
            if txn.is_terminated() || txn.next_timer().is_none() {
                break;
            }
            fire_server(&mut txn, &mut now);
        }
        assert!(txn.is_terminated() || txn.next_timer().is_none());
        assert!(now.saturating_duration_since(start) <= idle_bound(&cfg));
    }
});

fn fire_client(txn: &mut ClientTxn, now: &mut Instant) {
    if let Some((at, timer)) = txn.next_timer() {
        if at > *now {
            *now = at;
        }
        let _ = txn.on_timer(*now, timer);
    }
}

fn fire_server(txn: &mut ServerTxn, now: &mut Instant) {
    if let Some((at, timer)) = txn.next_timer() {
        if at > *now {
            *now = at;
        }
        let _ = txn.on_timer(*now, timer);
    }
}
