//! The incident store's contract, run against both stores: the in-memory one (embedded mode)
//! and Redis (a real `redis-server`). Plus the fencing of Redis writes and action claims by the
//! leader lease.

use std::time::Duration;

use crate::common::ago;
use crate::common::redis::RedisServer;
use euphrosyne::incident::{ActionRun, ActionStatus, IncidentRecord};
use euphrosyne::lease::{Lease, LeaseError};
use euphrosyne::store::{MemoryStore, RedisStore, Store, StoreError};

fn incident(id: &str, created: &str, actions: &[&str]) -> IncidentRecord {
    let mut r = IncidentRecord::new(id.into(), format!("group-{id}"), "test".into(), created);
    r.log(created, "alert-received", format!("{id} fired"), None, None);
    r.actions = actions.iter().map(|a| a.to_string()).collect();
    r
}

fn action(id: &str, incident: &str) -> ActionRun {
    ActionRun {
        id: id.into(),
        incident: incident.into(),
        action: "open-ticket".into(),
        parameters: serde_json::json!({"summary": id}),
        suggested: true,
        approved_by: "alice".into(),
        token: "approver-bot".into(),
        channel: "api".into(),
        status: ActionStatus::Running,
        recipe: Some("open-ticket".into()),
        error: None,
        run_id: Some(format!("run-{id}")),
        result: None,
        preview: None,
        fresh_preview: None,
        created_at: ago(60),
    }
}

const DAY: u64 = 86_400;

/// What every store must do. `store` keeps records for a day after their last write, `short`
/// for one second. Every timestamp is relative to now: the contract holds on any day.
async fn contract(store: &dyn Store, short: &dyn Store) {
    // Empty.
    let (incidents, actions) = store.load().await.unwrap();
    assert!(incidents.is_empty() && actions.is_empty());
    assert!(store.get("inc-nope").await.unwrap().is_none());

    // Saved in any order, loaded oldest first, with their actions.
    let b = incident("inc-b", &ago(30), &["act-b1"]);
    let a = incident("inc-a", &ago(40), &[]);
    let c = incident("inc-c", &ago(20), &["act-c1", "act-c2"]);
    store
        .save(&[b.clone(), c.clone()], &[action("act-b1", "inc-b")])
        .await
        .unwrap();
    store
        .save(
            std::slice::from_ref(&a),
            &[action("act-c1", "inc-c"), action("act-c2", "inc-c")],
        )
        .await
        .unwrap();
    let (incidents, actions) = store.load().await.unwrap();
    let ids: Vec<&str> = incidents.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["inc-a", "inc-b", "inc-c"]);
    let mut action_ids: Vec<&str> = actions.iter().map(|a| a.id.as_str()).collect();
    action_ids.sort();
    assert_eq!(action_ids, ["act-b1", "act-c1", "act-c2"]);

    // One incident with its actions, the event log intact.
    let (rec, acts) = store.get("inc-c").await.unwrap().unwrap();
    assert_eq!(rec.group_key, "group-inc-c");
    assert_eq!(rec.events.len(), 1);
    assert_eq!(rec.events[0].kind, "alert-received");
    assert_eq!(acts.len(), 2);

    // A later version replaces the earlier one: no duplicate, the log grown.
    let mut c2 = c.clone();
    c2.log(&ago(10), "analysis-complete", "done", None, None);
    let mut act = action("act-c1", "inc-c");
    act.status = ActionStatus::Succeeded;
    store.save(&[c2.clone()], &[act]).await.unwrap();
    let (incidents, _) = store.load().await.unwrap();
    assert_eq!(incidents.len(), 3);
    let (rec, acts) = store.get("inc-c").await.unwrap().unwrap();
    assert_eq!(rec.version, c2.version);
    assert_eq!(rec.events.len(), 2);
    assert_eq!(rec.events[1].kind, "analysis-complete");
    let c1 = acts.iter().find(|a| a.id == "act-c1").unwrap();
    assert_eq!(c1.status, ActionStatus::Succeeded);

    // An incident open for longer than the retention (created three days ago, written since) is
    // kept while it is written, whatever else is written meanwhile.
    let old = incident("inc-old", &ago(3 * DAY), &["act-old"]);
    store
        .save(std::slice::from_ref(&old), &[action("act-old", "inc-old")])
        .await
        .unwrap();
    store.save(std::slice::from_ref(&a), &[]).await.unwrap();
    let (incidents, actions) = store.load().await.unwrap();
    let ids: Vec<&str> = incidents.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["inc-old", "inc-a", "inc-b", "inc-c"],
        "loaded oldest first, the long-lived one kept"
    );
    assert!(actions.iter().any(|a| a.id == "act-old"), "{actions:?}");

    // Retention counts from the last write, not the first: written at 0 and again at 0.6 s, the
    // incident is still there at 1.2 s (past a second after its first write) and gone once a
    // second has passed since its last.
    let long_lived = incident("inc-long", &ago(3 * DAY), &[]);
    short.save(std::slice::from_ref(&long_lived), &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    short.save(std::slice::from_ref(&long_lived), &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        short.get("inc-long").await.unwrap().is_some(),
        "expired by its first write"
    );
    let (incidents, _) = short.load().await.unwrap();
    let ids: Vec<&str> = incidents.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["inc-long"], "a written incident is found by a load");

    // Retention: gone after it, from loads and lookups alike.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(short.get("inc-long").await.unwrap().is_none());
    let (incidents, _) = short.load().await.unwrap();
    assert!(incidents.is_empty(), "{incidents:?}");
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    let day = MemoryStore::new(Duration::from_secs(DAY));
    let short = MemoryStore::new(Duration::from_secs(1));
    contract(&day, &short).await;
}

#[tokio::test]
async fn redis_store_keeps_the_contract() {
    let redis = RedisServer::start();
    let day = RedisStore::connect(&redis.url(), "day", Duration::from_secs(DAY))
        .await
        .unwrap();
    let short = RedisStore::connect(&redis.url(), "short", Duration::from_secs(1))
        .await
        .unwrap();
    contract(&day, &short).await;
    // Every key under its prefix.
    let mut conn = ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| k.starts_with("day:") || k.starts_with("short:")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_replica_that_lost_the_lease_can_neither_write_nor_start_an_action() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ttl = Duration::from_millis(400);
    let a = Lease::connect(&url, "ha", "replica-a", "http://127.0.0.1:1", ttl)
        .await
        .unwrap();
    let b = Lease::connect(&url, "ha", "replica-b", "http://127.0.0.1:2", ttl)
        .await
        .unwrap();
    let store = RedisStore::connect(&url, "ha", Duration::from_secs(60)).await.unwrap();

    let token_a = a.try_acquire().await.unwrap().expect("a free lease is taken");
    assert!(b.try_acquire().await.unwrap().is_none(), "a held lease is not");
    assert_eq!(b.leader().await.unwrap().unwrap().replica, "replica-a");
    store.fence_with(&token_a, ttl);
    store.save(&[incident("inc-1", &ago(60), &[])], &[]).await.unwrap();
    assert!(a.claim(&token_a, "act-1", Duration::from_secs(60)).await.unwrap());
    assert!(
        !a.claim(&token_a, "act-1", Duration::from_secs(60)).await.unwrap(),
        "claimed once"
    );

    // a stalls past its lease; b takes over with a new epoch.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let token_b = b.try_acquire().await.unwrap().expect("an expired lease is taken");
    let (ea, eb) = (
        euphrosyne::lease::Leader::parse(&token_a).unwrap().epoch,
        euphrosyne::lease::Leader::parse(&token_b).unwrap().epoch,
    );
    assert!(eb > ea, "a new fencing epoch: {ea} then {eb}");

    // a wakes up: its writes, claims and renewals are refused.
    let stale = incident("inc-1", &ago(60), &["act-2"]);
    match store.save(&[stale], &[]).await {
        Err(StoreError::Fenced(by)) => assert_eq!(by, "replica-b"),
        other => panic!("a fenced write went through: {other:?}"),
    }
    assert!(matches!(
        a.claim(&token_a, "act-2", Duration::from_secs(60)).await,
        Err(LeaseError::Lost(by)) if by == "replica-b"
    ));
    assert!(matches!(a.renew(&token_a).await, Err(LeaseError::Lost(_))));
    // b's claim of what a claimed is still refused: an action runs once across replicas.
    assert!(!b.claim(&token_b, "act-1", Duration::from_secs(60)).await.unwrap());
    store.fence_with(&token_b, ttl);
    let (rec, _) = store.get("inc-1").await.unwrap().unwrap();
    assert!(rec.actions.is_empty(), "the stale write left nothing");

    // Redis restarted empty: the holder takes its lease back on renewal.
    let mut redis = redis;
    redis.stop();
    redis.restart();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut renewed = b.renew(&token_b).await;
    for _ in 0..20 {
        if renewed.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        renewed = b.renew(&token_b).await;
    }
    renewed.unwrap();
    assert_eq!(b.leader().await.unwrap().unwrap().replica, "replica-b");
}
