//! Server-side statement names on a shared direct connection.
//!
//! Many clients use one shared connection, so a client's own statement names cannot be used on
//! it (they would collide), and preparing every use anew would re-parse gbrain's 1.3 KB claim
//! on every heartbeat. Instead each distinct statement (SQL text plus parameter types) is
//! prepared once per connection under a name of lockroute's (`lockroute_N`), and every client's
//! `Parse`, `Bind` and `Describe` of that text is mapped onto it: one prepared claim statement
//! serves every worker.
//!
//! A name is `pending` from the moment its `Parse` is sent until the server's `ParseComplete`
//! confirms it; only confirmed names let lockroute answer a client's `Parse` itself.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

/// How many statements one shared connection keeps prepared. Past this, statements are sent
/// unnamed (re-parsed per use) rather than growing the server's memory without bound.
pub const MAX_PREPARED: usize = 1024;

/// Statement text and parameter types: the `Parse` body after its name.
pub type StatementKey = Bytes;

/// The keys are whole statement texts (gbrain's claim is 1.3 KB), hashed several times per
/// unit: SipHash cost about 500 instructions per lookup of gbrain's renewLock, foldhash a
/// fraction of that (bench/profile.sh with bench/shared_lane.sh's statement). foldhash is
/// seeded per process, and a connection holds at most [`MAX_PREPARED`] names, so a client that
/// crafted colliding texts could slow only its own lookups, and only so far.
type Names = HashMap<StatementKey, Arc<[u8]>, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub struct PreparedNames {
    confirmed: Names,
    pending: Names,
    next: u64,
}

impl PreparedNames {
    /// The server-side name for a statement, confirmed or on its way.
    pub fn lookup(&self, key: &[u8]) -> Option<Arc<[u8]>> {
        self.confirmed
            .get(key)
            .or_else(|| self.pending.get(key))
            .cloned()
    }

    /// Whether the server has confirmed the statement is prepared.
    pub fn is_confirmed(&self, key: &[u8]) -> bool {
        self.confirmed.contains_key(key)
    }

    /// A fresh name for a statement about to be prepared, or `None` when the connection
    /// already holds [`MAX_PREPARED`] statements.
    pub fn reserve(&mut self, key: &StatementKey) -> Option<Arc<[u8]>> {
        if self.confirmed.len() + self.pending.len() >= MAX_PREPARED {
            return None;
        }
        self.next += 1;
        let name: Arc<[u8]> = format!("lockroute_{}", self.next).into_bytes().into();
        self.pending.insert(key.clone(), name.clone());
        Some(name)
    }

    /// The server answered the `Parse` that prepared `name`.
    pub fn confirm(&mut self, key: StatementKey, name: Arc<[u8]>) {
        if self.pending.get(&key) == Some(&name) {
            self.pending.remove(&key);
        }
        self.confirmed.insert(key, name);
    }

    /// An error: pending `Parse`s may have been skipped by the server.
    pub fn forget_pending(&mut self) {
        self.pending.clear();
    }

    /// The server dropped every prepared statement (`DEALLOCATE ALL`, `DISCARD ALL`).
    pub fn clear(&mut self) {
        self.confirmed.clear();
        self.pending.clear();
    }

    pub fn len(&self) -> usize {
        self.confirmed.len() + self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_confirm_and_lookup() {
        let mut names = PreparedNames::default();
        let key = Bytes::from_static(b"select 1\0\0\0");
        assert_eq!(names.lookup(&key), None);
        let name = names.reserve(&key).unwrap();
        assert_eq!(&name[..], b"lockroute_1");
        assert_eq!(names.lookup(&key), Some(name.clone()));
        assert!(!names.is_confirmed(&key));
        names.confirm(key.clone(), name.clone());
        assert!(names.is_confirmed(&key));
        names.forget_pending();
        assert_eq!(
            names.lookup(&key),
            Some(name),
            "confirmed names survive an error"
        );
    }

    #[test]
    fn forget_pending_drops_unconfirmed_names() {
        let mut names = PreparedNames::default();
        let key = Bytes::from_static(b"select 2\0\0\0");
        names.reserve(&key).unwrap();
        names.forget_pending();
        assert_eq!(names.lookup(&key), None);
        assert_eq!(
            &names.reserve(&key).unwrap()[..],
            b"lockroute_2",
            "names are never reused"
        );
    }

    #[test]
    fn reserve_stops_at_the_bound() {
        let mut names = PreparedNames::default();
        for i in 0..MAX_PREPARED {
            let key = Bytes::from(format!("select {i}\0\0\0"));
            let name = names.reserve(&key).unwrap();
            names.confirm(key, name);
        }
        assert_eq!(names.reserve(&Bytes::from_static(b"select -1\0\0\0")), None);
        names.clear();
        assert!(names.is_empty());
    }
}
