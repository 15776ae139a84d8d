//! The log filter of the running process, replaceable while it runs (a reloaded
//! `[log] level`): `ops::telemetry` installs the subscriber's reload handle here,
//! the router's `junction.config.reload` replaces the filter through [`set`].

use std::sync::OnceLock;

/// The log filter when neither `RUST_LOG` nor `[log] level` sets one: `info`, but
/// openraft's routine INFO lines (elections, membership changes, snapshots) only from
/// `warn` up. `RUST_LOG=info` (or `[log] level = "info"`) brings them back.
pub const DEFAULT: &str = "info,openraft=warn";

use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::{Registry, reload};

/// Replaces the log filter of the installed subscriber.
static LOG_FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Keeps the installed subscriber's filter handle (once, when logging starts).
pub fn install(handle: reload::Handle<EnvFilter, Registry>) {
    LOG_FILTER.set(handle).ok();
}

/// Why the log filter was not replaced.
#[derive(Debug, thiserror::Error)]
pub enum LogFilterError {
    /// The directives do not parse.
    #[error("log filter {directives:?}: {reason}")]
    Directive { directives: String, reason: String },
    /// No subscriber with a reloadable filter is installed.
    #[error("logging is not initialised")]
    NotInitialised,
    /// The subscriber refused the new filter.
    #[error("cannot replace the log filter: {0}")]
    Reload(#[from] reload::Error),
}

/// Replaces the log filter (`RUST_LOG` syntax) of the running process. Fails on a
/// bad directive or before logging started.
pub fn set(directives: &str) -> Result<(), LogFilterError> {
    let filter = EnvFilter::try_new(directives).map_err(|e| LogFilterError::Directive {
        directives: directives.to_owned(),
        reason: e.to_string(),
    })?;
    let handle = LOG_FILTER.get().ok_or(LogFilterError::NotInitialised)?;
    Ok(handle.reload(filter)?)
}
