//! Campaigns: dormant clients selected from the records, a campaign and its contacts stored
//! in one go, contacts due, taken, set aside as dnc, ended, put back after a restart, counted
//! by status and by the dispositions of the campaign's calls.

use super::*;

pub async fn campaigns_round_trip(kind: Kind) {
    let env = Env::new(kind, "campaigns");
    let store = env.open().await;
    let dir = store.clients();
    for (n, ty) in [
        ("+15550101", ClientType::Retail),
        ("+15550102", ClientType::Retail),
        ("+15550103", ClientType::Key),
        ("+15550104", ClientType::Retail),
    ] {
        dir.upsert(client(n, ty)).await.unwrap();
    }
    // 0101 answered recently, 0102 long ago, 0104 called recently but never answered; 0103
    // never called.
    let sink = store.writer();
    let mut recent = call("recent", 1_000_000_000);
    recent.client_number = Some("+15550101".into());
    let mut old = call("old", 0);
    old.client_number = Some("+15550102".into());
    let mut missed = call("missed", 1_000_000_000);
    missed.client_number = Some("+15550104".into());
    missed.answered_at = None;
    missed.outcome = Outcome::Abandoned;
    for c in [recent, old, missed] {
        sink.send(c).unwrap();
    }
    wait_written(&store).await;
    let since = t(500_000_000);
    let dormant = store.campaign_clients(Some(since), None).await.unwrap();
    assert_eq!(dormant, ["+15550102", "+15550103", "+15550104"]);
    let retail = [ClientType::Retail];
    let dormant_retail = store
        .campaign_clients(Some(since), Some(&retail))
        .await
        .unwrap();
    assert_eq!(dormant_retail, ["+15550102", "+15550104"]);
    let keys = store
        .campaign_clients(None, Some(&[ClientType::Key]))
        .await
        .unwrap();
    assert_eq!(keys, ["+15550103"]);
    assert!(
        store
            .campaign_clients(None, Some(&[]))
            .await
            .unwrap()
            .is_empty()
    );

    let campaign = Campaign {
        id: "k1".into(),
        name: "Dormant".into(),
        queue: "orders".into(),
        target: r#"{"dormant_days":30}"#.into(),
        window: Some(("09:00".into(), "17:00".into())),
        max_attempts: 2,
        retry_after_s: 60,
        status: CampaignStatus::Paused,
        created_at: t(0),
        updated_at: t(0),
    };
    let contact = |id: &str, number: &str, status: ContactStatus| Contact {
        id: id.into(),
        campaign_id: "k1".into(),
        number: number.into(),
        status,
        attempts: 0,
        next_at: None,
        last_result: None,
        updated_at: None,
    };
    let contacts = [
        contact("a", "+15550102", ContactStatus::Pending),
        contact("b", "+15550103", ContactStatus::Pending),
        contact("c", "+15550104", ContactStatus::Dnc),
    ];
    store.insert_campaign(&campaign, &contacts).await.unwrap();
    assert_eq!(
        store.campaign("k1").await.unwrap().as_ref(),
        Some(&campaign)
    );
    assert_eq!(store.campaigns().await.unwrap().len(), 1);
    assert!(store.running_campaigns().await.unwrap().is_empty());
    assert!(
        store
            .set_campaign_status(
                "k1",
                &[CampaignStatus::Paused],
                CampaignStatus::Running,
                t(1)
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_campaign_status(
                "k1",
                &[CampaignStatus::Paused],
                CampaignStatus::Running,
                t(1)
            )
            .await
            .unwrap()
    );
    assert_eq!(store.running_campaigns().await.unwrap().len(), 1);

    // Both pending contacts are due; "a" is dialed, "b" set aside (listed meanwhile).
    let due = store.due_contacts("k1", t(10), 10).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(
        store
            .claim_contact("a", "node-a", false, t(10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_contact("a", "node-b", false, t(10))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_contact("b", "node-a", true, t(10))
            .await
            .unwrap()
    );
    assert_eq!(store.open_contacts("k1").await.unwrap(), 1);
    // Busy: pending again, due at its retry only.
    let retry = ContactEnd {
        status: ContactStatus::Pending,
        attempts: 1,
        next_at: Some(t(60_000_000)),
        last_result: "busy".into(),
    };
    assert!(store.end_contact_attempt("a", &retry, t(20)).await.unwrap());
    assert!(!store.end_contact_attempt("a", &retry, t(20)).await.unwrap());
    assert!(
        store
            .due_contacts("k1", t(59_000_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.due_contacts("k1", t(60_000_000), 10).await.unwrap();
    assert_eq!(
        (due[0].attempts, due[0].last_result.as_deref()),
        (1, Some("busy"))
    );
    // Taken again, then the server stops: a restart puts it back, other nodes' are kept.
    assert!(
        store
            .claim_contact("a", "node-a", false, t(60_000_000))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .requeue_dialing_contacts("node-b", t(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .requeue_dialing_contacts("node-a", t(1))
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .claim_contact("a", "node-a", false, t(60_000_001))
            .await
            .unwrap()
    );
    let done = ContactEnd {
        status: ContactStatus::Done,
        attempts: 2,
        next_at: None,
        last_result: "answered".into(),
    };
    assert!(
        store
            .end_contact_attempt("a", &done, t(61_000_000))
            .await
            .unwrap()
    );
    assert_eq!(store.open_contacts("k1").await.unwrap(), 0);

    // The campaign's calls and their dispositions.
    let mut first = call("k1-call-1", 60_000_001);
    first.direction = Direction::Outbound;
    first.campaign = Some("k1".into());
    let mut second = first.clone();
    second.id = "k1-call-2".into();
    sink.send(first.clone()).unwrap();
    sink.send(second).unwrap();
    wait_written(&store).await;
    let stored = store.recent_calls(None, 50).await.unwrap();
    let back = stored.iter().find(|c| c.id == "k1-call-1").unwrap();
    assert_eq!(back.campaign.as_deref(), Some("k1"));
    let sale = Disposition {
        code: "sale".into(),
        note: None,
        at: t(62_000_000),
    };
    assert!(store.set_disposition("k1-call-1", &sale).await.unwrap());
    assert!(store.set_disposition("k1-call-2", &sale).await.unwrap());
    let counts = store.campaign_counts("k1").await.unwrap();
    let mut by_status = counts.by_status.clone();
    by_status.sort();
    assert_eq!(
        by_status,
        [("dnc".to_owned(), 2), ("done".to_owned(), 1)],
        "{counts:?}"
    );
    assert_eq!(counts.by_disposition, [("sale".to_owned(), 2)]);
    let list = store.campaign_contacts("k1").await.unwrap();
    let states: Vec<(&str, ContactStatus, u32)> = list
        .iter()
        .map(|c| (c.id.as_str(), c.status, c.attempts))
        .collect();
    assert_eq!(
        states,
        [
            ("a", ContactStatus::Done, 2),
            ("b", ContactStatus::Dnc, 0),
            ("c", ContactStatus::Dnc, 0)
        ]
    );
}
