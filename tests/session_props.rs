//! A property of session state, against the real stand-in: whatever mix of session features a
//! few clients use, in whatever order, and whenever they leave, no client ever observes another
//! client's state. Each setting a client makes carries the client's name and incarnation, so a
//! foreign value is recognisable; advisory locks are checked against a model of who holds what.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::proxy::Proxy;
use common::{StandIn, pg_connect, simple_rows};
use proptest::prelude::*;

const TAG: &str = "/* lockroute:direct */ ";
const CLIENTS: usize = 3;
const DEFAULT_PATH: &str = "\"$user\", public";

#[derive(Debug, Clone, Copy)]
enum Action {
    /// `SET search_path` (tagged: the shared direct lane unless pinned).
    SetPath { tagged: bool },
    /// `set_config('search_path', …, false)`: command tag SELECT.
    SetConfig { tagged: bool },
    /// `show search_path`.
    Show { tagged: bool },
    /// `pg_try_advisory_lock(k)`.
    TryLock { tagged: bool, key: u8 },
    /// Disconnect and come back as a new incarnation.
    Leave,
}

fn action(pin_auto: bool) -> impl Strategy<Value = Action> {
    // Behind PgBouncer itself state crosses clients (that is the pooler's nature), so without
    // pinning only the shared direct lane is under test.
    let tagged = if pin_auto {
        any::<bool>().boxed()
    } else {
        Just(true).boxed()
    };
    prop_oneof![
        tagged.clone().prop_map(|tagged| Action::SetPath { tagged }),
        tagged
            .clone()
            .prop_map(|tagged| Action::SetConfig { tagged }),
        tagged.clone().prop_map(|tagged| Action::Show { tagged }),
        (tagged, 0u8..3).prop_map(|(tagged, key)| Action::TryLock { tagged, key }),
        Just(Action::Leave),
    ]
}

struct Client {
    conn: tokio_postgres::Client,
    incarnation: u32,
    /// The search_path this client last set and may see again (only once pinned).
    own: Option<String>,
    pinned: bool,
}

async fn one_value(client: &tokio_postgres::Client, sql: &str) -> String {
    simple_rows(client, sql).await[0]
        .get(0)
        .unwrap_or_default()
        .to_owned()
}

async fn run_case(pin_auto: bool, steps: Vec<(usize, Action)>, base: i64) {
    let pin = if pin_auto { "auto" } else { "off" };
    // Room for every incarnation's dedicated session while the ones that left still close.
    let proxy = Proxy::start(&["--pin", pin, "--direct-max-sessions", "32"]).await;
    let admin = pg_connect(&StandIn::shared().super_url).await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Client {
            conn: proxy.connect().await,
            incarnation: 0,
            own: None,
            pinned: false,
        });
    }
    // Who holds each advisory lock key, in the model.
    let mut holders: HashMap<u8, usize> = HashMap::new();
    for (n, (who, step)) in steps.into_iter().enumerate() {
        let c = &mut clients[who];
        let prefix = |tagged: bool| if tagged { TAG } else { "" };
        let name = format!("c{who}i{}s{n}", c.incarnation);
        match step {
            Action::SetPath { tagged } => {
                simple_rows(
                    &c.conn,
                    &format!("{}SET search_path = {name}", prefix(tagged)),
                )
                .await;
                c.pinned |= pin_auto;
                c.own = Some(name);
            }
            Action::SetConfig { tagged } => {
                let sql = format!(
                    "{}select set_config('search_path', '{name}', false)",
                    prefix(tagged)
                );
                assert_eq!(one_value(&c.conn, &sql).await, name);
                c.pinned |= pin_auto;
                c.own = Some(name);
            }
            Action::Show { tagged } => {
                let seen = one_value(&c.conn, &format!("{}show search_path", prefix(tagged))).await;
                let own = c.pinned.then_some(c.own.as_deref()).flatten();
                assert!(
                    seen == DEFAULT_PATH || Some(seen.as_str()) == own,
                    "--pin {pin}: client {who} saw {seen:?} (its own: {own:?}) at step {n}"
                );
            }
            Action::TryLock { tagged, key } => {
                let sql = format!(
                    "{}select pg_try_advisory_lock({})::text",
                    prefix(tagged),
                    base + i64::from(key)
                );
                let got = one_value(&c.conn, &sql).await == "true";
                // Unpinned, a lock taken on the shared connection ends with the unit (the
                // connection is reset); pinned, it stays with its client.
                let want = match holders.get(&key) {
                    Some(&holder) => holder == who,
                    None => true,
                };
                assert_eq!(
                    got, want,
                    "--pin {pin}: client {who} lock {key} at step {n}"
                );
                c.pinned |= pin_auto;
                if pin_auto && got {
                    holders.insert(key, who);
                }
            }
            Action::Leave => {
                let fresh = proxy.connect().await;
                let old = std::mem::replace(&mut c.conn, fresh);
                drop(old);
                c.incarnation += 1;
                c.own = None;
                c.pinned = false;
                let freed: Vec<u8> = holders
                    .iter()
                    .filter(|&(_, &h)| h == who)
                    .map(|(&k, _)| k)
                    .collect();
                for key in freed {
                    holders.remove(&key);
                    wait_lock_free(&admin, base + i64::from(key)).await;
                }
            }
        }
    }
    drop(clients);
    proxy.stop().await;
    for key in 0..3 {
        wait_lock_free(&admin, base + key).await;
    }
}

/// Waits until no session holds advisory lock `key`; panics after 3 s.
async fn wait_lock_free(admin: &tokio_postgres::Client, key: i64) {
    for _ in 0..60 {
        let held = one_value(
            admin,
            &format!(
                "select count(*) from pg_locks where locktype = 'advisory' and objsubid = 1 \
                 and objid = {key} and granted"
            ),
        )
        .await;
        if held == "0" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("advisory lock {key} outlived its client");
}

fn plan(pin_auto: bool) -> impl Strategy<Value = Vec<(usize, Action)>> {
    prop::collection::vec((0..CLIENTS, action(pin_auto)), 10..40)
}

fn check(pin_auto: bool, steps: Vec<(usize, Action)>, base: i64) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run_case(pin_auto, steps, base));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_client_observes_another_clients_state_when_pinning(steps in plan(true)) {
        check(true, steps, 8_100_000 + i64::from(std::process::id() % 1000) * 10);
    }

    #[test]
    fn no_client_observes_another_clients_state_without_pinning(steps in plan(false)) {
        check(false, steps, 8_200_000 + i64::from(std::process::id() % 1000) * 10);
    }
}
