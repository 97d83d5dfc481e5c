//! The wire protocol: a header-only frame codec, the few message decoders lockroute acts on,
//! and builders for the messages it writes itself.
//!
//! Frames are forwarded as their original bytes and never re-encoded. pgwire decoders are used
//! only on exact-size frames, because they panic on malformed input
//! (see `shared/reference/pgwire-notes.md`).

pub mod frame;
pub mod message;
pub mod sqlstate;
pub mod startup;

pub use frame::{Frame, FrameError};

/// The key a client or an upstream sends in a CancelRequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendKey {
    pub pid: i32,
    pub secret: i32,
}

/// The transaction status in ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block.
    Failed,
}

impl TxStatus {
    pub fn from_byte(b: u8) -> Option<TxStatus> {
        match b {
            b'I' => Some(TxStatus::Idle),
            b'T' => Some(TxStatus::InTransaction),
            b'E' => Some(TxStatus::Failed),
            _ => None,
        }
    }

    pub fn as_byte(self) -> u8 {
        match self {
            TxStatus::Idle => b'I',
            TxStatus::InTransaction => b'T',
            TxStatus::Failed => b'E',
        }
    }
}
