use super::*;
use crate::protocol::frame::try_take;

fn frames(bytes: Vec<bytes::Bytes>) -> Vec<Frame> {
    bytes
        .into_iter()
        .map(|b| {
            try_take(&mut BytesMut::from(&b[..]), 1 << 20)
                .unwrap()
                .unwrap()
        })
        .collect()
}

fn tags(out: &BytesMut) -> Vec<u8> {
    let mut buf = out.clone();
    std::iter::from_fn(|| try_take(&mut buf, 1 << 20).unwrap().map(|f| f.tag)).collect()
}

#[test]
fn ends_transaction_recognises_exit_statements() {
    for (sql, want) in [
        ("ROLLBACK", true),
        ("rollback;", true),
        ("  commit", true),
        ("END", true),
        ("abort", true),
        ("COMMIT AND CHAIN", false),
        ("ROLLBACK TO SAVEPOINT a", false),
        ("rollback to a", false),
        ("COMMIT PREPARED 'x'", false),
        ("select 1", false),
        ("committed", false),
        ("", false),
    ] {
        assert_eq!(ends_transaction(sql.as_bytes()), want, "{sql}");
    }
}

#[test]
fn discard_to_sync_drops_then_answers_ready() {
    let mut statements = Statements::default();
    let mut out = BytesMut::new();
    let mut state = Some(Local::DiscardToSync {
        then: TxStatus::Idle,
    });
    for frame in frames(vec![
        message::frame(b'B', |_| {}),
        message::frame(b'E', |_| {}),
        message::sync(),
    ]) {
        state = state.unwrap().on_client(&frame, &mut statements, &mut out);
    }
    assert_eq!(state, None);
    assert_eq!(tags(&out), vec![b'Z']);
}

#[test]
fn failed_transaction_rejects_until_simple_rollback() {
    let mut statements = Statements::default();
    let mut out = BytesMut::new();
    let state = Local::failed_transaction();
    let select = &frames(vec![message::query("select 1")])[0];
    let state = state.on_client(select, &mut statements, &mut out).unwrap();
    assert_eq!(tags(&out), vec![b'E', b'Z']);
    assert_eq!(out[out.len() - 1], b'E');
    out.clear();
    let rollback = &frames(vec![message::query("ROLLBACK")])[0];
    assert_eq!(state.on_client(rollback, &mut statements, &mut out), None);
    assert_eq!(tags(&out), vec![b'C', b'Z']);
    assert_eq!(out[out.len() - 1], b'I');
}

#[test]
fn failed_transaction_extended_commit_ends_it() {
    let mut statements = Statements::default();
    let mut out = BytesMut::new();
    let parse = message::frame(b'P', |b| b.extend_from_slice(b"s1\0commit\0\0\0"));
    let bind = message::frame(b'B', |b| b.extend_from_slice(b"\0s1\0\0\0\0\0\0\0"));
    let execute = message::frame(b'E', |b| b.extend_from_slice(b"\0\0\0\0\0"));
    let mut state = Some(Local::failed_transaction());
    for frame in frames(vec![parse, bind, execute, message::sync()]) {
        state = state.unwrap().on_client(&frame, &mut statements, &mut out);
    }
    assert_eq!(state, None);
    assert_eq!(tags(&out), vec![b'1', b'2', b'C', b'Z']);
    assert_eq!(out[out.len() - 1], b'I');
}

#[test]
fn lost_while_idle_in_transaction_first_error_is_08006_then_25p02() {
    let mut statements = Statements::default();
    let mut out = BytesMut::new();
    let state = Local::after_loss(false, false, TxStatus::InTransaction).unwrap();
    let select = &frames(vec![message::query("select 1")])[0];
    let state = state.on_client(select, &mut statements, &mut out).unwrap();
    assert_eq!(crate::protocol::message::sqlstate(&out[5..]), Some("08006"));
    out.clear();
    state.on_client(select, &mut statements, &mut out).unwrap();
    assert_eq!(crate::protocol::message::sqlstate(&out[5..]), Some("25P02"));
}

#[test]
fn lost_with_a_statement_in_flight_in_transaction_next_error_is_25p02() {
    // The statement in flight already got its 08006; a second one would say the same
    // loss twice.
    let mut statements = Statements::default();
    let mut out = BytesMut::new();
    let state = Local::after_loss(false, true, TxStatus::InTransaction).unwrap();
    let select = &frames(vec![message::query("select 1")])[0];
    state.on_client(select, &mut statements, &mut out).unwrap();
    assert_eq!(crate::protocol::message::sqlstate(&out[5..]), Some("25P02"));
}

#[test]
fn failed_transaction_extended_statement_fails_and_stays_failed() {
    let mut statements = Statements::default();
    let mut out = BytesMut::new();
    let parse = message::frame(b'P', |b| b.extend_from_slice(b"\0select 1\0\0\0"));
    let bind = message::frame(b'B', |b| b.extend_from_slice(b"\0\0\0\0\0\0\0\0"));
    let mut state = Some(Local::failed_transaction());
    for frame in frames(vec![parse, bind, message::sync()]) {
        state = state.unwrap().on_client(&frame, &mut statements, &mut out);
    }
    assert_eq!(state, Some(Local::failed_transaction()));
    assert_eq!(tags(&out), vec![b'E', b'Z']);
    assert_eq!(out[out.len() - 1], b'E');
}

#[test]
fn commit_as_the_first_word_after_an_unreported_loss_fails_with_08006() {
    // The client never heard of the loss: a ROLLBACK tag would tell it the writes committed.
    let mut statements = Statements::default();
    let mut out = BytesMut::new();
    let state = Local::after_loss(false, false, TxStatus::InTransaction).unwrap();
    let commit = &frames(vec![message::query("COMMIT")])[0];
    assert_eq!(state.on_client(commit, &mut statements, &mut out), None);
    assert_eq!(tags(&out), vec![b'E', b'Z']);
    assert_eq!(crate::protocol::message::sqlstate(&out[5..]), Some("08006"));
    assert_eq!(out[out.len() - 1], b'I');
}

#[test]
fn extended_commit_after_an_unreported_loss_fails_with_08006() {
    let mut statements = Statements::default();
    let mut out = BytesMut::new();
    let parse = message::frame(b'P', |b| b.extend_from_slice(b"\0end\0\0\0"));
    let bind = message::frame(b'B', |b| b.extend_from_slice(b"\0\0\0\0\0\0\0\0"));
    let execute = message::frame(b'E', |b| b.extend_from_slice(b"\0\0\0\0\0"));
    let mut state = Local::after_loss(false, false, TxStatus::InTransaction);
    for frame in frames(vec![parse, bind, execute, message::sync()]) {
        state = state.unwrap().on_client(&frame, &mut statements, &mut out);
    }
    assert_eq!(state, None);
    assert_eq!(tags(&out), vec![b'E', b'Z']);
    assert_eq!(crate::protocol::message::sqlstate(&out[5..]), Some("08006"));
    assert_eq!(out[out.len() - 1], b'I');
}

#[test]
fn rollback_after_an_unreported_loss_just_ends_the_transaction() {
    let mut statements = Statements::default();
    let mut out = BytesMut::new();
    let state = Local::after_loss(false, false, TxStatus::InTransaction).unwrap();
    let rollback = &frames(vec![message::query("rollback")])[0];
    assert_eq!(state.on_client(rollback, &mut statements, &mut out), None);
    assert_eq!(tags(&out), vec![b'C', b'Z']);
}
