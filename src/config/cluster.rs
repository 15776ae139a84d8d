//! The `[cluster]` section of the configuration.
//!
//! ```toml
//! [cluster]
//! node_id = 1                      # Raft node id, unique in the cluster, > 0
//! listen = "127.0.0.1:7001"        # gRPC address; "" = no gRPC server (one node only)
//! advertise = "10.0.0.5:7001"      # what other nodes dial; defaults to listen
//! peers = ["127.0.0.1:7002", "127.0.0.1:7003"]   # static list of other nodes
//! # dns = "junction-headless.ns.svc:7001"        # or: a name resolved on every join attempt
//! secret_file = "/etc/junction/cluster.secret"  # or secret = "...", or env JUNCTION_CLUSTER_SECRET
//! # [cluster.tls]                  # mutual TLS between nodes: each side verifies the other
//! # cert = "node.crt"              #   against `ca`; `cert` must name the address peers dial
//! # key = "node.key"               #   and this node's id (`node-<id>`, see `cluster::secure`)
//! # ca = "cluster-ca.crt"
//! voters = 3                       # nodes beyond this many join as learners
//! bootstrap = true                 # this node initialises the cluster
//! data_dir = "/var/lib/junction"   # Raft log, vote, snapshot (required in a cluster)
//! # ephemeral = true               # dev only: a cluster node without data_dir
//! heartbeat_ms = 100
//! election_timeout_ms = 500        # minimum; the maximum is twice that
//! lease_ms = 2000                  # unreachable this long => NodeDown
//! forget_after_ms = 600000         # a learner down this long leaves the membership
//! propose_timeout_ms = 3000        # a routing change not committed by then fails
//! join_timeout_ms = 30000          # a starting node gives up joining after this
//! snapshot_logs = 5000             # snapshot (and purge the log) every N entries
//! ```
//!
//! No section at all (or no `peers`/`dns`) is a one-node cluster: the node
//! initialises itself, through the same Raft code as a real cluster.
//!
//! **`data_dir` is required in a cluster.** Any node with `peers` or `dns` may
//! become a voter (the voters are the lowest ids that are up), and a voter that
//! forgets its log and vote may vote twice in a term. Such a node without
//! `data_dir` is refused at startup, unless it sets `ephemeral = true`: a
//! development and test opt-out that keeps the log in memory (a restarted voter then
//! comes back empty and is refused until it has been removed, see
//! `cluster::membership`). A lone node (neither `peers` nor `dns`) may run in memory.
//!
//! The cluster port is never open to strangers: a node whose `listen` is not a
//! loopback address (127.0.0.0/8, `::1`; `0.0.0.0` and `::` are not) refuses to
//! start unless it has a secret of at least [`MIN_SECRET_LEN`] bytes or
//! `[cluster.tls]`. The secret comes from, in this order: the environment's
//! `JUNCTION_CLUSTER_SECRET`, the file named by `JUNCTION_CLUSTER_SECRET_FILE`,
//! `secret_file`, `secret`. The default `listen` is empty (no gRPC server), so a
//! lone node needs none.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The shortest cluster secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// How long a learner may stay down before the leader forgets it: 10 minutes.
pub const DEFAULT_FORGET_AFTER_MS: u64 = 600_000;

/// The environment variable holding the cluster secret itself.
pub const SECRET_ENV: &str = "JUNCTION_CLUSTER_SECRET";

/// The environment variable naming a file that holds the cluster secret.
pub const SECRET_FILE_ENV: &str = "JUNCTION_CLUSTER_SECRET_FILE";

/// A `[cluster]` setting that cannot be used; the message names the key (or the
/// environment variable) and is shown to the user as-is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterConfigError {
    /// A value is out of range, malformed or inconsistent with another.
    #[error("{0}")]
    Invalid(String),
    /// A file (secret, TLS) cannot be read.
    #[error("{key}: cannot read {}: {reason}", path.display())]
    Read { key: String, path: PathBuf, reason: String },
    /// The secret file's first line is empty.
    #[error("{key} {} is empty", path.display())]
    EmptySecretFile { key: String, path: PathBuf },
    /// The secret has bytes other than printable ASCII.
    #[error(
        "the cluster secret from {from} must be printable ASCII (it travels in a gRPC header): \
         e.g. `openssl rand -hex 32`"
    )]
    SecretNotAscii { from: String },
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error(
        "the cluster secret from {from} is {len} bytes long: use at least {MIN_SECRET_LEN} random bytes \
         (e.g. `openssl rand -hex 32`)"
    )]
    SecretTooShort { from: String, len: usize },
    /// A `[cluster.tls]` file holds no PEM object of the expected kind.
    #[error("cluster.tls.{what}: no PEM {kind} in the file")]
    NoPem { what: &'static str, kind: &'static str },
    /// A node that may become a voter keeps its Raft state in memory.
    #[error(
        "cluster.data_dir is required for a node with cluster.peers or cluster.dns: any such node may \
         become a voter, and a voter must keep its log and vote across restarts (set \
         cluster.ephemeral = true to run in memory, for development only)"
    )]
    NoDataDir,
    /// The gRPC port is reachable from other hosts and nothing authenticates the nodes.
    #[error(
        "cluster.listen {addr} is reachable from other hosts: set cluster.secret_file, cluster.secret or \
         {SECRET_ENV}, or [cluster.tls]"
    )]
    Exposed { addr: SocketAddr },
}

/// Cluster membership and Raft tuning.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's Raft id (> 0, unique in the cluster). Also the router's node id.
    pub node_id: u64,
    /// gRPC listen address; empty disables the gRPC server (a lone node).
    pub listen: String,
    /// The address other nodes reach this node at; defaults to `listen`.
    pub advertise: Option<String>,
    /// gRPC addresses of (some) other nodes.
    pub peers: Vec<String>,
    /// A DNS name (`host:port`) resolving to the nodes, resolved on every join attempt.
    pub dns: Option<String>,
    /// Shared secret every node-to-node request must carry (`x-junction-cluster-secret`);
    /// see [`ClusterConfig::resolved_secret`] for where it comes from.
    pub secret: Option<String>,
    /// A file holding the secret (first line).
    pub secret_file: Option<PathBuf>,
    /// Mutual TLS between nodes.
    pub tls: Option<ClusterTls>,
    /// How many voters the cluster should have; further nodes stay learners.
    pub voters: usize,
    /// This node initialises the cluster when its Raft state is empty.
    pub bootstrap: bool,
    /// Where the Raft log, vote and snapshot live; `None` keeps them in memory
    /// (a lone node, or an `ephemeral` one).
    pub data_dir: Option<PathBuf>,
    /// Development only: a cluster node may run without `data_dir`.
    pub ephemeral: bool,
    /// Leader heartbeat interval, milliseconds.
    pub heartbeat_ms: u64,
    /// Minimum election timeout, milliseconds (the maximum is twice this).
    pub election_timeout_ms: u64,
    /// A node that has not answered the leader for this long is declared down.
    pub lease_ms: u64,
    /// A learner declared down for this long is removed from the membership by the
    /// leader (voters are removed only by an operator). Must exceed `lease_ms`.
    pub forget_after_ms: u64,
    /// How long a routing change may wait for a commit before it is refused.
    pub propose_timeout_ms: u64,
    /// How long a starting node tries to join (or to see a leader) before giving up.
    pub join_timeout_ms: u64,
    /// A snapshot is taken every this many log entries; the log before it is purged
    /// (keeping a fifth of it for slow followers).
    pub snapshot_logs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: 1,
            listen: String::new(),
            advertise: None,
            peers: Vec::new(),
            dns: None,
            secret: None,
            secret_file: None,
            tls: None,
            voters: 3,
            bootstrap: false,
            data_dir: None,
            ephemeral: false,
            heartbeat_ms: 100,
            election_timeout_ms: 500,
            lease_ms: 2000,
            forget_after_ms: DEFAULT_FORGET_AFTER_MS,
            propose_timeout_ms: 3000,
            join_timeout_ms: 30_000,
            snapshot_logs: 5000,
        }
    }
}

/// `[cluster.tls]`: every node presents `cert` and accepts only peers whose
/// certificate chains to `ca`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterTls {
    /// PEM certificate of this node; its names must include the host peers dial.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificate(s) of the cluster.
    pub ca: PathBuf,
}

/// The PEM contents of a [`ClusterTls`].
#[derive(Clone, Debug)]
pub struct ClusterTlsPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub ca: Vec<u8>,
}

impl ClusterTls {
    /// Reads the three files; errors name the file.
    pub fn load(&self) -> Result<ClusterTlsPem, ClusterConfigError> {
        let read = |what: &str, p: &PathBuf| {
            std::fs::read(p).map_err(|e| ClusterConfigError::Read {
                key: format!("cluster.tls.{what}"),
                path: p.clone(),
                reason: e.to_string(),
            })
        };
        let pem = ClusterTlsPem {
            cert: read("cert", &self.cert)?,
            key: read("key", &self.key)?,
            ca: read("ca", &self.ca)?,
        };
        for (what, bytes) in [("cert", &pem.cert), ("ca", &pem.ca)] {
            if !String::from_utf8_lossy(bytes).contains("-----BEGIN CERTIFICATE-----") {
                return Err(ClusterConfigError::NoPem { what, kind: "certificate" });
            }
        }
        if !String::from_utf8_lossy(&pem.key).contains("PRIVATE KEY-----") {
            return Err(ClusterConfigError::NoPem { what: "key", kind: "private key" });
        }
        Ok(pem)
    }
}

impl ClusterConfig {
    /// The cluster secret: the environment's `JUNCTION_CLUSTER_SECRET`, else the first
    /// line of the file `JUNCTION_CLUSTER_SECRET_FILE` names, else the first line of
    /// `secret_file`, else `secret`; `None` when none is set. A secret shorter than
    /// [`MIN_SECRET_LEN`] bytes, or with bytes other than printable ASCII (it travels
    /// in a gRPC header), is an error naming where it came from.
    pub fn resolved_secret(&self) -> Result<Option<String>, ClusterConfigError> {
        let (secret, from) = if let Ok(s) = std::env::var(SECRET_ENV)
            && !s.is_empty()
        {
            (s, SECRET_ENV.to_owned())
        } else if let Ok(p) = std::env::var(SECRET_FILE_ENV)
            && !p.is_empty()
        {
            (read_secret_file(SECRET_FILE_ENV, std::path::Path::new(&p))?, SECRET_FILE_ENV.to_owned())
        } else if let Some(p) = &self.secret_file {
            (read_secret_file("cluster.secret_file", p)?, "cluster.secret_file".to_owned())
        } else {
            match self.secret.clone().filter(|s| !s.is_empty()) {
                Some(s) => (s, "cluster.secret".to_owned()),
                None => return Ok(None),
            }
        };
        if !secret.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(ClusterConfigError::SecretNotAscii { from });
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(ClusterConfigError::SecretTooShort { from, len: secret.len() });
        }
        Ok(Some(secret))
    }

    /// Refuses a gRPC port other hosts can reach when nothing authenticates the
    /// nodes: `listen` is not loopback and there is neither a secret nor TLS.
    fn check_exposure(&self, has_secret: bool) -> Result<(), ClusterConfigError> {
        let Some(addr) = self.listen_addr() else { return Ok(()) };
        if addr.ip().is_loopback() || has_secret || self.tls.is_some() {
            return Ok(());
        }
        Err(ClusterConfigError::Exposed { addr })
    }

    /// A one-node cluster kept in memory: what a node without `[cluster]` runs.
    pub fn single() -> ClusterConfig {
        ClusterConfig::default()
    }

    /// True when the node has nobody to talk to: it initialises itself.
    pub fn is_single(&self) -> bool {
        self.peers.is_empty() && self.dns.is_none()
    }

    /// Whether this node initialises the cluster (explicitly, or because it is alone).
    pub fn initialises(&self) -> bool {
        self.bootstrap || self.is_single()
    }

    /// The address other nodes dial (empty when there is no gRPC server).
    pub fn advertised(&self) -> String {
        match &self.advertise {
            Some(a) if !a.is_empty() => a.clone(),
            _ => self.listen.clone(),
        }
    }

    /// The gRPC listen address, if the server is enabled (a host name resolved).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        if self.listen.is_empty() { None } else { super::resolve_addr(&self.listen) }
    }

    /// Leader heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// Liveness lease.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// Commit timeout of a proposal.
    pub fn propose_timeout(&self) -> Duration {
        Duration::from_millis(self.propose_timeout_ms)
    }

    /// How long a learner may stay down before the leader removes it.
    pub fn forget_after(&self) -> Duration {
        Duration::from_millis(self.forget_after_ms)
    }

    /// How long a starting node tries to join.
    pub fn join_timeout(&self) -> Duration {
        Duration::from_millis(self.join_timeout_ms)
    }

    /// Checks values the types cannot express; the message names the key.
    pub fn validate(&self) -> Result<(), ClusterConfigError> {
        if self.node_id == 0 {
            return Err(invalid("cluster.node_id must be > 0"));
        }
        if !self.listen.is_empty() && super::resolve_addr(&self.listen).is_none() {
            return Err(invalid(format!(
                "cluster.listen {:?} is not an address like 127.0.0.1:7001 or localhost:7001",
                self.listen
            )));
        }
        if let Some(a) = &self.advertise
            && !a.is_empty()
            && !is_host_port(a)
        {
            return Err(invalid(format!("cluster.advertise {a:?} is not host:port")));
        }
        if !self.is_single() && self.advertised().is_empty() {
            return Err(invalid(
                "cluster.listen (or cluster.advertise) is required when cluster.peers or cluster.dns is set",
            ));
        }
        for (i, p) in self.peers.iter().enumerate() {
            if !is_host_port(p) {
                return Err(invalid(format!("cluster.peers[{i}] {p:?} is not host:port")));
            }
        }
        if let Some(d) = &self.dns
            && !is_host_port(d)
        {
            return Err(invalid(format!(
                "cluster.dns {d:?} is not host:port (e.g. junction-headless.ns.svc:7001)"
            )));
        }
        if !self.peers.is_empty() && self.dns.is_some() {
            return Err(invalid("set cluster.peers or cluster.dns, not both"));
        }
        if self.voters == 0 {
            return Err(invalid("cluster.voters must be at least 1"));
        }
        if self.heartbeat_ms == 0 {
            return Err(invalid("cluster.heartbeat_ms must be > 0"));
        }
        if self.election_timeout_ms <= self.heartbeat_ms {
            return Err(invalid(format!(
                "cluster.election_timeout_ms ({}) must be greater than cluster.heartbeat_ms ({})",
                self.election_timeout_ms, self.heartbeat_ms
            )));
        }
        if self.lease_ms <= self.heartbeat_ms {
            return Err(invalid(format!(
                "cluster.lease_ms ({}) must be greater than cluster.heartbeat_ms ({})",
                self.lease_ms, self.heartbeat_ms
            )));
        }
        if self.forget_after_ms <= self.lease_ms {
            return Err(invalid(format!(
                "cluster.forget_after_ms ({}) must be greater than cluster.lease_ms ({})",
                self.forget_after_ms, self.lease_ms
            )));
        }
        if self.propose_timeout_ms == 0 {
            return Err(invalid("cluster.propose_timeout_ms must be > 0"));
        }
        let secret = self.resolved_secret()?;
        if let Some(tls) = &self.tls {
            tls.load()?;
        }
        self.check_exposure(secret.is_some())?;
        if self.snapshot_logs == 0 {
            return Err(invalid("cluster.snapshot_logs must be > 0"));
        }
        if !self.is_single()
            && self.advertise.as_deref().unwrap_or("").is_empty()
            && self.listen.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_unspecified())
        {
            return Err(invalid(format!(
                "cluster.listen {:?} is not an address other nodes can dial: set cluster.advertise",
                self.listen
            )));
        }
        if self.join_timeout_ms == 0 {
            return Err(invalid("cluster.join_timeout_ms must be > 0"));
        }
        if !self.is_single() && self.data_dir.is_none() && !self.ephemeral {
            return Err(ClusterConfigError::NoDataDir);
        }
        Ok(())
    }
}

/// The first line of the secret file `p` (named `key` in errors), trimmed.
fn read_secret_file(key: &str, p: &std::path::Path) -> Result<String, ClusterConfigError> {
    let text = std::fs::read_to_string(p).map_err(|e| ClusterConfigError::Read {
        key: key.to_owned(),
        path: p.to_owned(),
        reason: e.to_string(),
    })?;
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        return Err(ClusterConfigError::EmptySecretFile { key: key.to_owned(), path: p.to_owned() });
    }
    Ok(line)
}

fn invalid(message: impl Into<String>) -> ClusterConfigError {
    ClusterConfigError::Invalid(message.into())
}

/// `host:port` with a non-empty host and a numeric port.
fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_valid_single_node() {
        let c = ClusterConfig::default();
        assert!(c.validate().is_ok());
        assert!(c.is_single() && c.initialises());
        assert_eq!(c.listen_addr(), None);
    }

    #[test]
    fn parses_from_toml_and_reports_keys() {
        let c: ClusterConfig = toml::from_str(
            "node_id = 2\nlisten = \"127.0.0.1:7002\"\npeers = [\"127.0.0.1:7001\"]\nvoters = 5\n\
             data_dir = \"/var/lib/junction\"\n",
        )
        .expect("valid toml");
        assert!(c.validate().is_ok());
        assert_eq!(c.advertised(), "127.0.0.1:7002");
        assert!(!c.initialises());
        let bad = ClusterConfig { node_id: 0, ..ClusterConfig::default() };
        assert!(bad.validate().is_err_and(|e| e.to_string().contains("node_id")));
        let bad =
            ClusterConfig { peers: vec!["x".into()], listen: "127.0.0.1:1".into(), ..Default::default() };
        assert!(bad.validate().is_err_and(|e| e.to_string().contains("peers[0]")));
        let bad = ClusterConfig { peers: vec!["a:1".into()], ..Default::default() };
        assert!(bad.validate().is_err_and(|e| e.to_string().contains("cluster.listen")));
        let bad = ClusterConfig { election_timeout_ms: 50, ..Default::default() };
        assert!(bad.validate().is_err_and(|e| e.to_string().contains("election_timeout_ms")));
    }

    #[test]
    fn a_cluster_node_needs_a_data_dir_unless_ephemeral() {
        let member = ClusterConfig {
            listen: "127.0.0.1:7002".into(),
            peers: vec!["127.0.0.1:7001".into()],
            ..ClusterConfig::default()
        };
        assert_eq!(member.validate(), Err(ClusterConfigError::NoDataDir));
        assert!(ClusterConfigError::NoDataDir.to_string().contains("cluster.data_dir is required"));
        let on_disk = ClusterConfig { data_dir: Some("/var/lib/junction".into()), ..member.clone() };
        assert!(on_disk.validate().is_ok());
        let dev = ClusterConfig { ephemeral: true, ..member.clone() };
        assert!(dev.validate().is_ok());
        let dns = ClusterConfig { peers: Vec::new(), dns: Some("junction.svc:7001".into()), ..member };
        assert_eq!(dns.validate(), Err(ClusterConfigError::NoDataDir));
        let lone = ClusterConfig { listen: "127.0.0.1:7001".into(), ..ClusterConfig::default() };
        assert!(lone.validate().is_ok(), "a lone node may run in memory");
    }

    #[test]
    fn forget_after_defaults_to_ten_minutes_and_exceeds_the_lease() {
        let c = ClusterConfig::default();
        assert_eq!(c.forget_after(), Duration::from_secs(600));
        let c: ClusterConfig = toml::from_str("forget_after_ms = 5000\n").expect("valid toml");
        assert_eq!(c.forget_after_ms, 5000);
        let bad = ClusterConfig { forget_after_ms: 2000, ..ClusterConfig::default() };
        assert!(bad.validate().is_err_and(|e| e.to_string().contains("cluster.forget_after_ms (2000)")));
    }

    fn listening(listen: &str) -> ClusterConfig {
        ClusterConfig { listen: listen.into(), ..ClusterConfig::default() }
    }

    #[test]
    fn a_reachable_cluster_port_needs_a_secret_or_tls() {
        for open in ["0.0.0.0:7946", "[::]:7946", "10.1.2.3:7001", "[::ffff:127.0.0.1]:7001"] {
            let e = listening(open).validate().expect_err(open).to_string();
            assert!(e.contains("is reachable from other hosts") && e.contains("cluster.secret_file"), "{e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        for local in ["127.0.0.1:7001", "127.8.9.10:7001", "[::1]:7001", ""] {
            assert!(listening(local).validate().is_ok(), "{local}");
        }
        let with_secret =
            ClusterConfig { secret: Some("0123456789abcdef".into()), ..listening("0.0.0.0:7001") };
        assert!(with_secret.validate().is_ok());
        let dir = std::env::temp_dir().join(format!("junction-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cert = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.join("c.pem"), cert).expect("write");
        std::fs::write(dir.join("k.pem"), "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
            .expect("write");
        let tls = ClusterTls { cert: dir.join("c.pem"), key: dir.join("k.pem"), ca: dir.join("c.pem") };
        let with_tls = ClusterConfig { tls: Some(tls), ..listening("0.0.0.0:7001") };
        assert!(with_tls.validate().is_ok(), "mutual TLS alone is enough");
        let missing = ClusterTls { cert: "c".into(), key: "k".into(), ca: "a".into() };
        let with_tls = ClusterConfig { tls: Some(missing), ..listening("0.0.0.0:7001") };
        assert!(
            with_tls.validate().is_err_and(|e| e.to_string().contains("cluster.tls.cert")),
            "the files are checked"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_short_secret_is_refused() {
        let short = ClusterConfig { secret: Some("hunter2".into()), ..listening("127.0.0.1:7001") };
        assert!(short.validate().is_err_and(|e| e.to_string().contains("at least 16")));
        let binary =
            ClusterConfig { secret: Some("0123456789abcdé\u{7}".into()), ..listening("127.0.0.1:7001") };
        assert!(binary.validate().is_err_and(|e| e.to_string().contains("printable ASCII")));
        let dir = std::env::temp_dir().join(format!("junction-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("short");
        std::fs::write(&file, "abc\n").expect("write");
        let short = ClusterConfig { secret_file: Some(file.clone()), ..listening("0.0.0.0:7001") };
        assert!(short.validate().is_err_and(
            |e| e.to_string().contains("cluster.secret_file") && e.to_string().contains("3 bytes")
        ));
        std::fs::write(&file, "0123456789abcdef0123\nignored\n").expect("write");
        let ok = ClusterConfig { secret_file: Some(file), ..listening("0.0.0.0:7001") };
        assert_eq!(ok.resolved_secret(), Ok(Some("0123456789abcdef0123".into())));
        std::fs::remove_dir_all(dir).ok();
    }
}
