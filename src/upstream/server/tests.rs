//! The server core alone: client plans in, server replies in, what it owes and holds out.
use bytes::Bytes;
use tokio::time::Instant;

use super::*;

fn command_complete(tag: &str) -> Vec<u8> {
    let mut body = tag.as_bytes().to_vec();
    body.push(0);
    body
}

fn error(severity: &str, code: &str) -> Vec<u8> {
    format!("S{severity}\0C{code}\0Mboom\0\0").into_bytes()
}

fn ready(server: &mut Server, status: u8) -> Verdict {
    server.on_reply(b'Z', &[status], Instant::now())
}

#[test]
fn a_set_read_by_any_path_marks_the_connection_dirty() {
    let mut server = Server::new(false);
    server.sent_simple(Instant::now());
    assert_eq!(
        server.on_reply(b'C', &command_complete("SET"), Instant::now()),
        Verdict::Forward
    );
    assert!(matches!(ready(&mut server, b'I'), Verdict::UnitDone { .. }));
    assert!(server.is_dirty());
    assert_eq!(
        server.reset_plan(),
        ResetPlan::Reset {
            rollback: false,
            discard: true
        }
    );
    server.after_reset(true);
    assert!(!server.is_dirty());
}

#[test]
fn effects_noted_at_send_mark_dirty_before_any_reply() {
    let mut server = Server::new(false);
    server.note_effects(crate::route::effects::effects(
        b"select set_config('search_path', 'x', false)",
    ));
    assert!(server.is_dirty());
    let mut clean = Server::new(false);
    clean.note_effects(crate::route::effects::effects(b"select 1"));
    assert!(!clean.is_dirty());
}

#[test]
fn an_error_forgets_a_pending_name_and_the_unnamed_slot() {
    let mut server = Server::new(false);
    let key = Bytes::from_static(b"select 1\0\0\0");
    let name = server.names().reserve(&key).expect("room for a name");
    server.sent_prepare(true, (key.clone(), name));
    server.set_unnamed_slot(Some(7));
    server.sent_sync(Instant::now());
    assert_eq!(
        server.on_reply(b'E', &error("ERROR", "42601"), Instant::now()),
        Verdict::Forward
    );
    assert!(server.names_ref().lookup(&key).is_none());
    assert_eq!(server.unnamed_slot(), None);
    assert!(matches!(ready(&mut server, b'I'), Verdict::UnitDone { .. }));
    assert!(server.is_clean());
}

#[test]
fn a_confirmed_injected_prepare_is_swallowed_and_kept() {
    let mut server = Server::new(false);
    let key = Bytes::from_static(b"select 2\0\0\0");
    let name = server.names().reserve(&key).expect("room for a name");
    server.sent_prepare(true, (key.clone(), name));
    assert_eq!(server.on_reply(b'1', &[], Instant::now()), Verdict::Swallow);
    assert!(server.names_ref().is_confirmed(&key));
}

#[test]
fn a_fatal_is_a_loss_and_reports_what_was_owed() {
    let mut server = Server::new(true);
    server.sent_simple(Instant::now());
    server.sent_simple(Instant::now());
    assert_eq!(
        server.on_reply(b'E', &error("FATAL", "57P01"), Instant::now()),
        Verdict::Lost
    );
    assert_eq!(server.lost(), (2, TxStatus::Idle));
}

#[test]
fn a_pooled_server_forgets_its_slot_at_the_end_of_each_transaction() {
    let mut pooled = Server::new(true);
    pooled.set_unnamed_slot(Some(3));
    pooled.sent_sync(Instant::now());
    ready(&mut pooled, b'T');
    assert_eq!(pooled.unnamed_slot(), Some(3));
    pooled.sent_sync(Instant::now());
    ready(&mut pooled, b'I');
    assert_eq!(pooled.unnamed_slot(), None);
    let mut direct = Server::new(false);
    direct.set_unnamed_slot(Some(3));
    direct.sent_sync(Instant::now());
    ready(&mut direct, b'I');
    assert_eq!(direct.unnamed_slot(), Some(3));
}

#[test]
fn an_open_transaction_is_rolled_back_and_an_unended_batch_is_closed() {
    let mut server = Server::new(false);
    server.sent_simple(Instant::now());
    ready(&mut server, b'T');
    assert_eq!(
        server.reset_plan(),
        ResetPlan::Reset {
            rollback: true,
            discard: false
        }
    );
    let mut unended = Server::new(false);
    unended.sent_parse(false);
    assert_eq!(unended.reset_plan(), ResetPlan::Close);
}

#[test]
fn discard_and_deallocate_drop_lockroutes_names() {
    let mut server = Server::new(false);
    let key = Bytes::from_static(b"select 3\0\0\0");
    let name = server.names().reserve(&key).expect("room for a name");
    server.sent_prepare(true, (key.clone(), name));
    server.on_reply(b'1', &[], Instant::now());
    server.sent_simple(Instant::now());
    server.on_reply(b'C', &command_complete("DISCARD ALL"), Instant::now());
    assert!(server.names_ref().lookup(&key).is_none());
    assert!(server.is_dirty());
}

#[test]
fn clean_command_tags() {
    for tag in [
        "SELECT 1",
        "INSERT 0 1",
        "UPDATE 3",
        "BEGIN",
        "COMMIT",
        "FETCH 2",
    ] {
        assert!(leaves_session_clean(tag.as_bytes()), "{tag}");
    }
    for tag in [
        "SET",
        "LISTEN",
        "DECLARE CURSOR",
        "PREPARE",
        "CREATE TABLE",
        "RESET",
    ] {
        assert!(!leaves_session_clean(tag.as_bytes()), "{tag}");
    }
}

#[test]
fn a_loss_under_a_deferred_begin_owes_only_the_clients_unit_in_a_failed_transaction() {
    let mut server = Server::new(true);
    server.sent_injected();
    server.sent_simple(Instant::now());
    // The client was answered BEGIN by lockroute; only its statement is owed, and its
    // transaction is now a failed one.
    assert_eq!(server.lost(), (1, TxStatus::Failed));
}
