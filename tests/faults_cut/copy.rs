//! COPY cut in the middle: a CopyData frame torn on its way to the client (COPY TO STDOUT) or
//! on its way to the pooler (COPY FROM STDIN, with the client still sending).

use crate::Rig;
use crate::common::proxy::raw::message;
use crate::common::{StandIn, pg_connect, unique_name};
use crate::relay::{Dir, Fault};
use crate::wire::{self, assert_lost, errors, scalar};

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
