//! The pooler lane cut in the middle of a reply: inside a DataRow, inside a frame header, right
//! before or inside ReadyForQuery, inside the client's Query on its way up, in a transaction,
//! and with more units pipelined behind the one that was cut.

use std::time::Duration;

use crate::relay::{Dir, Fault, How, Until};
use crate::wire::{
    self, Client, assert_lost, assert_rows_before_cut, errors, rows, scalar, status,
};
use crate::{Rig, TAG};

/// Five rows; the third carries the marker, which the query text itself does not contain.
const CUT_QUERY: &str = "select g, case when g = 3 then 'cut' || 'me' else 'row-' || g end from generate_series(1, 5) g";

fn expected_rows() -> Vec<Vec<String>> {
    (1..=5)
        .map(|g| {
            let v = if g == 3 {
                "cutme".to_owned()
            } else {
                format!("row-{g}")
            };
            vec![g.to_string(), v]
        })
        .collect()
}

/// Arms `fault` on the pooler relay, sends `unit`, and checks the guarantees: exactly one
/// `08006` then ReadyForQuery `status_want`, the rows before the cut are intact, the client
/// socket stays open, and the next query succeeds on the pooler over a new connection.
async fn cut_and_recover(
    rig: &Rig,
    client: &mut Client,
    fault: Fault,
    unit: &[u8],
    status_want: char,
) {
    let what = fault.to_string();
    // Rows 1 and 2 precede the cut; row 3 is torn, so it never reaches the client.
    let sent = if fault.dir() == Dir::ToServer { 0 } else { 2 };
    let fin = fault.ends_with_fin();
    let armed = rig.pooler.arm(fault);
    let before = rig.pooler.accepted();
    client.send(unit).await;
    let reply = wire::within(&format!("08006 after {what}"), client.reply()).await;
    assert_eq!(armed.fired(), 1, "{what}: the fault never fired");
    assert_lost(&reply, status_want, &what);
    assert_rows_before_cut(&rows(&reply), &expected_rows(), sent, fin, &what);
    if status_want == 'I' {
        let user = client.query("select current_user").await;
        assert_eq!(scalar(&user), "pooler", "{what}");
        assert_eq!(
            rig.pooler.accepted(),
            before + 1,
            "{what}: lockroute reconnects the pooler lane once"
        );
    }
}

#[tokio::test]
async fn pooler_reply_cut_mid_data_row_gives_08006_then_the_next_query_succeeds() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    for how in [How::Rst, How::Fin] {
        for unit in [wire::query(CUT_QUERY), wire::extended(CUT_QUERY)] {
            let fault = Fault::on(Dir::ToProxy, b'D').containing("cutme").at(9);
            cut_and_recover(&rig, &mut client, fault.cut(how), &unit, 'I').await;
        }
    }
    // A reply that stalls mid-row, then is cut.
    let stall = Fault::on(Dir::ToProxy, b'D').containing("cutme").at(9);
    let stall = stall.stall_then_cut(Until::Elapsed(Duration::from_millis(300)), How::Rst);
    cut_and_recover(&rig, &mut client, stall, &wire::query(CUT_QUERY), 'I').await;
    // The same client, after five cuts, still gets whole results.
    let reply = client.query(CUT_QUERY).await;
    assert_eq!(rows(&reply), expected_rows());
    rig.stop().await;
}

#[tokio::test]
async fn pooler_reply_cut_inside_a_frame_header_gives_08006_then_the_next_query_succeeds() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    // 1 to 4 bytes of the DataRow's 5-byte header: the tag, then part of the length.
    for at in 1..=4 {
        let fault = Fault::on(Dir::ToProxy, b'D').containing("cutme").at(at);
        cut_and_recover(&rig, &mut client, fault, &wire::query(CUT_QUERY), 'I').await;
    }
    rig.stop().await;
}

#[tokio::test]
async fn pooler_reply_cut_at_ready_for_query_gives_08006_then_the_next_query_succeeds() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    // Right before CommandComplete, right before ReadyForQuery, and inside it (its status
    // byte is the sixth).
    let cases = [
        Fault::on(Dir::ToProxy, b'C').at(0),
        Fault::on(Dir::ToProxy, b'Z').at(0),
        Fault::on(Dir::ToProxy, b'Z').at(5).cut(How::Fin),
    ];
    for fault in cases {
        for unit in [wire::query(CUT_QUERY), wire::extended(CUT_QUERY)] {
            let what = fault.to_string();
            let fin = fault.ends_with_fin();
            let armed = rig.pooler.arm(fault.clone());
            client.send(&unit).await;
            let reply = wire::within(&format!("08006 after {what}"), client.reply()).await;
            assert_eq!(armed.fired(), 1, "{what}");
            assert_lost(&reply, 'I', &what);
            // Every row precedes the cut.
            assert_rows_before_cut(&rows(&reply), &expected_rows(), 5, fin, &what);
            let user = client.query("select current_user").await;
            assert_eq!(scalar(&user), "pooler", "{what}");
        }
    }
    rig.stop().await;
}

#[tokio::test]
async fn query_cut_on_its_way_to_the_pooler_gives_08006_then_the_next_query_succeeds() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    // lockroute → PgBouncer: 7 bytes of the client's Query, then a reset.
    let fault = Fault::on(Dir::ToServer, b'Q')
        .containing("generate_series")
        .at(7);
    cut_and_recover(&rig, &mut client, fault, &wire::query(CUT_QUERY), 'I').await;
    rig.stop().await;
}

#[tokio::test]
async fn pooler_cut_inside_a_transaction_gives_08006_then_25p02_until_rollback() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    let begin = client.query("begin").await;
    assert_eq!(status(&begin), 'T');
    let fault = Fault::on(Dir::ToProxy, b'D').containing("cutme").at(9);
    cut_and_recover(&rig, &mut client, fault, &wire::query(CUT_QUERY), 'E').await;
    for unit in ["select 1", "/* lockroute:direct */ select 1"] {
        let reply = client.query(unit).await;
        assert_eq!(errors(&reply), ["25P02"], "{unit}: {reply:?}");
        assert_eq!(status(&reply), 'E');
    }
    let rollback = client.query("rollback").await;
    assert!(errors(&rollback).is_empty(), "{rollback:?}");
    assert_eq!(status(&rollback), 'I');
    assert_eq!(scalar(&client.query("select current_user").await), "pooler");
    rig.stop().await;
}

#[tokio::test]
async fn pooler_cut_fails_only_the_unit_it_hit_and_pipelined_units_run_after_it() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    let armed = rig
        .pooler
        .arm(Fault::on(Dir::ToProxy, b'D').containing("cutme").at(9));
    // Written in one go: lockroute holds units 2 to 4 until the pooler answered unit 1.
    let mut batch = wire::query(CUT_QUERY);
    batch.extend(wire::extended("select 'two'"));
    batch.extend(wire::query("select current_user"));
    batch.extend(wire::extended(&format!("{TAG}select current_user")));
    client.send(&batch).await;
    let first = wire::within("reply 1", client.reply()).await;
    assert_eq!(armed.fired(), 1);
    assert_lost(&first, 'I', "unit 1");
    let second = wire::within("reply 2", client.reply()).await;
    assert_eq!(scalar(&second), "two");
    let third = wire::within("reply 3", client.reply()).await;
    assert_eq!(scalar(&third), "pooler");
    let fourth = wire::within("reply 4", client.reply()).await;
    assert_eq!(
        scalar(&fourth),
        "app",
        "the lane switch behind the cut still happens"
    );
    rig.stop().await;
}

#[tokio::test]
async fn pooler_cut_while_the_client_still_sends_its_batch_discards_up_to_sync() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    let armed = rig
        .pooler
        .arm(Fault::on(Dir::ToProxy, b'D').containing("cutme").at(9));
    // Parse, Bind, Describe, Execute and Flush: no Sync yet, the unit is still open.
    let mut open = wire::extended_no_sync(CUT_QUERY);
    open.extend(crate::common::proxy::raw::message(b'H', b""));
    client.send(&open).await;
    let mut got = Vec::new();
    while got.last().map(|m: &wire::Msg| m.tag) != Some(b'E') {
        got.push(wire::within("the open unit's error", client.message()).await);
    }
    assert_eq!(armed.fired(), 1);
    assert_eq!(errors(&got), ["08006"], "{got:?}");
    // The rest of the batch is discarded; its Sync gets ReadyForQuery.
    let mut rest = crate::common::proxy::raw::message(b'E', b"\0\0\0\0\0");
    rest.extend(crate::common::proxy::raw::message(b'S', b""));
    client.send(&rest).await;
    let tail = wire::within("ReadyForQuery after Sync", client.reply()).await;
    assert_eq!(tail.len(), 1, "only ReadyForQuery: {tail:?}");
    assert_eq!(status(&tail), 'I');
    assert_eq!(scalar(&client.query("select current_user").await), "pooler");
    rig.stop().await;
}
