//! Routing, stage one: the built-in job-queue presets. Each preset is one queue's lock path as
//! named rules: a pattern, where it looks (statement text, statement name or leading comment),
//! what the statement does (its [`Kind`]) and whether it may run twice ([`Retry`]).
//!
//! Pure data: the [`Detector`](super::detect::Detector) compiles the rules of the presets it is
//! given. The statements each rule comes from are quoted in `reference/job-queues.md`; the tests
//! in `presets/tests` hold them, with the source version, and prove that no rule matches another
//! queue's statements or any statement of the non-lock corpus.
//!
//! Pattern conventions, so that a new rule costs nothing on statements it does not match:
//! - `(?i-u)` and a `^` anchor: SQL keywords are ASCII, and an anchored pattern rejects a
//!   non-matching statement within its first few bytes.
//! - A scan across the statement (`(?s:.*?)`) only after a distinctive head, so only near misses
//!   pay for it, and never more than the detector's 4 KiB window.
//! - Schema names and table prefixes the way the queue generates them: [`ident!`] for a quoted or
//!   bare identifier, an optional `schema.` where the queue qualifies its tables.

mod gbrain;
mod good_job;
mod graphile_worker;
mod oban;
mod pg_boss;
mod pgqueuer;
mod procrastinate;
mod que;
mod river;
mod solid_queue;

#[cfg(test)]
mod tests;

/// A quoted identifier (with `""` for an embedded quote, as `escapeIdentifier` writes it) or a
/// bare one.
macro_rules! ident {
    () => {
        r#"(?:"(?:[^"]|"")+"|\w+)"#
    };
}
pub(crate) use ident;

/// Which preset a rule belongs to. `Custom` is every `--lock-pattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresetId {
    Gbrain,
    PgBoss,
    GraphileWorker,
    Procrastinate,
    Pgqueuer,
    River,
    Oban,
    SolidQueue,
    GoodJob,
    Que,
    Custom,
}

impl PresetId {
    /// Every preset id, in discriminant order (metric arrays are indexed by it).
    pub const ALL: [PresetId; 11] = [
        PresetId::Gbrain,
        PresetId::PgBoss,
        PresetId::GraphileWorker,
        PresetId::Procrastinate,
        PresetId::Pgqueuer,
        PresetId::River,
        PresetId::Oban,
        PresetId::SolidQueue,
        PresetId::GoodJob,
        PresetId::Que,
        PresetId::Custom,
    ];

    /// The built-in presets: the default of `--preset`.
    pub const BUILT_IN: [PresetId; 10] = [
        PresetId::Gbrain,
        PresetId::PgBoss,
        PresetId::GraphileWorker,
        PresetId::Procrastinate,
        PresetId::Pgqueuer,
        PresetId::River,
        PresetId::Oban,
        PresetId::SolidQueue,
        PresetId::GoodJob,
        PresetId::Que,
    ];

    /// The `--preset` name and the `preset` metric label (DESIGN.md's names).
    pub fn as_str(self) -> &'static str {
        match self {
            PresetId::Gbrain => "gbrain",
            PresetId::PgBoss => "pg-boss",
            PresetId::GraphileWorker => "graphile-worker",
            PresetId::Procrastinate => "procrastinate",
            PresetId::Pgqueuer => "pgqueuer",
            PresetId::River => "river",
            PresetId::Oban => "oban",
            PresetId::SolidQueue => "solid-queue",
            PresetId::GoodJob => "good-job",
            PresetId::Que => "que",
            PresetId::Custom => "custom",
        }
    }

    /// A built-in preset by its `--preset` name. `custom` is not one: it is what
    /// `--lock-pattern` adds.
    pub fn from_name(name: &str) -> Option<PresetId> {
        PresetId::BUILT_IN.into_iter().find(|p| p.as_str() == name)
    }

    /// The preset's rules; empty for `Custom`, whose patterns come from the configuration.
    pub fn preset(self) -> &'static Preset {
        match self {
            PresetId::Gbrain => &gbrain::PRESET,
            PresetId::PgBoss => &pg_boss::PRESET,
            PresetId::GraphileWorker => &graphile_worker::PRESET,
            PresetId::Procrastinate => &procrastinate::PRESET,
            PresetId::Pgqueuer => &pgqueuer::PRESET,
            PresetId::River => &river::PRESET,
            PresetId::Oban => &oban::PRESET,
            PresetId::SolidQueue => &solid_queue::PRESET,
            PresetId::GoodJob => &good_job::PRESET,
            PresetId::Que => &que::PRESET,
            PresetId::Custom => &CUSTOM,
        }
    }

    /// The kinds this preset's rules can report: the `kind` label values exported for it.
    pub fn kinds(self) -> impl Iterator<Item = Kind> {
        let rules = self.preset().rules;
        Kind::ALL.into_iter().filter(move |kind| {
            rules.iter().any(|r| r.kind == *kind)
                || (self == PresetId::Custom && *kind == CUSTOM_KIND)
        })
    }
}

/// What a lock-path statement does for its queue. The `kind` label of
/// `lockroute_lock_path_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Takes a job (`FOR UPDATE SKIP LOCKED` and a state change, usually).
    Claim,
    /// Keeps a job's or a worker's lease alive.
    Heartbeat,
    /// Takes or keeps a leader or maintenance lock (a lease row, a timestamp throttle).
    Elect,
    /// Finishes a job.
    Complete,
    /// A `--lock-pattern`: lockroute does not know what the statement does.
    Unknown,
}

/// The kind every custom pattern reports.
pub const CUSTOM_KIND: Kind = Kind::Unknown;

impl Kind {
    /// Every kind, in discriminant order.
    pub const ALL: [Kind; 5] = [
        Kind::Claim,
        Kind::Heartbeat,
        Kind::Elect,
        Kind::Complete,
        Kind::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Claim => "claim",
            Kind::Heartbeat => "heartbeat",
            Kind::Elect => "elect",
            Kind::Complete => "complete",
            Kind::Unknown => "unknown",
        }
    }
}

/// Whether a statement may be sent again when its first run's outcome is unknown (the upstream
/// dropped mid-statement).
///
/// `Safe` means a second run leaves the same state and the queue reads its result the same way:
/// a lease renewal fenced by a lock token or a worker id, a timestamp bump, the delete of one
/// finished job. Claims never are: a second claim takes a second job, or takes the same job
/// twice. Custom patterns are `Unsafe`: lockroute cannot know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retry {
    Safe,
    Unsafe,
}

impl Retry {
    pub fn as_str(self) -> &'static str {
        match self {
            Retry::Safe => "safe",
            Retry::Unsafe => "unsafe",
        }
    }
}

/// What a rule's pattern is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// The statement text after its leading whitespace and comments (the first 4 KiB of it).
    Text,
    /// The extended-protocol statement name, from `Parse` or `Bind` (graphile-worker's
    /// `get_job/graphile_worker`).
    Name,
    /// The body of a comment that leads the statement (River's `-- name: JobGetAvailable :many`,
    /// written by sqlc).
    Comment,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Text => "text",
            Signal::Name => "name",
            Signal::Comment => "comment",
        }
    }
}

/// One lock-path statement of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The queue's own name for the statement (its function or query name), for `explain`.
    pub statement: &'static str,
    pub kind: Kind,
    pub retry: Retry,
    pub signal: Signal,
    /// A `regex` pattern; see the module docs for the conventions.
    pub pattern: &'static str,
}

/// One queue's rules, and the source they were written against.
#[derive(Debug)]
pub struct Preset {
    pub id: PresetId,
    /// Repository, version and commit the statements were read at.
    pub source: &'static str,
    pub rules: &'static [Rule],
}

static CUSTOM: Preset = Preset {
    id: PresetId::Custom,
    source: "--lock-pattern / LOCKROUTE_LOCK_PATTERNS",
    rules: &[],
};

/// Shorthand for the rule tables.
pub(crate) const fn rule(
    statement: &'static str,
    kind: Kind,
    retry: Retry,
    signal: Signal,
    pattern: &'static str,
) -> Rule {
    Rule {
        statement,
        kind,
        retry,
        signal,
        pattern,
    }
}
