//! Node-to-node security: every gRPC request between nodes (Raft, membership, the
//! data-path link, status) carries the cluster secret in the
//! `x-junction-cluster-secret` metadata, checked on every service with a
//! constant-time comparison; and, with `[cluster.tls]`, runs over mutual TLS where
//! both sides verify the other's certificate against the cluster CA. A request
//! without the secret (or from a peer without a valid certificate) is refused
//! (`Unauthenticated`, or no TLS handshake), so an outsider can neither join nor
//! inject frames.
//!
//! With mutual TLS a node's id is bound to its certificate: the certificate must
//! name the node, as a DNS SAN `node-<id>` (or `node-<id>.<anything>`), as a URI
//! SAN `urn:junction:node:<id>` (also `spiffe://<trust domain>/.../node/<id>`), or
//! as the subject CN `node-<id>` (or just `<id>`). Every request that claims to come
//! from a node — `Join` (its `node_id`), Raft `Vote`, `AppendEntries` (also each
//! request on an `AppendStream`) and `InstallSnapshot` (the candidate or leader in
//! the vote), the node-specific routing commands forwarded with `ClientWrite` (or
//! on a `WriteStream`), and every batch of a `Link` stream (`from_node`) — is
//! refused with `PERMISSION_DENIED` unless the presenting certificate names that id
//! ([`Caller::speaks_for`]). Requests that claim
//! no node id (`Status`, `Promote`, `Leave`: the `junction cluster` CLI) need only a
//! certificate from the cluster CA.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::CertificateDer;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use super::config::{ClusterConfig, ClusterConfigError, ClusterTlsPem};

/// Why a peer certificate does not allow a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The connection is mutual TLS but carries no client certificate.
    #[error("no client certificate")]
    NoCertificate,
    /// The certificate could not be parsed.
    #[error("unreadable client certificate: {0}")]
    Unreadable(String),
    /// The certificate names other node ids (or none).
    #[error("the certificate names node(s) {named:?}, not node {claimed}")]
    WrongNode { claimed: u64, named: Vec<u64> },
}

impl From<IdentityError> for Status {
    fn from(e: IdentityError) -> Status {
        Status::permission_denied(e.to_string())
    }
}

/// Why this node's cluster credentials, or an endpoint built with them, cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NodeCredentialError {
    /// The secret or the TLS files of `[cluster]` are unusable.
    #[error(transparent)]
    Config(#[from] ClusterConfigError),
    /// The peer address is not a valid URI authority.
    #[error("bad address {addr}: {reason}")]
    Address { addr: String, reason: String },
    /// The TLS identity or CA was refused.
    #[error("cluster TLS: {0}")]
    Tls(String),
}

/// A node id: decimal digits only, > 0.
fn parse_id(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|id| *id > 0)
}

/// The node id a DNS name or common name stands for: its first label is
/// `node-<id>` (also `node<id>`, `node_<id>`, or with a prefix such as
/// `junction-node-<id>`), case-insensitive.
fn id_from_host(name: &str) -> Option<u64> {
    let label = name.split('.').next()?.to_ascii_lowercase();
    let at = label.rfind("node")?;
    let before = &label[..at];
    if !(before.is_empty() || before.ends_with('-') || before.ends_with('_')) {
        return None;
    }
    let rest = &label[at + "node".len()..];
    parse_id(rest.strip_prefix(['-', '_']).unwrap_or(rest))
}

/// The node id a subject common name stands for: as a host name, or the bare id.
fn id_from_common_name(cn: &str) -> Option<u64> {
    parse_id(cn).or_else(|| id_from_host(cn))
}

/// The node id a URI SAN stands for: its last two `:`- or `/`-separated parts are
/// `node` and the id, e.g. `urn:junction:node:<id>` or a SPIFFE id
/// `spiffe://<trust domain>/junction/node/<id>`.
fn id_from_uri(uri: &str) -> Option<u64> {
    let uri = uri.split(['?', '#']).next()?.trim_end_matches('/');
    let mut parts = uri.rsplit([':', '/']);
    let id = parts.next()?;
    parts.next()?.eq_ignore_ascii_case("node").then(|| parse_id(id)).flatten()
}

/// The node ids a DER certificate names (see the module documentation).
pub fn cert_node_ids(der: &[u8]) -> Result<BTreeSet<u64>, IdentityError> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError::Unreadable(e.to_string()))?;
    let mut ids = BTreeSet::new();
    for cn in cert.subject().iter_common_name() {
        if let Some(id) = cn.as_str().ok().and_then(id_from_common_name) {
            ids.insert(id);
        }
    }
    let san = cert.subject_alternative_name().map_err(|e| IdentityError::Unreadable(e.to_string()))?;
    for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        let id = match name {
            GeneralName::DNSName(d) => id_from_host(d),
            GeneralName::URI(u) => id_from_uri(u),
            _ => None,
        };
        ids.extend(id);
    }
    Ok(ids)
}

/// Who sent a request, or the request that opened a stream (for every message on
/// it): its client certificate when the server runs mutual TLS.
#[derive(Clone, Debug)]
pub struct Caller {
    tls: bool,
    certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl Caller {
    /// The caller of `req`; `tls` says whether the server runs mutual TLS.
    pub fn of<T>(tls: bool, req: &Request<T>) -> Caller {
        Caller { tls, certs: if tls { req.peer_certs() } else { None } }
    }

    /// Checks that the caller may speak for node `claimed`: always without TLS (the
    /// secret is all there is), and with TLS only when the client certificate names
    /// `claimed`. `None` (a vote or leader id of 0, an entry of no node) claims
    /// nobody and needs no check.
    pub fn speaks_for(&self, claimed: Option<u64>) -> Result<(), IdentityError> {
        let Some(claimed) = claimed.filter(|_| self.tls) else { return Ok(()) };
        let leaf = self.certs.as_deref().and_then(|c| c.first()).ok_or(IdentityError::NoCertificate)?;
        let named = cert_node_ids(leaf.as_ref())?;
        if named.contains(&claimed) {
            Ok(())
        } else {
            Err(IdentityError::WrongNode { claimed, named: named.into_iter().collect() })
        }
    }
}

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
    pub fn from_config(cfg: &ClusterConfig) -> Result<Credentials, NodeCredentialError> {
        let secret = cfg.resolved_secret()?.map(Arc::from);
        let tls = cfg.tls.as_ref().map(|t| t.load()).transpose()?.map(Arc::new);
        if secret.is_none() && tls.is_none() && !cfg.is_single() {
            tracing::warn!(
                "the cluster has neither a secret nor TLS: it listens on loopback only, so only processes \
                 on this host can join it"
            );
        }
        Ok(Credentials { secret, tls })
    }

    /// Only a secret, from `JUNCTION_CLUSTER_SECRET` or the file
    /// `JUNCTION_CLUSTER_SECRET_FILE` names (for the `junction cluster` CLI without a
    /// configuration file).
    pub fn from_env() -> Result<Credentials, NodeCredentialError> {
        let secret = ClusterConfig::default().resolved_secret()?.map(Arc::from);
        Ok(Credentials { secret, tls: None })
    }

    /// The client interceptor adding the secret.
    pub fn interceptor(&self) -> AddSecret {
        AddSecret(self.secret.clone())
    }

    /// Whether the nodes talk mutual TLS (and certificates carry node ids).
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The server-side check.
    pub fn checker(&self) -> CheckSecret {
        CheckSecret(self.secret.clone())
    }

    /// An endpoint for `addr` (`host:port`): `https` with mutual TLS when configured.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, NodeCredentialError> {
        let Some(tls) = &self.tls else {
            return Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| NodeCredentialError::Address { addr: addr.to_owned(), reason: e.to_string() });
        };
        let host =
            addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&tls.ca))
            .identity(Identity::from_pem(&tls.cert, &tls.key))
            .domain_name(host);
        Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| NodeCredentialError::Address { addr: addr.to_owned(), reason: e.to_string() })?
            .tls_config(config)
            .map_err(|e| NodeCredentialError::Tls(e.to_string()))
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

    fn cert(cn: &str, sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.subject_alt_names = sans;
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    fn dns(name: &str) -> rcgen::SanType {
        rcgen::SanType::DnsName(name.try_into().expect("dns name"))
    }

    fn uri(name: &str) -> rcgen::SanType {
        rcgen::SanType::URI(name.try_into().expect("uri"))
    }

    #[test]
    fn certificates_name_node_ids_by_cn_dns_or_uri() {
        let ids = |der: Vec<u8>| cert_node_ids(&der).expect("parses").into_iter().collect::<Vec<_>>();
        assert_eq!(ids(cert("node-3", vec![])), vec![3]);
        assert_eq!(ids(cert("127.0.0.1", vec![dns("node-2.junction.svc"), dns("localhost")])), vec![2]);
        assert_eq!(ids(cert("x", vec![uri("urn:junction:node:7")])), vec![7]);
        assert_eq!(ids(cert("x", vec![uri("spiffe://example.org/junction/node/9")])), vec![9]);
        assert_eq!(ids(cert("Node4", vec![])), vec![4]);
        assert_eq!(ids(cert("6", vec![dns("junction-node-8.example")])), vec![6, 8]);
        assert_eq!(ids(cert("x", vec![uri("junction://node/11")])), vec![11]);
        let none: Vec<u64> = Vec::new();
        let not_ids = ["127.0.0.1", "node-", "node-0", "node-1x", "junction-1", "nodes-1", "mynode-1", "0"];
        for name in not_ids {
            assert_eq!(ids(cert(name, vec![dns("localhost")])), none, "{name}");
        }
        assert_eq!(ids(cert("x", vec![uri("https://example.org/node/abc")])), none);
        assert!(cert_node_ids(b"not a certificate").is_err());
    }

    #[test]
    fn without_tls_any_node_id_is_accepted_and_with_tls_a_certificate_is_required() {
        assert!(Caller::of(false, &Request::new(())).speaks_for(Some(5)).is_ok());
        let with_tls = Caller::of(true, &Request::new(()));
        assert_eq!(with_tls.speaks_for(Some(5)), Err(IdentityError::NoCertificate));
        assert!(with_tls.speaks_for(None).is_ok(), "claiming no node needs no certificate");
        let status: Status = IdentityError::WrongNode { claimed: 2, named: vec![1] }.into();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    }
}
