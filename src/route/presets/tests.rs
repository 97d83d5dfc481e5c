//! Preset tests.
