//! COPY cut in the middle: a CopyData frame torn on its way to the client (COPY TO STDOUT) or
//! on its way to the pooler (COPY FROM STDIN, with the client still sending).

use crate::common::proxy::raw::message;
use crate::common::{StandIn, pg_connect, unique_name};
use crate::relay::{Dir, Fault};
use crate::wire::{self, assert_lost, errors, scalar};
use crate::{Rig, TAG};

#[tokio::test]
async fn pooler_cut_mid_copy_out_gives_08006_then_the_next_query_succeeds() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    let armed = rig
        .pooler
        .arm(Fault::on(Dir::ToProxy, b'd').containing("row-3").at(7));
    client
        .send(&wire::query(
            "copy (select 'row-' || g from generate_series(1, 5) g) to stdout",
        ))
        .await;
    let reply = wire::within("08006 in COPY OUT", client.reply()).await;
    assert_eq!(armed.fired(), 1);
    assert_lost(&reply, 'I', "COPY OUT");
    let data: Vec<_> = reply.iter().filter(|m| m.tag == b'd').collect();
    assert!(data.len() <= 2, "no CopyData past the cut: {reply:?}");
    assert_eq!(scalar(&client.query("select current_user").await), "pooler");
    rig.stop().await;
}

#[tokio::test]
async fn pooler_cut_mid_copy_in_gives_08006_and_the_rest_of_the_copy_is_ignored() {
    let s = StandIn::shared();
    let table = unique_name("cut_copy");
    let admin = pg_connect(&s.direct_url).await;
    admin
        .batch_execute(&format!("create table {table} (v text)"))
        .await
        .unwrap();
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    client
        .send(&wire::query(&format!("copy {table} from stdin")))
        .await;
    let start = wire::within("CopyInResponse", client.message()).await;
    assert_eq!(start.tag, b'G', "{start:?}");
    // The second CopyData is torn on its way to PgBouncer; the client, not knowing yet,
    // sends the rest of its data and CopyDone.
    let armed = rig
        .pooler
        .arm(Fault::on(Dir::ToServer, b'd').containing("two").at(6));
    client.send(&message(b'd', b"one\n")).await;
    client.send(&message(b'd', b"two\n")).await;
    armed.wait_fired(wire::BOUND).await;
    let mut rest = message(b'd', b"three\n");
    rest.extend(message(b'c', b""));
    client.send(&rest).await;
    let reply = wire::within("08006 in COPY IN", client.reply()).await;
    assert_lost(&reply, 'I', "COPY IN");
    // Whatever the client sent after the loss belongs to the lost COPY: the next statement
    // gets its own, clean reply.
    for _ in 0..2 {
        let next = client.query("select current_user").await;
        assert!(errors(&next).is_empty(), "{next:?}");
        assert_eq!(scalar(&next), "pooler");
    }
    let rows: i64 = admin
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "the torn COPY did not commit");
    admin
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
    rig.stop().await;
}

#[tokio::test]
async fn extended_copy_in_done_and_sync_split_across_reads_keeps_the_shared_direct_connection() {
    let s = StandIn::shared();
    let table = unique_name("cut_copy_split");
    let admin = pg_connect(&s.direct_url).await;
    admin
        .batch_execute(&format!("create table {table} (v text)"))
        .await
        .unwrap();
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    // Extended-protocol COPY FROM STDIN on the shared direct connection; its Sync is ignored
    // by a server in copy-in mode.
    let sql = format!("{TAG}copy {table} from stdin");
    let mut start = message(b'P', format!("\0{sql}\0\0\0").as_bytes());
    start.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    start.extend(message(b'E', b"\0\0\0\0\0"));
    start.extend(message(b'S', b""));
    client.send(&start).await;
    let mut tags = Vec::new();
    while tags.last() != Some(&b'G') {
        tags.push(wire::within("CopyInResponse", client.message()).await.tag);
    }
    assert_eq!(tags, b"12G");
    // CopyDone with a Flush, and the Sync only after the CommandComplete: the client's last
    // two frames arrive in different reads, as they may at any TCP segment boundary.
    let mut done = message(b'd', b"one\n");
    done.extend(message(b'c', b""));
    done.extend(message(b'H', b""));
    client.send(&done).await;
    let complete = wire::within("CommandComplete after CopyDone", client.message()).await;
    assert_eq!(complete.tag, b'C', "{complete:?}");
    assert_eq!(complete.body, b"COPY 1\0");
    client.send(&message(b'S', b"")).await;
    let ready = wire::within("ReadyForQuery after Sync", client.reply()).await;
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!(wire::status(&ready), 'I');
    let user = client.query(&format!("{TAG}select current_user")).await;
    assert_eq!(scalar(&user), "app");
    let rows: i64 = admin
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    admin
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
    rig.stop().await;
}
