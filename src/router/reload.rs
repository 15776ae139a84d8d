//! Configuration reload at run time: on `junction.config.reload`, on SIGHUP, and when
//! the configuration file's content changes (a Kubernetes ConfigMap update swaps the
//! mounted file behind a symlink; the content is what is compared). Each re-reads the
//! file with the start flags, validates it, and applies what can change without a
//! restart ([`Router::reload`]: realms' authentication and roles; `[log] level`);
//! what else changed is reported as needing a restart; a broken file changes
//! nothing and is logged with the reason. JWT key files (`[realms.auth.ticket.jwt]`)
//! are watched the same way, each on its own: a changed one replaces its realm's
//! keys without a reload of the configuration.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use super::{Reloaded, Router};
use crate::auth::jwt::Refresh;

/// How often the file's content is compared with what was last loaded.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The router was started without a configuration file.
    #[error("the router was started without --config")]
    NoFile,
    /// The file could not be read or is not valid; nothing changed.
    #[error("configuration not reloaded: {0}")]
    Invalid(String),
}

/// Re-reads the configuration and applies what can change at run time.
pub fn reload(router: &Router) -> Result<Reloaded, ReloadError> {
    let cfg =
        router.load_config().ok_or(ReloadError::NoFile)?.map_err(|e| ReloadError::Invalid(e.to_string()))?;
    let mut r = router.reload(&cfg);
    if let Some(level) = &cfg.log.level {
        match crate::observe::log_filter::set(level) {
            Ok(()) => r.applied.push(format!("[log] level = {level:?}")),
            Err(e) => r.restart_required.push(format!("[log] level: {e}")),
        }
    }
    tracing::info!(applied = ?r.applied, restart_required = ?r.restart_required, "configuration reloaded");
    Ok(r)
}

/// Re-reads the realms' JWT key files (`[realms.auth.ticket.jwt]`) whose content
/// changed; a file that turned bad is logged and the keys in use stay.
pub fn refresh_jwt_keys(router: &Router) {
    for realm in router.realms() {
        let auth = realm.auth();
        let Ok(Some(a)) = auth.as_ref() else { continue };
        match a.refresh_jwt_keys() {
            None | Some(Refresh::Unchanged) => {}
            Some(Refresh::Reloaded(keys)) => {
                tracing::info!(realm = %realm.name, keys, files = ?a.jwt_key_files(), "JWT keys reloaded");
            }
            Some(Refresh::Failed(why)) => {
                tracing::error!(realm = %realm.name, error = %why, "JWT keys not reloaded; the keys in use stay");
            }
        }
    }
}

/// Reloads on SIGHUP and whenever `path`'s content changes, until the router is gone;
/// re-reads changed JWT key files at the same pace.
pub async fn watch(router: Weak<Router>, path: PathBuf) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: reload on file change and junction.config.reload only");
            None
        }
    };
    let mut seen = std::fs::read(&path).ok();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            _ = tick.tick() => {
                let Some(r) = router.upgrade() else { return };
                refresh_jwt_keys(&r);
                let now = std::fs::read(&path).ok();
                if now.is_none() || now == seen {
                    continue;
                }
                seen = now;
                "file changed"
            }
        };
        let Some(r) = router.upgrade() else { return };
        tracing::info!(trigger = why, file = %path.display(), "reloading the configuration");
        if let Err(e) = reload(&r) {
            tracing::error!(trigger = why, error = %e, "configuration reload failed; the running configuration stays");
        }
    }
}
