//! Version strings, with the commit and build date baked in by `build.rs`.

/// `0.1.0`.
pub const SHORT: &str = env!("CARGO_PKG_VERSION");

/// `0.1.0 (commit abcdef123456, built 2026-11-22)`.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SECRETSYNC_BUILD_COMMIT"),
    ", built ",
    env!("SECRETSYNC_BUILD_DATE"),
    ")"
);
