//! Session and routing stages end to end, under interleaving: several raw clients share one
//! proxy whose direct lane is ONE shared connection (`--direct-pool-size 1`), and each sends a
//! random sequence of units, concurrently, with random pipelining depth.
//!
//! The units are the shapes real drivers produce: a simple `Query`; an extended
//! `Parse/Bind/Execute/Sync` with the unnamed statement; a named statement prepared once and
//! bound later (lockroute virtualises names on the pooler and on the shared connection); a
//! describe-first unit like postgres.js (`Parse + Describe + Flush`, wait for the reply, then
//! `Bind + Execute + Sync`); a division by zero; and a short `BEGIN; ...; COMMIT`. Each is
//! direct-tagged or not. Every row carries a token unique to (client, unit) and the server's
//! `current_user`, so the oracle is exact: each client gets exactly its own replies, in order,
//! with the expected message sequence, only the division errors (22012), and every statement ran
//! as `app` (direct lane) or `pooler` (through PgBouncer) as the routing rules say. Inside a
//! transaction the lane of its first statement applies (lockroute answers an untagged `BEGIN`
//! itself), whatever the later statements' tags say.

mod common;
#[path = "interleave/wire.rs"]
mod wire;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use common::proxy::Proxy;
use common::proxy::raw::{message, send, sqlstate};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use wire::{
    bind_execute_sync, connect, data_row, describe_reply, extended_unit, parse, query,
    read_message, read_reply,
};

const TAG: &str = "/* lockroute:direct */ ";
/// Named statements per client: few, so that each is bound several times, on both lanes.
const SLOTS: usize = 3;
/// Each case takes well under a second; 24 of them keep the test near 10 s on two cores.
const CASES: u32 = 24;

/// One statement that returns a row.
#[derive(Clone, Debug)]
enum Stmt {
    Simple {
        tagged: bool,
    },
    Unnamed {
        tagged: bool,
    },
    /// Bind the client's named statement `s<slot>`; the first use also carries its `Parse`,
    /// describe-first (`Parse + Describe + Flush`, then `Bind`) when `describe` is set.
    Named {
        slot: usize,
        describe: bool,
    },
    Describe {
        tagged: bool,
    },
}

/// One top-level step of a client's plan.
#[derive(Clone, Debug)]
enum Unit {
    Plain(Stmt),
    DivisionByZero {
        tagged: bool,
        extended: bool,
    },
    /// `BEGIN`, the body, `COMMIT`, each its own simple or extended unit.
    Transaction {
        begin_tagged: bool,
        body: Vec<Stmt>,
        commit_tagged: bool,
    },
}

/// A named statement: its tag, and which of a few SQL texts it has, so that clients share some
/// texts (the shared connection deduplicates by text) and differ in others (a mix-up shows).
#[derive(Clone, Debug)]
struct Slot {
    tagged: bool,
    variant: u8,
}

#[derive(Clone, Debug)]
struct ClientPlan {
    slots: Vec<Slot>,
    units: Vec<Unit>,
    /// Pipelining depths, used in turn: send that many units, then read their replies.
    depths: Vec<usize>,
}

fn stmt() -> impl Strategy<Value = Stmt> {
    prop_oneof![
        1 => any::<bool>().prop_map(|tagged| Stmt::Simple { tagged }),
        1 => any::<bool>().prop_map(|tagged| Stmt::Unnamed { tagged }),
        2 => (0..SLOTS, any::<bool>()).prop_map(|(slot, describe)| Stmt::Named { slot, describe }),
        1 => any::<bool>().prop_map(|tagged| Stmt::Describe { tagged }),
    ]
}

fn unit() -> impl Strategy<Value = Unit> {
    prop_oneof![
        8 => stmt().prop_map(Unit::Plain),
        1 => (any::<bool>(), any::<bool>())
            .prop_map(|(tagged, extended)| Unit::DivisionByZero { tagged, extended }),
        2 => (any::<bool>(), vec(stmt(), 0..=3), any::<bool>()).prop_map(
            |(begin_tagged, body, commit_tagged)| Unit::Transaction { begin_tagged, body, commit_tagged }
        ),
    ]
}

fn client_plan() -> impl Strategy<Value = ClientPlan> {
    let slot = (any::<bool>(), 0..3u8).prop_map(|(tagged, variant)| Slot { tagged, variant });
    (
        vec(slot, SLOTS),
        vec(unit(), 1..=12),
        vec(1..=6usize, 1..=4),
    )
        .prop_map(|(slots, units, depths)| ClientPlan {
            slots,
            units,
            depths,
        })
}

/// What one reply must be.
#[derive(Debug)]
enum Expect {
    /// Exactly these message tags, one DataRow `(token, user)`, and this transaction status.
    Row {
        token: String,
        user: &'static str,
        tags: &'static [u8],
        status: u8,
    },
    /// `CommandComplete` with this tag, then ReadyForQuery with this status.
    Command {
        command: &'static str,
        user: &'static str,
        status: u8,
    },
    /// An ErrorResponse 22012 and no row, then ReadyForQuery idle.
    DivisionByZero { unit: String, user: &'static str },
    /// ParseComplete, ParameterDescription, RowDescription: the answer to `Parse + Describe +
    /// Flush`, with no ReadyForQuery (the unit is still open).
    Described { unit: String, user: &'static str },
}

impl Expect {
    /// Which unit the reply belongs to, for failure messages.
    fn unit(&self) -> &str {
        match self {
            Expect::Row { token, .. } => token,
            Expect::Command { command, .. } => command,
            Expect::DivisionByZero { unit, .. } | Expect::Described { unit, .. } => unit,
        }
    }

    /// The server role the unit runs as: its lane.
    fn user(&self) -> &'static str {
        match self {
            Expect::Row { user, .. }
            | Expect::Command { user, .. }
            | Expect::DivisionByZero { user, .. }
            | Expect::Described { user, .. } => user,
        }
    }
}

/// Bytes to send and the reply they earn. `wait` makes the client read every outstanding reply
/// before it sends more, as postgres.js does after `Flush`.
struct Phase {
    bytes: Vec<u8>,
    expect: Expect,
    wait: bool,
}

/// Turns a client's plan into wire messages and the replies they must earn.
struct Script<'a> {
    client: usize,
    plan: &'a ClientPlan,
    next_unit: usize,
    prepared: [bool; SLOTS],
    steps: Vec<Vec<Phase>>,
}

fn lane_user(tagged: bool) -> &'static str {
    if tagged { "app" } else { "pooler" }
}

fn tag(tagged: bool) -> &'static str {
    if tagged { TAG } else { "" }
}

impl<'a> Script<'a> {
    fn build(client: usize, plan: &'a ClientPlan) -> Vec<Vec<Phase>> {
        let mut script = Script {
            client,
            plan,
            next_unit: 0,
            prepared: [false; SLOTS],
            steps: Vec::new(),
        };
        for unit in &plan.units {
            script.unit(unit);
        }
        script.steps
    }

    fn token(&mut self) -> String {
        self.next_unit += 1;
        format!("c{}-u{}", self.client, self.next_unit)
    }

    fn unit(&mut self, unit: &Unit) {
        match unit {
            Unit::Plain(stmt) => self.stmt(stmt, None, b'I'),
            Unit::DivisionByZero { tagged, extended } => {
                let token = self.token();
                let sql = format!("{}select '{token}', 1/0", tag(*tagged));
                let bytes = if *extended {
                    extended_unit("", &sql, None)
                } else {
                    query(&sql)
                };
                let expect = Expect::DivisionByZero {
                    unit: token,
                    user: lane_user(*tagged),
                };
                self.steps.push(vec![phase(bytes, expect)]);
            }
            Unit::Transaction {
                begin_tagged,
                body,
                commit_tagged,
            } => {
                // A tagged BEGIN picks its lane itself. lockroute answers an untagged one and
                // runs the transaction on the lane of its first statement (DESIGN.md, Routing).
                let user = match body.first() {
                    _ if *begin_tagged => lane_user(true),
                    Some(first) => lane_user(self.tagged(first)),
                    None => lane_user(false),
                };
                let begin = query(&format!("{}begin", tag(*begin_tagged)));
                self.steps
                    .push(vec![phase(begin, command("BEGIN", user, b'T'))]);
                for stmt in body {
                    self.stmt(stmt, Some(user), b'T');
                }
                let commit = query(&format!("{}commit", tag(*commit_tagged)));
                self.steps
                    .push(vec![phase(commit, command("COMMIT", user, b'I'))]);
            }
        }
    }

    /// Whether a statement carries the tag, itself or through its named slot.
    fn tagged(&self, stmt: &Stmt) -> bool {
        match *stmt {
            Stmt::Simple { tagged } | Stmt::Unnamed { tagged } | Stmt::Describe { tagged } => {
                tagged
            }
            Stmt::Named { slot, .. } => self.plan.slots[slot].tagged,
        }
    }

    /// One row-returning statement. `lane` is the transaction's lane when inside one.
    fn stmt(&mut self, stmt: &Stmt, lane: Option<&'static str>, status: u8) {
        let token = self.token();
        let row = |token: String, tagged: bool, tags: &'static [u8]| Expect::Row {
            token,
            user: lane.unwrap_or(lane_user(tagged)),
            tags,
            status,
        };
        let step = match *stmt {
            Stmt::Simple { tagged } => {
                let sql = format!("{}select '{token}', current_user", tag(tagged));
                vec![phase(query(&sql), row(token, tagged, b"TDCZ"))]
            }
            Stmt::Unnamed { tagged } => {
                let sql = format!("{}select '{token}', current_user", tag(tagged));
                let bytes = extended_unit("", &sql, None);
                vec![phase(bytes, row(token, tagged, b"12DCZ"))]
            }
            Stmt::Describe { tagged } => {
                let sql = format!("{}select $1::text || '/d', current_user", tag(tagged));
                let want = format!("{token}/d");
                describe_first("", &sql, &token, row(want, tagged, b"2DCZ"))
            }
            Stmt::Named { slot, describe } => {
                let Slot { tagged, variant } = self.plan.slots[slot];
                let name = format!("s{slot}");
                let sql = format!(
                    "{}select $1::text || '/v{variant}', current_user",
                    tag(tagged)
                );
                let want = format!("{token}/v{variant}");
                let first = !std::mem::replace(&mut self.prepared[slot], true);
                if first && describe {
                    describe_first(&name, &sql, &token, row(want, tagged, b"2DCZ"))
                } else if first {
                    let bytes = extended_unit(&name, &sql, Some(&token));
                    vec![phase(bytes, row(want, tagged, b"12DCZ"))]
                } else {
                    let bytes = bind_execute_sync(&name, Some(&token));
                    vec![phase(bytes, row(want, tagged, b"2DCZ"))]
                }
            }
        };
        self.steps.push(step);
    }
}

fn phase(bytes: Vec<u8>, expect: Expect) -> Phase {
    Phase {
        bytes,
        expect,
        wait: false,
    }
}

fn command(command: &'static str, user: &'static str, status: u8) -> Expect {
    Expect::Command {
        command,
        user,
        status,
    }
}

/// postgres.js's shape: `Parse + Describe(S) + Flush`, read the reply, then `Bind + Execute +
/// Sync`.
fn describe_first(name: &str, sql: &str, param: &str, row: Expect) -> Vec<Phase> {
    let mut first = parse(name, sql);
    first.extend(message(b'D', format!("S{name}\0").as_bytes()));
    first.extend(message(b'H', b""));
    let Expect::Row { user, .. } = row else {
        unreachable!("a describe-first unit returns a row")
    };
    let unit = param.to_owned();
    vec![
        Phase {
            bytes: first,
            expect: Expect::Described { unit, user },
            wait: true,
        },
        phase(bind_execute_sync(name, Some(param)), row),
    ]
}

/// Whether a reply is exactly what `expect` says.
fn matches(expect: &Expect, reply: &[(u8, Vec<u8>)]) -> bool {
    let tags: Vec<u8> = reply.iter().map(|(t, _)| *t).collect();
    let last = reply.last().map(|(t, b)| (*t, b.as_slice()));
    match expect {
        Expect::Row {
            token,
            user,
            tags: want,
            status,
        } => {
            let row = reply
                .iter()
                .find(|(t, _)| *t == b'D')
                .map(|(_, b)| data_row(b));
            tags == *want
                && row == Some(vec![token.clone(), (*user).to_owned()])
                && last == Some((b'Z', &[*status][..]))
        }
        Expect::Command {
            command, status, ..
        } => {
            tags == b"CZ"
                && reply[0].1 == format!("{command}\0").as_bytes()
                && last == Some((b'Z', &[*status][..]))
        }
        Expect::DivisionByZero { .. } => {
            let errors: Vec<String> = reply
                .iter()
                .filter(|(t, _)| *t == b'E')
                .map(|(_, b)| sqlstate(b))
                .collect();
            errors == ["22012"] && !tags.contains(&b'D') && last == Some((b'Z', &b"I"[..]))
        }
        Expect::Described { .. } => tags == b"1tT",
    }
}

/// Writes what is buffered, then reads and checks every outstanding reply in order.
async fn flush(
    s: &mut TcpStream,
    client: usize,
    buf: &mut Vec<u8>,
    pending: &mut VecDeque<Expect>,
    answered: &mut usize,
) -> Result<(), String> {
    send(s, buf).await;
    buf.clear();
    while let Some(expect) = pending.pop_front() {
        // A describe is answered up to RowDescription (or an error); the unit is still open.
        let stops: &[u8] = match expect {
            Expect::Described { .. } => b"TEZ",
            _ => b"Z",
        };
        let reply = read_reply(s, stops)
            .await
            .map_err(|e| format!("client {client}, reply #{answered}: {e}; awaiting {expect:?}"))?;
        if !matches(&expect, &reply) {
            return Err(format!(
                "client {client}, reply #{answered} (unit {} on the {} lane): expected {expect:?}, got {}",
                expect.unit(),
                if expect.user() == "app" {
                    "direct"
                } else {
                    "pooler"
                },
                describe_reply(&reply)
            ));
        }
        *answered += 1;
    }
    Ok(())
}

/// Runs one client's script, pipelined by its depths, and checks that nothing else arrives
/// before the proxy closes the connection on Terminate.
async fn run_client(
    addr: SocketAddr,
    client: usize,
    plan: ClientPlan,
    start: Arc<Barrier>,
) -> Result<(), String> {
    let connected = connect(addr).await;
    // Every client starts sending at once, so that their units interleave.
    start.wait().await;
    let mut s = connected.map_err(|e| format!("client {client}: {e}"))?;
    let mut steps = Script::build(client, &plan).into_iter().peekable();
    let mut depths = plan.depths.iter().cycle();
    let (mut buf, mut pending, mut answered) = (Vec::new(), VecDeque::new(), 0);
    while steps.peek().is_some() {
        let depth = *depths.next().expect("depths are never empty");
        for step in steps.by_ref().take(depth) {
            for phase in step {
                buf.extend(phase.bytes);
                pending.push_back(phase.expect);
                if phase.wait {
                    flush(&mut s, client, &mut buf, &mut pending, &mut answered).await?;
                }
            }
        }
        flush(&mut s, client, &mut buf, &mut pending, &mut answered).await?;
    }
    send(&mut s, &message(b'X', b"")).await;
    match read_message(&mut s).await {
        Err(e) if e.starts_with("connection lost") => Ok(()),
        Err(e) => Err(format!("client {client}: not closed after Terminate: {e}")),
        Ok((tag, body)) => Err(format!(
            "client {client}: a reply nobody asked for: {}",
            describe_reply(&[(tag, body)])
        )),
    }
}

async fn run_case(plans: Vec<ClientPlan>) -> Result<(), String> {
    let proxy = Proxy::start(&[
        "--client-auth",
        "trust",
        "--direct-pool-size",
        "1",
        // Waiting in line must never fall back to the pooler here: that would change the lane
        // the oracle expects, and fallback is tested on its own in routing.rs.
        "--direct-wait-timeout",
        "60s",
    ])
    .await;
    let result = run_clients(proxy.addr, plans).await;
    proxy.stop().await;
    result
}

/// Runs every client's plan at once against `addr`; all failures, one per line.
async fn run_clients(addr: SocketAddr, plans: Vec<ClientPlan>) -> Result<(), String> {
    let start = Arc::new(Barrier::new(plans.len()));
    let tasks: Vec<_> = plans
        .into_iter()
        .enumerate()
        .map(|(c, plan)| tokio::spawn(run_client(addr, c, plan, start.clone())))
        .collect();
    let mut failures = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(format!("client task panicked: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

#[test]
fn interleaved_clients_sharing_one_direct_connection_each_get_their_own_replies_in_order() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = Config {
        cases: CASES,
        // A failing case is re-run while shrinking; bound that so a failure still ends soon.
        max_shrink_iters: 200,
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&vec(client_plan(), 3..=6), |plans| {
        rt.block_on(run_case(plans)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
