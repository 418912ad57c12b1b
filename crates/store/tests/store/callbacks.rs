//! Call-backs: stored, due at their time, taken for dialing, retried, cancelled, put back
//! after a restart, counted by status.

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
            .claim_callback("asap", "node-a", t(600))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_callback("asap", "node-b", t(600))
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
    assert!(
        store
            .end_callback_attempt("asap", &retry, t(650))
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
            .claim_callback("asap", "node-a", t(950))
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
