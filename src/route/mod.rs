//! Routing: which lane runs a unit, and why. Everything here is pure: values in, values out.

pub mod bootstrap;
pub mod decide;
pub mod detect;
pub mod effects;
mod lex;
pub mod presets;
pub mod txcmd;

/// Where a unit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// The transaction pooler (Supabase :6543).
    Pooler,
    /// The session endpoint (Supabase :5432).
    Direct,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Pooler, Lane::Direct];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Pooler => "pooler",
            Lane::Direct => "direct",
        }
    }
}

/// Why a unit runs where it does. The `reason` label of `lockroute_routed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Default,
    SessionTag,
    StatementTag,
    Pattern,
    InTransaction,
    DirectUnavailable,
    Passthrough,
    Shadow,
    /// The client was pinned to a dedicated direct session (a session feature).
    Pinned,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Default,
        Reason::SessionTag,
        Reason::StatementTag,
        Reason::Pattern,
        Reason::InTransaction,
        Reason::DirectUnavailable,
        Reason::Passthrough,
        Reason::Shadow,
        Reason::Pinned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Default => "default",
            Reason::SessionTag => "session_tag",
            Reason::StatementTag => "statement_tag",
            Reason::Pattern => "pattern",
            Reason::InTransaction => "in_transaction",
            Reason::DirectUnavailable => "direct_unavailable",
            Reason::Passthrough => "passthrough",
            Reason::Shadow => "shadow",
            Reason::Pinned => "pinned",
        }
    }
}
