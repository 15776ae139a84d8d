//! TLS for the client listeners (`wss://`, RawSocket over TLS) with rustls: the
//! certificate and key come from PEM files and are reloaded when the files change
//! (checked every [`RELOAD_INTERVAL`]), without a restart; new connections get the
//! new certificate, open ones keep theirs. A file that does not load keeps the
//! previous configuration and logs an error.
//!
//! With `client_ca`, clients may (or must) present a certificate chaining to it;
//! its subject CN is what the `tls` authentication method takes as authid. The
//! handshake also yields the `tls-exporter` channel binding (RFC 9266) for
//! WAMP-Cryptosign; `tls-unique` does not exist in TLS 1.3 and is not offered.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::auth::principal::ChannelBindings;
use crate::config::{ClientAuth, Config, ConfigError, TlsConfig};

/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

pub use crate::auth::TlsInfo;

/// A listener's TLS configuration, reloaded when its files change.
pub struct Tls {
    cfg: TlsConfig,
    current: RwLock<(Arc<ServerConfig>, Vec<Option<SystemTime>>)>,
}

/// A listener's TLS files do not load; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or client CA file cannot be read or used.
    #[error("cannot load TLS {what} {}: {reason}", path.display())]
    File { what: &'static str, path: PathBuf, reason: String },
    /// rustls refused the configuration.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

fn read_err(what: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File { what, path: path.to_owned(), reason: e.to_string() }
}

/// Checks at startup (and on reload) that the listeners' TLS files load; the
/// error names the listener's section (`websocket.tls`, `rawsocket.tls`).
pub fn validate(cfg: &Config) -> Result<(), ConfigError> {
    match problems(cfg).into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// What [`validate`] checks, every listener's problem with its section.
pub fn problems(cfg: &Config) -> Vec<(&'static str, ConfigError)> {
    [
        ("websocket.tls", &cfg.websocket.tls),
        ("rawsocket.tls", &cfg.rawsocket.tls),
        ("bridge.tls", &cfg.bridge.tls),
    ]
    .into_iter()
    .filter_map(|(key, tls)| {
        let e = server_config(tls.as_ref()?).err()?;
        Some((key, ConfigError::Invalid(format!("{key}: {e}"))))
    })
    .collect()
}

fn mtimes(cfg: &TlsConfig) -> Vec<Option<SystemTime>> {
    [Some(&cfg.cert), Some(&cfg.key), cfg.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Builds a rustls server configuration from the files `cfg` names.
pub fn server_config(cfg: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| read_err("certificate", &cfg.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err("certificate", &cfg.cert, e))?;
    if certs.is_empty() {
        return Err(read_err("certificate", &cfg.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| read_err("key", &cfg.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &cfg.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| read_err("client CA", ca, e))? {
                let c = c.map_err(|e| read_err("client CA", ca, e))?;
                roots.add(c).map_err(|e| read_err("client CA", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match cfg.client_auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                ClientAuth::Required => verifier,
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| read_err("client CA", ca, e))?)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| read_err("key", &cfg.key, e))?;
    config.alpn_protocols = Vec::new();
    Ok(config)
}

impl Tls {
    /// Loads the files; an error names the file and what is wrong with it.
    pub fn load(cfg: &TlsConfig) -> Result<Arc<Tls>, TlsError> {
        let config = server_config(cfg)?;
        let current = RwLock::new((Arc::new(config), mtimes(cfg)));
        Ok(Arc::new(Tls { cfg: cfg.clone(), current }))
    }

    /// Reloads when a file changed since the last load. Returns `Ok(true)` when a
    /// new configuration is in use; on error the previous one stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = mtimes(&self.cfg);
        if self.current.read().unwrap_or_else(|e| e.into_inner()).1 == now {
            return Ok(false);
        }
        let loaded = server_config(&self.cfg);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        // Remember the times either way, so a broken file is reported once.
        current.1 = now;
        current.0 = Arc::new(loaded?);
        Ok(true)
    }

    /// Watches the files for as long as the listener lives.
    pub fn watch(self: &Arc<Self>, listener: &'static str) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_INTERVAL);
            loop {
                tick.tick().await;
                let Some(tls) = weak.upgrade() else { return };
                match tls.reload_if_changed() {
                    Ok(true) => {
                        tracing::info!(listener, cert = %tls.cfg.cert.display(), "TLS certificate reloaded")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(listener, error = %e, "TLS files changed but do not load; keeping the previous certificate")
                    }
                }
            }
        });
    }

    /// Runs the TLS handshake on an accepted connection.
    pub async fn accept<S>(&self, stream: S) -> std::io::Result<(TlsStream<S>, TlsInfo)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self.current.read().unwrap_or_else(|e| e.into_inner()).0.clone();
        let tls = TlsAcceptor::from(config).accept(stream).await?;
        let conn = tls.get_ref().1;
        let client_cn = conn.peer_certificates().and_then(|c| c.first()).and_then(|c| common_name(c));
        let mut exporter = vec![0u8; 32];
        let bindings = ChannelBindings {
            tls_exporter: conn
                .export_keying_material(&mut exporter, b"EXPORTER-Channel-Binding", None)
                .ok()
                .map(|b| b.to_vec()),
            ..ChannelBindings::default()
        };
        Ok((tls, TlsInfo { client_cn, bindings }))
    }
}

/// The subject common name of a DER certificate.
pub fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some(cn)
}
