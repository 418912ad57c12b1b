//! Reports, quality evaluations, agent tokens and escalations on a day of hand-made records
//! whose every figure is known.

use super::*;
use switchboard_store::reports::{Period, QueueReportQuery};

/// 2023-11-15T00:00:00Z, the start of the day under test.
const DAY: i64 = 1_700_006_400;

fn at(s: i64) -> Timestamp {
    Timestamp::from_timestamp(DAY + s, 0).unwrap()
}

fn day() -> Period {
    Period {
        from: at(0),
        to: at(86_400),
    }
}

fn state(id: &str, agent: &str, s: i64, st: &str) -> Record {
    AgentSessionEvent {
        id: id.to_owned(),
        at: at(s),
        agent_id: agent.to_owned(),
        event: AgentEventKind::State,
        state: Some(st.to_owned()),
        reason: None,
    }
    .into()
}

fn session(id: &str, agent: &str, s: i64, kind: AgentEventKind) -> Record {
    AgentSessionEvent {
        id: id.to_owned(),
        at: at(s),
        agent_id: agent.to_owned(),
        event: kind,
        state: None,
        reason: None,
    }
    .into()
}

/// A call of the day: started at `s`, waited `wait_ms`, talked `talk_ms` when answered.
fn day_call(id: &str, s: i64, wait_ms: i64, talk_ms: i64, outcome: Outcome) -> CallRecord {
    let answered = outcome == Outcome::Answered;
    CallRecord {
        started_at: at(s),
        queued_at: Some(at(s)),
        answered_at: answered.then(|| at(s) + chrono::Duration::milliseconds(wait_ms)),
        ended_at: at(s) + chrono::Duration::milliseconds(wait_ms + talk_ms),
        wait_ms,
        talk_ms: if answered { talk_ms } else { 0 },
        outcome,
        agent_id: answered.then(|| "ana".to_owned()),
        ..call(id, 0)
    }
}

fn the_day() -> Vec<Record> {
    let mut abandoned_known = day_call("c4", 4_000, 40_000, 0, Outcome::Abandoned);
    abandoned_known.client_number = Some("+385911".into());
    let mut called_back = day_call("o1", 5_000, 0, 60_000, Outcome::Answered);
    called_back.direction = Direction::Outbound;
    called_back.queue = None;
    called_back.client_number = Some("+385911".into());
    // A caller who left before any offer: the CDR names no queue, the queue events do.
    let mut unoffered = day_call("c3", 1_500, 3_000, 0, Outcome::Abandoned);
    unoffered.queue = None;
    let mut before = day_call("c0", -600, 5_000, 10_000, Outcome::Answered);
    before.queue = Some("orders".into());
    vec![
        // Ana: available since yesterday, a call, wrap-up, a break, not ready, logged out.
        state("s0", "ana", -3_600, "available"),
        session("l1", "ana", 500, AgentEventKind::Login),
        state("s1", "ana", 1_000, "on_call"),
        state("s2", "ana", 1_100, "wrap_up"),
        state("s3", "ana", 1_105, "available"),
        state("s4", "ana", 2_000, "break"),
        state("s5", "ana", 2_600, "available"),
        state("s6", "ana", 3_000, "not_ready"),
        state("s7", "ana", 3_100, "logged_out"),
        // No unregistration: the switch to logged_out ends the shift.
        // Marko: available late in the day and still is ("now" closes it).
        state("m1", "marko", 80_000, "available"),
        QueueEvent {
            id: "q1".into(),
            at: at(80_100),
            call_id: "c5".into(),
            queue: "orders".into(),
            agent_id: Some("marko".into()),
            event: QueueEventKind::RingNoAnswer,
            data: None,
        }
        .into(),
        before.into(),
        day_call("c1", 900, 10_000, 100_000, Outcome::Answered).into(),
        day_call("c2", 1_200, 30_000, 50_000, Outcome::Answered).into(),
        unoffered.into(),
        QueueEvent {
            id: "q2".into(),
            at: at(1_500),
            call_id: "c3".into(),
            queue: "orders".into(),
            agent_id: None,
            event: QueueEventKind::EnterQueue,
            data: None,
        }
        .into(),
        QueueEvent {
            id: "q3".into(),
            at: at(1_503),
            call_id: "c3".into(),
            queue: "none".into(),
            agent_id: None,
            event: QueueEventKind::Abandon,
            data: None,
        }
        .into(),
        abandoned_known.into(),
        day_call("c5", 4_100, 300_000, 0, Outcome::Timeout).into(),
        called_back.into(),
    ]
}

pub(super) async fn reports_give_exact_figures(kind: Kind) {
    let env = Env::new(kind, "reports");
    let store = env.open().await;
    for r in the_day() {
        store.writer().send(r).unwrap();
    }
    wait_written(&store).await;
    store
        .clients()
        .upsert(Client {
            number: "+385911".into(),
            name: "Acme".into(),
            client_type: ClientType::Retail,
            manager: None,
            region: None,
            overdue_debt: Money::ZERO,
        })
        .await
        .unwrap();
    for (id, score) in [("c1", 80), ("c2", 90)] {
        let q = Quality {
            score,
            reviewer: "quinn".into(),
            note: None,
            at: at(6_000),
        };
        assert!(store.set_quality(id, &q).await.unwrap());
    }
    let bad = Quality {
        score: 101,
        reviewer: "quinn".into(),
        note: None,
        at: at(6_000),
    };
    assert!(store.set_quality("c1", &bad).await.is_err());
    assert!(
        !store
            .set_quality("nope", &Quality { score: 5, ..bad })
            .await
            .unwrap()
    );
    // A disposition lands on the record, next to the evaluation; a second replaces it.
    for code in ["callback", "sale"] {
        let d = Disposition {
            code: code.into(),
            note: Some("two pallets".into()),
            at: at(6_100),
        };
        assert!(store.set_disposition("c1", &d).await.unwrap());
    }
    let c1 = store.stored_call("c1").await.unwrap().unwrap();
    assert_eq!(
        c1.disposition.as_ref().map(|d| d.code.as_str()),
        Some("sale")
    );
    assert_eq!(c1.quality.as_ref().map(|q| q.score), Some(80));
    let d = c1.disposition.unwrap();
    assert!(!store.set_disposition("nope", &d).await.unwrap());
    store
        .insert_escalation(&Escalation {
            id: "e1".into(),
            call_id: "c2".into(),
            agent_id: Some("ana".into()),
            note: "customer wants a manager".into(),
            created_at: at(1_250),
            acked_at: None,
            acked_by: None,
        })
        .await
        .unwrap();

    let agents = store.agent_report(day(), at(80_600)).await.unwrap();
    let ana = agents.iter().find(|a| a.agent_id == "ana").unwrap();
    assert_eq!(ana.login_ms, 3_100_000);
    assert_eq!(ana.available_ms, (1_000 + 895 + 400) * 1000);
    assert_eq!(ana.talk_ms, 100_000);
    assert_eq!(ana.wrap_up_ms, 5_000);
    assert_eq!(ana.break_ms, 600_000);
    assert_eq!(ana.not_ready_ms, 100_000);
    assert_eq!((ana.answered, ana.outbound, ana.no_answers), (2, 1, 0));
    assert_eq!(ana.answered_talk_ms, 150_000);
    assert_eq!((ana.quality_sum, ana.quality_count), (170, 2));
    assert_eq!(ana.escalations, 1);
    assert_eq!(ana.first_login, Some(at(500)));
    assert_eq!(ana.last_logout, Some(at(3_100)));
    let marko = agents.iter().find(|a| a.agent_id == "marko").unwrap();
    assert_eq!((marko.login_ms, marko.available_ms), (600_000, 600_000));
    assert_eq!((marko.no_answers, marko.answered), (1, 0));
    assert_eq!(marko.first_login, None);

    let queues = store
        .queue_report(QueueReportQuery {
            period: day(),
            interval_ms: 3_600_000,
            offset_ms: 0,
            service_level_ms: 20_000,
            short_abandon_ms: 5_000,
        })
        .await
        .unwrap();
    assert_eq!(queues.len(), 2, "{queues:?}");
    let h0 = &queues[0];
    assert_eq!(
        (h0.queue.as_str(), h0.interval_start_ms),
        ("orders", DAY * 1000)
    );
    assert_eq!(
        (
            h0.offered,
            h0.answered,
            h0.abandoned,
            h0.short_abandoned,
            h0.timeout
        ),
        (3, 2, 1, 1, 0)
    );
    assert_eq!(
        (
            h0.answered_in_sl,
            h0.answered_wait_ms,
            h0.answered_talk_ms,
            h0.max_wait_ms
        ),
        (1, 40_000, 150_000, 30_000)
    );
    let h1 = &queues[1];
    assert_eq!(h1.interval_start_ms, (DAY + 3_600) * 1000);
    assert_eq!(
        (
            h1.offered,
            h1.answered,
            h1.abandoned,
            h1.short_abandoned,
            h1.timeout
        ),
        (2, 0, 1, 0, 1)
    );
    assert_eq!(h1.max_wait_ms, 300_000);

    // Days cut at local midnight of UTC+1: the call at 23:50 UTC the day before is in.
    let local = store
        .queue_report(QueueReportQuery {
            period: Period {
                from: at(-3_600),
                to: at(82_800),
            },
            interval_ms: 86_400_000,
            offset_ms: 3_600_000,
            service_level_ms: 20_000,
            short_abandon_ms: 5_000,
        })
        .await
        .unwrap();
    assert_eq!(local.len(), 1, "{local:?}");
    assert_eq!(local[0].interval_start_ms, (DAY - 3_600) * 1000);
    assert_eq!(local[0].offered, 6);

    let abandoned = store.abandoned_report(day()).await.unwrap();
    assert_eq!(abandoned.len(), 2);
    assert_eq!(abandoned[0].call_id, "c3");
    assert_eq!(abandoned[0].called_back_at, None);
    assert_eq!(abandoned[0].queue.as_deref(), Some("orders"));
    assert_eq!(abandoned[1].call_id, "c4");
    assert_eq!(abandoned[1].client_name.as_deref(), Some("Acme"));
    assert_eq!(abandoned[1].wait_ms, 40_000);
    assert_eq!(abandoned[1].called_back_at, Some(at(5_000)));

    let c1 = store.stored_call("c1").await.unwrap().unwrap();
    assert_eq!(
        c1.quality.map(|q| (q.score, q.reviewer)),
        Some((80, "quinn".into()))
    );
    let anas = store.stored_calls(None, Some("ana"), 100).await.unwrap();
    assert!(
        anas.iter()
            .all(|c| c.record.agent_id.as_deref() == Some("ana"))
    );
    assert_eq!(anas.len(), 4);
    store.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn tokens_and_escalations_round_trip(kind: Kind) {
    let env = Env::new(kind, "tokens");
    let store = env.open().await;
    store
        .insert_agent_token("h1", "ana", at(0), at(3_600))
        .await
        .unwrap();
    assert_eq!(
        store.agent_token("h1", at(10)).await.unwrap(),
        Some(("ana".to_owned(), at(3_600)))
    );
    assert_eq!(store.agent_token("h1", at(3_600)).await.unwrap(), None);
    assert_eq!(store.agent_token("h2", at(10)).await.unwrap(), None);
    // Issuing a token later purges the expired one.
    store
        .insert_agent_token("h2", "marko", at(7_200), at(9_000))
        .await
        .unwrap();
    assert!(!store.revoke_agent_token("h1").await.unwrap());
    assert!(store.revoke_agent_token("h2").await.unwrap());
    assert_eq!(store.agent_token("h2", at(7_300)).await.unwrap(), None);

    for (id, s) in [("e1", 10), ("e2", 20)] {
        store
            .insert_escalation(&Escalation {
                id: id.into(),
                call_id: format!("call-{id}"),
                agent_id: Some("ana".into()),
                note: "help".into(),
                created_at: at(s),
                acked_at: None,
                acked_by: None,
            })
            .await
            .unwrap();
    }
    let acked = store
        .ack_escalation("e1", "sup", at(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (acked.acked_at, acked.acked_by.as_deref()),
        (Some(at(30)), Some("sup"))
    );
    // The first acknowledgement stays.
    let again = store
        .ack_escalation("e1", "other", at(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.acked_by.as_deref(), Some("sup"));
    assert!(
        store
            .ack_escalation("e9", "sup", at(40))
            .await
            .unwrap()
            .is_none()
    );
    let open: Vec<String> = store
        .escalations(true, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(open, ["e2"]);
    assert_eq!(store.escalations(false, 100).await.unwrap().len(), 2);
    store.close(Duration::from_secs(5)).await.unwrap();
}
