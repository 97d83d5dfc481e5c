//! Routing: which lane runs a unit, and why. Everything here is pure: values in, values out.

pub mod bootstrap;
pub mod decide;
pub mod detect;

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
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Default,
        Reason::SessionTag,
        Reason::StatementTag,
        Reason::Pattern,
        Reason::InTransaction,
        Reason::DirectUnavailable,
        Reason::Passthrough,
        Reason::Shadow,
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
        }
    }
}
