//! Node-to-node security: every gRPC request between nodes (Raft, membership, the
//! data-path link, status) carries the cluster secret in the
//! `x-junction-cluster-secret` metadata, checked on every service with a
//! constant-time comparison; and, with `[cluster.tls]`, runs over mutual TLS where
//! both sides verify the other's certificate against the cluster CA. A request
//! without the secret (or from a peer without a valid certificate) is refused
//! (`Unauthenticated`, or no TLS handshake), so an outsider can neither join nor
//! inject frames.

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use super::config::{ClusterConfig, ClusterTlsPem};

/// The metadata key carrying the secret.
pub const HEADER: &str = "x-junction-cluster-secret";

/// What this node presents to, and expects from, other nodes.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    secret: Option<Arc<str>>,
    tls: Option<Arc<ClusterTlsPem>>,
}

impl Credentials {
    /// From the `[cluster]` configuration (secret from env, file or value; TLS files).
    pub fn from_config(cfg: &ClusterConfig) -> Result<Credentials, String> {
        let secret = cfg.resolved_secret()?.map(Arc::from);
        let tls = cfg.tls.as_ref().map(|t| t.load()).transpose()?.map(Arc::new);
        if secret.is_none() && tls.is_none() && !cfg.is_single() {
            tracing::warn!(
                "the cluster has neither a secret nor TLS: anyone who reaches the cluster port can join it \
                 (set cluster.secret_file or [cluster.tls])"
            );
        }
        Ok(Credentials { secret, tls })
    }

    /// Only a secret, from `JUNCTION_CLUSTER_SECRET` (for the `junction cluster` CLI
    /// without a configuration file).
    pub fn from_env() -> Credentials {
        let secret = std::env::var("JUNCTION_CLUSTER_SECRET").ok().filter(|s| !s.is_empty()).map(Arc::from);
        Credentials { secret, tls: None }
    }

    /// The client interceptor adding the secret.
    pub fn interceptor(&self) -> AddSecret {
        AddSecret(self.secret.clone())
    }

    /// The server-side check.
    pub fn checker(&self) -> CheckSecret {
        CheckSecret(self.secret.clone())
    }

    /// An endpoint for `addr` (`host:port`): `https` with mutual TLS when configured.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, String> {
        let Some(tls) = &self.tls else {
            return Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| format!("bad address {addr}: {e}"));
        };
        let host =
            addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&tls.ca))
            .identity(Identity::from_pem(&tls.cert, &tls.key))
            .domain_name(host);
        Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| format!("bad address {addr}: {e}"))?
            .tls_config(config)
            .map_err(|e| format!("cluster TLS: {e}"))
    }

    /// The server's TLS configuration, if any.
    pub fn server_tls(&self) -> Option<ServerTlsConfig> {
        let tls = self.tls.as_ref()?;
        Some(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&tls.cert, &tls.key))
                .client_ca_root(Certificate::from_pem(&tls.ca)),
        )
    }
}

/// Adds the secret to outgoing requests.
#[derive(Clone, Debug)]
pub struct AddSecret(Option<Arc<str>>);

impl Interceptor for AddSecret {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(s) = &self.0 {
            let v = MetadataValue::try_from(s.as_ref())
                .map_err(|_| Status::internal("unusable cluster secret"))?;
            req.metadata_mut().insert(HEADER, v);
        }
        Ok(req)
    }
}

/// Refuses incoming requests without the right secret.
#[derive(Clone, Debug)]
pub struct CheckSecret(Option<Arc<str>>);

impl Interceptor for CheckSecret {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.0 else { return Ok(req) };
        let given = req.metadata().get(HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if constant_time_eq(given, expected.as_bytes()) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("missing or wrong cluster secret"))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_required_and_compared_exactly() {
        let creds = Credentials { secret: Some(Arc::from("s3cret")), tls: None };
        let mut add = creds.interceptor();
        let mut check = creds.checker();
        let req = add.call(Request::new(())).expect("added");
        assert!(check.call(req).is_ok());
        assert_eq!(
            check.call(Request::new(())).map_err(|s| s.code()).err(),
            Some(tonic::Code::Unauthenticated)
        );
        let mut wrong = Request::new(());
        wrong.metadata_mut().insert(HEADER, MetadataValue::from_static("s3creT"));
        assert!(check.call(wrong).is_err());
        let open = Credentials::default();
        assert!(open.checker().call(Request::new(())).is_ok(), "no secret configured: open");
    }
}
