//! Upstreams that deliver every frame in 1-byte writes with jittered pauses, both ways: the
//! client's replies are byte-identical to a clean run, simple and extended, on both lanes.

use tokio_postgres::types::ToSql;

use crate::common::proxy::Proxy;
use crate::relay::Fragment;
use crate::wire::{self, Client};
use crate::{Rig, TAG};

/// Deterministic rows of several widths and types.
const ROWS: &str = "select g, md5(g::text), repeat(chr(65 + g % 26), g * 7), (g::numeric / 7)::text, \
                    g % 3 = 0, case when g % 4 = 0 then null else g * 1.5 end \
                    from generate_series(1, 12) g";

/// Every reply, byte for byte: simple and extended units on both lanes.
async fn transcript(client: &mut Client) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for lane in ["/* pooler */ ", TAG] {
        let sql = format!("{lane}{ROWS}");
        for unit in [wire::query(&sql), wire::extended(&sql)] {
            client.send(&unit).await;
            out.push(wire::within("a fragmented reply", client.reply_bytes()).await);
        }
        client
            .send(&wire::query(&format!("{lane}select current_user")))
            .await;
        out.push(client.reply_bytes().await);
    }
    out
}

/// A real driver with parameters and named prepared statements, on both lanes.
async fn driver_rows(proxy: &Proxy) -> Vec<Vec<(i32, String)>> {
    let client = wire::within("tokio-postgres login", proxy.connect()).await;
    let mut out = Vec::new();
    for lane in ["/* pooler */ ", TAG] {
        let sql = format!("{lane}select $1::int + g, md5($2 || g) from generate_series(1, 10) g");
        let stmt = client.prepare(&sql).await.unwrap();
        for round in 0..3i32 {
            let params: [&(dyn ToSql + Sync); 2] = [&round, &"p"];
            let rows = wire::within("an extended query", client.query(&stmt, &params))
                .await
                .unwrap();
            out.push(rows.iter().map(|r| (r.get(0), r.get(1))).collect());
        }
    }
    out
}

#[tokio::test]
async fn fragmented_upstream_replies_are_byte_identical_to_a_clean_run() {
    let clean = Proxy::start(&["--client-auth", "trust"]).await;
    let mut client = wire::within("clean connect", Client::connect(clean.addr)).await;
    let want = wire::within("the clean transcript", transcript(&mut client)).await;
    let want_rows = driver_rows(&clean).await;
    clean.stop().await;
    let fragment = Fragment {
        chunk: 1,
        pause_one_in: 32,
    };
    let rig = Rig::start_with(&[], Some(fragment)).await;
    let mut client = rig.client().await;
    let got = wire::within("the fragmented transcript", transcript(&mut client)).await;
    assert_eq!(got.len(), want.len());
    for (i, (got, want)) in got.iter().zip(&want).enumerate() {
        assert!(
            got == want,
            "reply {i} differs:\n got {got:?}\nwant {want:?}"
        );
    }
    // Both lanes really ran: the transcript holds `pooler`, then `app`.
    let users: Vec<_> = [2, 5]
        .iter()
        .map(|&i| wire::rows(&parse(&got[i]))[0][0].clone())
        .collect();
    assert_eq!(users, ["pooler", "app"]);
    let got_rows = wire::within("the fragmented driver run", driver_rows(&rig.proxy)).await;
    assert_eq!(got_rows.len(), 6);
    assert!(got_rows.iter().all(|rows| rows.len() == 10));
    assert_eq!(got_rows, want_rows);
    rig.stop().await;
}

/// Splits raw reply bytes back into messages.
fn parse(mut bytes: &[u8]) -> Vec<wire::Msg> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
        out.push(wire::Msg {
            tag: bytes[0],
            body: bytes[5..1 + len].to_vec(),
        });
        bytes = &bytes[1 + len..];
    }
    out
}
