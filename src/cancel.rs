//! Cancel keys. Each client gets its own `BackendKeyData`; a `CancelRequest` for it is forwarded
//! only to the upstream running that client's unit at that moment, with that upstream's key.
//! On a shared direct connection this is what keeps client A from cancelling client B.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::protocol::BackendKey;
use crate::route::Lane;

/// The upstream a client's cancel goes to right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelTarget {
    pub lane: Lane,
    pub key: BackendKey,
}

type Slot = Arc<Mutex<Option<CancelTarget>>>;

/// Every live client's key, and where its cancel goes.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    clients: Mutex<HashMap<i32, (i32, Slot)>>,
}

/// A client's registered key. Dropping it unregisters the client.
pub struct Registration {
    registry: Arc<CancelRegistry>,
    pub key: BackendKey,
    slot: Slot,
}

impl Registration {
    /// Points the client's cancel at an upstream, or at nothing while no unit runs.
    pub fn set(&self, target: Option<CancelTarget>) {
        *self.slot.lock().unwrap() = target;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.clients.lock().unwrap().remove(&self.key.pid);
    }
}

impl CancelRegistry {
    /// Gives a new client a random key that no live client has.
    pub fn register(self: &Arc<Self>) -> Registration {
        let slot: Slot = Arc::default();
        let mut clients = self.clients.lock().unwrap();
        let key = loop {
            // Positive pids, like a real server's.
            let key = BackendKey {
                pid: rand::random_range(1..i32::MAX),
                secret: rand::random(),
            };
            if !clients.contains_key(&key.pid) {
                break key;
            }
        };
        clients.insert(key.pid, (key.secret, slot.clone()));
        Registration {
            registry: self.clone(),
            key,
            slot,
        }
    }

    /// Where a CancelRequest with this key should go. `None` for an unknown key, a wrong
    /// secret, or a client that is running nothing.
    pub fn lookup(&self, key: BackendKey) -> Option<CancelTarget> {
        let clients = self.clients.lock().unwrap();
        let (secret, slot) = clients.get(&key.pid)?;
        if *secret != key.secret {
            return None;
        }
        *slot.lock().unwrap()
    }

    pub fn len(&self) -> usize {
        self.clients.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_needs_the_right_secret_and_a_running_unit() {
        let registry = Arc::new(CancelRegistry::default());
        let a = registry.register();
        let b = registry.register();
        assert_ne!(a.key, b.key);
        assert_eq!(registry.lookup(a.key), None, "no unit running");
        let target = CancelTarget {
            lane: Lane::Direct,
            key: BackendKey { pid: 7, secret: 9 },
        };
        a.set(Some(target));
        assert_eq!(registry.lookup(a.key), Some(target));
        assert_eq!(registry.lookup(b.key), None, "b runs nothing");
        let forged = BackendKey {
            pid: a.key.pid,
            secret: a.key.secret.wrapping_add(1),
        };
        assert_eq!(registry.lookup(forged), None);
        drop(a);
        assert_eq!(registry.len(), 1);
    }
}
