//! Call-backs: stored, due at their time, taken for dialing under a lease, retried,
//! cancelled, put back after a restart or when a lease runs out, expired, counted by status.

use super::*;

pub async fn callbacks_round_trip(kind: Kind) {
    let env = Env::new(kind, "callbacks");
    let store = env.open().await;
    let cb = |id: &str, at: Option<i64>| Callback {
        id: id.into(),
        number: "+1 555 0100".into(),
        at: at.map(t),
        queue: Some("orders".into()),
        created_at: t(0),
        status: CallbackStatus::Pending,
        attempts: 0,
        next_at: None,
        last_result: None,
        updated_at: None,
        call_ids: Vec::new(),
    };
    store.insert_callback(&cb("soon", Some(10))).await.unwrap();
    store
        .insert_callback(&cb("later", Some(1_000_000)))
        .await
        .unwrap();
    store.insert_callback(&cb("asap", None)).await.unwrap();
    let due = store.due_callbacks(t(500), 10).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["asap", "soon"]);
    assert_eq!(due[0].number, "+15550100");
    assert!(
        store
            .set_callback_status("soon", CallbackStatus::Done)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_callback_status("nope", CallbackStatus::Done)
            .await
            .unwrap()
    );
    let due = store.due_callbacks(t(2_000_000), 10).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["asap", "later"]);

    // The dialer takes "asap"; a cancel then is refused, and a second claim fails.
    assert!(
        store
            .claim_callback("asap", "node-a", t(600), t(630))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_callback("asap", "node-b", t(600), t(630))
            .await
            .unwrap()
    );
    assert_eq!(
        store.cancel_callback("asap", t(601)).await.unwrap(),
        Err(CancelRefused::NotPending(CallbackStatus::Dialing))
    );
    // Busy: back to pending, due again later, with the attempt counted.
    let retry = AttemptEnd {
        status: CallbackStatus::Pending,
        attempts: 1,
        next_at: Some(t(900)),
        last_result: "busy".into(),
    };
    // Only the node that holds it records the result.
    assert!(
        !store
            .end_callback_attempt("asap", "node-b", &retry, t(650))
            .await
            .unwrap()
    );
    assert!(
        store
            .end_callback_attempt("asap", "node-a", &retry, t(650))
            .await
            .unwrap()
    );
    let ids: Vec<String> = store
        .due_callbacks(t(800), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(
        ids.is_empty(),
        "nothing is due before the retry time: {ids:?}"
    );
    let asap = store.callback("asap").await.unwrap().unwrap();
    assert_eq!(
        (
            asap.status,
            asap.attempts,
            asap.next_at,
            asap.last_result.as_deref()
        ),
        (CallbackStatus::Pending, 1, Some(t(900)), Some("busy"))
    );
    // A server stopped mid-attempt leaves it `dialing`; its next start puts it back, another
    // node's start leaves it alone.
    assert!(
        store
            .claim_callback("asap", "node-a", t(950), t(980))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .requeue_dialing_callbacks("node-b", t(955))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .requeue_dialing_callbacks("node-a", t(960))
            .await
            .unwrap(),
        1
    );
    let asap = store.callback("asap").await.unwrap().unwrap();
    assert_eq!(
        (asap.status, asap.attempts, asap.last_result.as_deref()),
        (CallbackStatus::Pending, 1, Some("interrupted"))
    );
    // Cancelled: never due again; listed under its status.
    let cancelled = store
        .cancel_callback("asap", t(970))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.status, CallbackStatus::Cancelled);
    assert_eq!(
        store.cancel_callback("nope", t(970)).await.unwrap(),
        Err(CancelRefused::NotFound)
    );
    let due = store.due_callbacks(t(2_000_000), 10).await.unwrap();
    assert!(due.iter().all(|c| c.id != "asap"));
    let listed = store
        .list_callbacks(Some(CallbackStatus::Cancelled), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let counts = store.callback_counts().await.unwrap();
    assert!(counts.contains(&("cancelled".to_owned(), 1)), "{counts:?}");

    // Leases: node-a takes "later" and renews; node-b's reclaim leaves a live lease alone,
    // takes back one that ran out, and node-a's late result is then refused.
    assert!(
        store
            .claim_callback("later", "node-a", t(2_000_000), t(2_000_030))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .renew_callback_claims("node-a", t(2_000_050))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .renew_callback_claims("node-b", t(2_000_050))
            .await
            .unwrap(),
        0
    );
    assert!(
        store
            .reclaim_lapsed_callbacks("node-b", t(2_000_040))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .reclaim_lapsed_callbacks("node-a", t(2_000_051))
            .await
            .unwrap()
            .is_empty(),
        "a live node never takes back its own"
    );
    assert_eq!(
        store
            .reclaim_lapsed_callbacks("node-b", t(2_000_051))
            .await
            .unwrap(),
        [("later".to_owned(), Some("node-a".to_owned()))]
    );
    let later = store.callback("later").await.unwrap().unwrap();
    assert_eq!(
        (later.status, later.attempts, later.last_result.as_deref()),
        (CallbackStatus::Pending, 0, Some("interrupted"))
    );
    let done = AttemptEnd {
        status: CallbackStatus::Done,
        attempts: 1,
        next_at: None,
        last_result: "answered".into(),
    };
    assert!(
        !store
            .end_callback_attempt("later", "node-a", &done, t(2_000_052))
            .await
            .unwrap()
    );
    assert!(
        store
            .reclaim_lapsed_callbacks("node-b", t(3_000_000))
            .await
            .unwrap()
            .is_empty()
    );
    // Expired only from pending.
    assert!(store.expire_callback("later", t(2_000_060)).await.unwrap());
    assert!(!store.expire_callback("later", t(2_000_061)).await.unwrap());
    assert!(!store.expire_callback("asap", t(2_000_061)).await.unwrap());
    let listed = store
        .list_callbacks(Some(CallbackStatus::Expired), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, "later");
}

pub async fn dnc_round_trip(kind: Kind) {
    let env = Env::new(kind, "dnc");
    let store = env.open().await;
    let entry = |number: &str, reason: Option<&str>| DncEntry {
        number: number.into(),
        reason: reason.map(str::to_owned),
        added_at: t(0),
    };
    assert!(
        store
            .put_dnc(&entry("+385 91 555 0300", None))
            .await
            .unwrap()
    );
    // Replacing keeps one entry, with the new reason; lookups normalise the number.
    assert!(
        !store
            .put_dnc(&entry("+385915550300", Some("asked on the phone")))
            .await
            .unwrap()
    );
    let found = store.dnc("+385 (91) 555-0300").await.unwrap().unwrap();
    assert_eq!(found.reason.as_deref(), Some("asked on the phone"));
    assert!(store.dnc("+385915550399").await.unwrap().is_none());
    assert_eq!(store.list_dnc().await.unwrap().len(), 1);
    assert!(store.delete_dnc("+385915550300").await.unwrap());
    assert!(!store.delete_dnc("+385915550300").await.unwrap());
    assert!(store.list_dnc().await.unwrap().is_empty());
    assert!(store.put_dnc(&entry("call me", None)).await.is_err());
}
