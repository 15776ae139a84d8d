//! The administration commands of the `junction` binary (`junction cluster ...`,
//! `junction session ...`, `junction config check`): each one's flags, what it
//! does, and how its result is printed, as text or (`--output json`) as one JSON
//! document on stdout.

mod http;
mod warnings;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use junction::cluster::proto::StatusReply;
use junction::cluster::secure::Credentials;
use junction::cluster::status::AdminError;
use junction::config::{Config, ConfigError};
use serde_json::{Value, json};

/// The exit codes, as `after_help` documents them.
pub const EXIT_HELP: &str = "Exit codes: 0 done; 1 refused or failed (the message says why: a wrong admin \
token, no such session, the cluster could not make the change); 2 bad flags or configuration file; 3 the \
node (--node, --admin) could not be reached or did not answer in time.";

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Text for people; errors and warnings on stderr.
    #[default]
    Text,
    /// One JSON document on stdout (errors too, as `{"error": ...}`); warnings also on stderr.
    Json,
}

/// Administration commands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Cluster administration, through any node's gRPC port.
    #[command(subcommand, after_help = EXIT_HELP)]
    Cluster(ClusterCommand),
    /// The sessions joined on one node, through its admin HTTP API.
    #[command(subcommand, after_help = EXIT_HELP)]
    Session(SessionCommand),
    /// Configuration files.
    #[command(subcommand, after_help = EXIT_HELP)]
    Config(ConfigCommand),
}

/// What `--node` says when omitted.
const NODE_HELP: &str = "gRPC address (IP:PORT or HOST:PORT) of any node of the cluster [default: the \
[cluster] advertise, else listen, of --config; 0.0.0.0 becomes 127.0.0.1]";

/// `junction cluster ...`
#[derive(Subcommand, Debug, Clone)]
pub enum ClusterCommand {
    /// Print members, roles, leader, term, commit/applied indexes and link states.
    #[command(after_help = EXIT_HELP)]
    Status {
        #[arg(long, help = NODE_HELP)]
        node: Option<String>,
    },
    /// Check that node N joined the cluster (a node started with the cluster's peers
    /// joins by itself, as a learner once `voters` are seated); with --voter, make it
    /// a voter.
    #[command(after_help = EXIT_HELP)]
    Add {
        #[arg(long, help = NODE_HELP)]
        node: Option<String>,
        /// The id of the node to add.
        #[arg(long)]
        id: u64,
        /// Make the node a voter (a learner is promoted; a voter stays one).
        #[arg(long)]
        voter: bool,
    },
    /// Remove a node from the cluster for good (scale-down): its voter seat goes to a
    /// learner that is up, its routing entries are purged. Removing the leader hands
    /// its role to another voter first. Warns when the change reduces fault tolerance.
    #[command(after_help = EXIT_HELP)]
    Remove {
        #[arg(long, help = NODE_HELP)]
        node: Option<String>,
        /// The id of the node to remove.
        #[arg(long)]
        id: u64,
    },
    /// Hand the leader's role to another voter (before maintenance on the leader's
    /// host): the leader stops taking writes, the target runs for election. Warns
    /// when the target is down or behind, or voters are down.
    #[command(after_help = EXIT_HELP)]
    TransferLeader {
        #[arg(long, help = NODE_HELP)]
        node: Option<String>,
        /// The voter to hand over to [default: the lowest-id voter that is up].
        #[arg(long)]
        to: Option<u64>,
    },
}

/// What `--admin` says.
const ADMIN_HELP: &str = "Admin HTTP address (IP:PORT or HOST:PORT) of the node [default: JUNCTION_ADMIN, \
else the [admin] listen of --config, else 127.0.0.1:8090; 0.0.0.0 becomes 127.0.0.1]. The token comes from \
JUNCTION_ADMIN_TOKEN, JUNCTION_ADMIN_TOKEN_FILE or [admin] token_file, as the server reads it";

/// `junction session ...`
#[derive(Subcommand, Debug, Clone)]
pub enum SessionCommand {
    /// List the sessions joined on the node.
    #[command(after_help = EXIT_HELP)]
    List {
        #[arg(long, help = ADMIN_HELP)]
        admin: Option<String>,
        /// Only the sessions of this realm [default: every realm].
        #[arg(long)]
        realm: Option<String>,
    },
    /// Send GOODBYE to a session joined on the node and close it.
    #[command(after_help = EXIT_HELP)]
    Kill {
        /// The session id (`junction session list`).
        id: u64,
        #[arg(long, help = ADMIN_HELP)]
        admin: Option<String>,
        /// The GOODBYE reason URI.
        #[arg(long, default_value = "wamp.close.killed")]
        reason: String,
        /// The GOODBYE message.
        #[arg(long, default_value = "killed through the admin API")]
        message: String,
    },
}

/// `junction config ...`
#[derive(Subcommand, Debug, Clone)]
pub enum ConfigCommand {
    /// Parse and validate FILE as the router does at start (values, listeners' TLS
    /// files, cluster secret and TLS files, admin token file) without starting it;
    /// print "ok" or every problem with its location. Exit 0 or 2.
    #[command(after_help = EXIT_HELP)]
    Check {
        /// The TOML configuration file.
        file: PathBuf,
    },
}

/// A command's result.
pub struct Done {
    /// What text output prints on stdout.
    text: String,
    /// What JSON output prints.
    json: Value,
    /// Printed on stderr, and in the JSON under `warnings`.
    warnings: Vec<String>,
}

/// A command's failure.
pub struct Failed {
    /// The exit code.
    code: u8,
    /// The message (text: on stderr; JSON: `{"error": ...}` on stdout).
    message: String,
    /// More fields of the JSON document.
    extra: Option<Value>,
    /// Warnings gathered before the failure.
    warnings: Vec<String>,
}

impl Failed {
    fn new(code: u8, message: impl Into<String>) -> Failed {
        Failed { code, message: message.into(), extra: None, warnings: Vec::new() }
    }

    /// Bad flags or configuration: exit 2.
    fn usage(message: impl Into<String>) -> Failed {
        Failed::new(2, message)
    }

    fn admin(context: &str, e: AdminError, warnings: Vec<String>) -> Failed {
        let code = match e {
            AdminError::Refused(_) => 1,
            AdminError::Unreachable(_) => 3,
        };
        Failed { code, message: format!("{context}{e}"), extra: None, warnings }
    }
}

/// Prints a result the way `output` asks; returns the exit code.
pub fn finish(output: Output, result: Result<Done, Failed>) -> ExitCode {
    let warn = |w: &[String]| {
        for line in w {
            eprintln!("junction: warning: {line}");
        }
    };
    match (result, output) {
        (Ok(done), Output::Text) => {
            warn(&done.warnings);
            print!("{}", done.text);
            if !done.text.is_empty() && !done.text.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        (Ok(done), Output::Json) => {
            warn(&done.warnings);
            let mut json = done.json;
            if let Value::Object(map) = &mut json
                && !done.warnings.is_empty()
            {
                map.insert("warnings".into(), json!(done.warnings));
            }
            println!("{json}");
            ExitCode::SUCCESS
        }
        (Err(f), Output::Text) => {
            warn(&f.warnings);
            eprintln!("junction: {}", f.message);
            ExitCode::from(f.code)
        }
        (Err(f), Output::Json) => {
            warn(&f.warnings);
            let mut json = json!({ "error": f.message, "exit_code": f.code });
            if let (Value::Object(map), Some(Value::Object(extra))) = (&mut json, f.extra) {
                map.extend(extra);
            }
            if !f.warnings.is_empty() {
                json["warnings"] = json!(f.warnings);
            }
            println!("{json}");
            ExitCode::from(f.code)
        }
    }
}

/// Runs an administration command. `config` is `--config` (or `JUNCTION_CONFIG`);
/// `admin_flag` the top-level `--admin` (or `JUNCTION_ADMIN`).
pub fn run(cmd: &Command, config: Option<&Path>, admin_flag: Option<&str>) -> Result<Done, Failed> {
    match cmd {
        Command::Config(ConfigCommand::Check { file }) => config_check(file),
        Command::Session(s) => session(s, config, admin_flag),
        Command::Cluster(c) => cluster(c, config),
    }
}

// ---------------------------------------------------------------------------
// config check
// ---------------------------------------------------------------------------

/// One problem of a configuration file: where, and what.
struct Problem {
    section: String,
    line: Option<usize>,
    message: String,
}

fn config_check(file: &Path) -> Result<Done, Failed> {
    let name = file.display().to_string();
    let mut problems = match Config::parse_file(file) {
        Err(e) => {
            vec![Problem { section: String::new(), line: parse_error_line(&e), message: e.to_string() }]
        }
        Ok(cfg) => {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            crate::startup_problems(&cfg)
                .into_iter()
                .chain(admin_token_problem(&cfg))
                .map(|(section, e)| Problem {
                    line: section_line(&text, &section),
                    section,
                    message: e.to_string(),
                })
                .collect()
        }
    };
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    if problems.is_empty() {
        return Ok(Done {
            text: "ok\n".into(),
            json: json!({ "ok": true, "file": name }),
            warnings: Vec::new(),
        });
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let at = match p.line {
                Some(l) => format!("{name}:{l}"),
                None => name.clone(),
            };
            if p.section.is_empty() {
                format!("{at}: {}", p.message)
            } else {
                format!("{at}: [{}] {}", p.section, p.message)
            }
        })
        .collect();
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| json!({ "section": p.section, "line": p.line, "message": p.message }))
        .collect();
    let count = problems.len();
    Err(Failed {
        code: 2,
        message: format!(
            "{count} problem{} in {name}:\n{}",
            if count == 1 { "" } else { "s" },
            lines.join("\n")
        ),
        extra: Some(json!({ "ok": false, "file": name, "errors": errors })),
        warnings: Vec::new(),
    })
}

/// The admin token, read as the server reads it at start (only when the admin
/// server is enabled).
fn admin_token_problem(cfg: &Config) -> Option<(String, ConfigError)> {
    cfg.admin_addr()?;
    cfg.admin.token().err().map(|e| ("admin".to_owned(), e))
}

/// The line a TOML parse error names (`... at line 3, column 1`).
fn parse_error_line(e: &ConfigError) -> Option<usize> {
    let ConfigError::Parse { message, .. } = e else { return None };
    let rest = &message[message.find("line ")? + 5..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The line of the table a problem is about: `[cluster]` (or `[cluster.tls]`, ...)
/// for `cluster`, the i-th `[[realms]]` for `realms[i]`; `None` when the file has no
/// such table (the defaults are at fault) or the section is not a table.
fn section_line(text: &str, section: &str) -> Option<usize> {
    let header = |l: &str| l.trim().trim_start_matches('[').trim_end_matches(']').trim().to_owned();
    let lines = || text.lines().enumerate().filter(|(_, l)| l.trim_start().starts_with('['));
    if let Some(i) = section.strip_prefix("realms[").and_then(|r| r.strip_suffix(']')) {
        let i: usize = i.parse().ok()?;
        return lines()
            .filter(|(_, l)| header(l) == "realms" && l.trim_start().starts_with("[["))
            .nth(i)
            .map(|(n, _)| n + 1);
    }
    lines().find(|(_, l)| header(l) == section).map(|(n, _)| n + 1)
}

// ---------------------------------------------------------------------------
// session list / kill
// ---------------------------------------------------------------------------

/// `0.0.0.0:P` (or `[::]:P`) as a client dials it: the loopback address.
fn dialable(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => {
            let ip: std::net::IpAddr = if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            std::net::SocketAddr::new(ip, a.port()).to_string()
        }
        _ => addr.to_owned(),
    }
}

/// The configuration file, validated as at start, when one is given.
fn load_config(config: Option<&Path>) -> Result<Option<Config>, Failed> {
    config.map(|p| Config::from_file(p).map_err(|e| Failed::usage(e.to_string()))).transpose()
}

/// The admin address and token of `junction session ...`.
fn admin_target(
    flag: Option<&str>,
    top_flag: Option<&str>,
    config: Option<&Path>,
) -> Result<(String, Option<String>), Failed> {
    let cfg = load_config(config)?;
    let admin = cfg.as_ref().map(|c| c.admin.clone()).unwrap_or_default();
    let addr = match flag.or(top_flag) {
        Some(a) => a.to_owned(),
        None if admin.listen.is_empty() => {
            return Err(Failed::usage(
                "the admin HTTP server is disabled in the configuration ([admin] listen = \"\"): give --admin ADDR",
            ));
        }
        None => admin.listen.clone(),
    };
    if addr.is_empty() {
        return Err(Failed::usage("--admin is empty: give the node's admin address, e.g. 127.0.0.1:8090"));
    }
    let token = admin.token().map_err(|e| Failed::usage(e.to_string()))?;
    Ok((dialable(&addr), token))
}

/// The error of an admin API answer that is not 2xx.
fn api_failure(addr: &str, answer: &http::Answer, token: bool, what: &str) -> Failed {
    let said = serde_json::from_str::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| answer.body.trim().to_owned());
    let message = match answer.status {
        401 if !token => format!(
            "{what}: the admin API at {addr} wants a token and none is configured here: set \
             JUNCTION_ADMIN_TOKEN or JUNCTION_ADMIN_TOKEN_FILE, or give --config with [admin] token_file ({said})"
        ),
        401 => format!("{what}: the admin API at {addr} refused the token (401): {said}"),
        403 => format!("{what}: the admin API at {addr} refused the request (403): {said}"),
        404 => format!("{what}: {said}"),
        s => format!("{what}: the admin API at {addr} answered {s}: {said}"),
    };
    let mut f = Failed::new(1, message);
    f.extra = Some(json!({ "status": answer.status }));
    f
}

fn http_failure(e: http::HttpError) -> Failed {
    match e {
        http::HttpError::Unreachable { .. } => Failed::new(3, e.to_string()),
        http::HttpError::Bad { .. } => Failed::new(1, e.to_string()),
    }
}

/// Percent-encodes a query value.
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn session(cmd: &SessionCommand, config: Option<&Path>, top_admin: Option<&str>) -> Result<Done, Failed> {
    match cmd {
        SessionCommand::List { admin, realm } => {
            let (addr, token) = admin_target(admin.as_deref(), top_admin, config)?;
            let path = match realm {
                Some(r) => format!("/api/sessions?realm={}", query_value(r)),
                None => "/api/sessions".to_owned(),
            };
            let answer = http::request(&addr, "GET", &path, token.as_deref(), None).map_err(http_failure)?;
            if answer.status != 200 {
                return Err(api_failure(&addr, &answer, token.is_some(), "cannot list the sessions"));
            }
            let list: Value = serde_json::from_str(&answer.body)
                .map_err(|e| Failed::new(1, format!("the admin API at {addr} answered garbage: {e}")))?;
            Ok(Done { text: sessions_table(&list), json: json!({ "sessions": list }), warnings: Vec::new() })
        }
        SessionCommand::Kill { id, admin, reason, message } => {
            let (addr, token) = admin_target(admin.as_deref(), top_admin, config)?;
            let body = json!({ "reason": reason, "message": message }).to_string();
            let path = format!("/api/sessions/{id}/kill");
            let answer =
                http::request(&addr, "POST", &path, token.as_deref(), Some(&body)).map_err(http_failure)?;
            if answer.status != 200 {
                return Err(api_failure(
                    &addr,
                    &answer,
                    token.is_some(),
                    &format!("cannot kill session {id}"),
                ));
            }
            Ok(Done {
                text: format!("session {id} killed ({reason})\n"),
                json: json!({ "killed": id, "reason": reason, "message": message }),
                warnings: Vec::new(),
            })
        }
    }
}

/// The session list as a table.
fn sessions_table(list: &Value) -> String {
    let rows = list.as_array().cloned().unwrap_or_default();
    let s = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Null | Value::String(_) => "-".to_owned(),
        other => other.to_string(),
    };
    let mut out = format!(
        "{:<18} {:<20} {:<20} {:<14} {:<10} {:<8} {:>7}\n",
        "SESSION", "REALM", "AUTHID", "AUTHROLE", "AUTHMETHOD", "SERIAL", "PENDING"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<18} {:<20} {:<20} {:<14} {:<10} {:<8} {:>7}\n",
            s(&r["session"]),
            s(&r["realm"]),
            s(&r["authid"]),
            s(&r["authrole"]),
            s(&r["authmethod"]),
            s(&r["serializer"]),
            s(&r["pending_calls"])
        ));
    }
    out.push_str(&format!("{} session{}\n", rows.len(), if rows.len() == 1 { "" } else { "s" }));
    out
}

// ---------------------------------------------------------------------------
// cluster status / add / remove / transfer-leader
// ---------------------------------------------------------------------------

/// The node to ask: `--node`, else the configuration's `[cluster]` address.
fn node_addr(flag: Option<&str>, cfg: Option<&Config>) -> Result<String, Failed> {
    if let Some(n) = flag {
        return Ok(n.to_owned());
    }
    let Some(cfg) = cfg else {
        return Err(Failed::usage("give --node ADDR, or --config FILE whose [cluster] listen is set"));
    };
    let addr = cfg.cluster.advertised();
    if addr.is_empty() {
        return Err(Failed::usage(
            "the configuration's [cluster] has no listen (nor advertise) address: give --node ADDR",
        ));
    }
    Ok(dialable(&addr))
}

fn cluster(cmd: &ClusterCommand, config: Option<&Path>) -> Result<Done, Failed> {
    let cfg = load_config(config)?;
    let creds = match &cfg {
        Some(c) => Credentials::from_config(&c.cluster).map_err(|e| Failed::usage(e.to_string()))?,
        None => Credentials::from_env().map_err(|e| Failed::usage(e.to_string()))?,
    };
    let node = match cmd {
        ClusterCommand::Status { node }
        | ClusterCommand::Add { node, .. }
        | ClusterCommand::Remove { node, .. }
        | ClusterCommand::TransferLeader { node, .. } => node_addr(node.as_deref(), cfg.as_ref())?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::new(1, format!("cannot start the runtime: {e}")))?;
    let configured_voters = cfg.as_ref().map(|c| c.cluster.voters);
    rt.block_on(cluster_async(cmd, &node, creds, configured_voters))
}

async fn cluster_async(
    cmd: &ClusterCommand,
    node: &str,
    creds: Credentials,
    configured_voters: Option<usize>,
) -> Result<Done, Failed> {
    use junction::cluster::{status, transfer};
    match cmd {
        ClusterCommand::Status { .. } => {
            let reply =
                status::fetch_for_admin(node, creds).await.map_err(|e| Failed::admin("", e, Vec::new()))?;
            Ok(Done { text: status::render(&reply), json: status_json(&reply), warnings: Vec::new() })
        }
        ClusterCommand::Add { id, voter, .. } => match status::add(node, *id, *voter, creds).await {
            Ok(done) => Ok(Done {
                json: json!({ "node": id, "voter": voter, "result": done }),
                text: done,
                warnings: Vec::new(),
            }),
            Err(e) => Err(Failed::admin(&format!("cannot add node {id}: "), e, Vec::new())),
        },
        ClusterCommand::Remove { id, .. } => {
            let before = status::fetch_for_admin(node, creds.clone())
                .await
                .map_err(|e| Failed::admin(&format!("cannot remove node {id}: "), e, Vec::new()))?;
            let warnings = warnings::remove(&before, *id, configured_voters);
            match status::remove(node, *id, creds).await {
                Ok(index) => Ok(Done {
                    text: format!("node {id} removed (log index {index})"),
                    json: json!({ "removed": id, "log_index": index, "warnings": warnings }),
                    warnings,
                }),
                Err(e) => Err(Failed::admin(&format!("cannot remove node {id}: "), e, warnings)),
            }
        }
        ClusterCommand::TransferLeader { to, .. } => {
            let context = "cannot transfer leadership: ";
            let before = status::fetch_for_admin(node, creds.clone())
                .await
                .map_err(|e| Failed::admin(context, e, Vec::new()))?;
            // Only the leader knows how far each follower's log is.
            let leader = if before.state == "leader" || before.leader_addr.is_empty() {
                None
            } else {
                status::fetch_for_admin(&before.leader_addr, creds.clone()).await.ok()
            };
            let warnings = warnings::transfer(leader.as_ref().unwrap_or(&before), *to);
            match transfer::transfer_leader(node, *to, creds).await {
                Ok((old, new)) => Ok(Done {
                    text: if old == new {
                        format!("node {new} leads already")
                    } else {
                        format!("leadership handed over from node {old} to node {new}")
                    },
                    json: json!({ "from": old, "to": new, "warnings": warnings }),
                    warnings,
                }),
                Err(e) => Err(Failed::admin(context, e, warnings)),
            }
        }
    }
}

/// `cluster status` as JSON: the fields of the text, indexes `null` when there are none.
fn status_json(s: &StatusReply) -> Value {
    let idx = |i: i64| if i < 0 { Value::Null } else { json!(i) };
    let mut members = s.members.clone();
    members.sort_by_key(|m| m.node_id);
    json!({
        "node_id": s.node_id,
        "addr": s.addr,
        "state": s.state,
        "term": s.term,
        "leader_id": if s.leader_id == 0 { Value::Null } else { json!(s.leader_id) },
        "leader_addr": if s.leader_addr.is_empty() { Value::Null } else { json!(s.leader_addr) },
        "last_log_index": idx(s.last_log_index),
        "committed_index": idx(s.committed_index),
        "applied_index": idx(s.applied_index),
        "snapshot_index": idx(s.snapshot_index),
        "purged_index": idx(s.purged_index),
        "millis_since_quorum_ack": idx(s.millis_since_quorum_ack),
        "incarnation": s.incarnation,
        "members": members.iter().map(|m| json!({
            "node_id": m.node_id,
            "addr": m.addr,
            "role": m.role,
            "up": m.up,
            "incarnation": m.incarnation,
            "matched_index": idx(m.matched_index),
            "last_ack_ms": idx(m.last_ack_ms),
        })).collect::<Vec<_>>(),
        "links": s.links.iter().map(|l| json!({
            "node_id": l.node_id,
            "addr": l.addr,
            "state": l.state,
            "frames_sent": l.frames_sent,
            "frames_dropped": l.frames_dropped,
            "frames_missed": l.frames_missed,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_located_on_their_table() {
        let text =
            "[[realms]]\nname = \"a\"\n\n[[realms]]\nname = \"b c\"\n[limits]\nx = 1\n[websocket.tls]\n";
        assert_eq!(section_line(text, "realms[1]"), Some(4));
        assert_eq!(section_line(text, "limits"), Some(6));
        assert_eq!(section_line(text, "websocket.tls"), Some(8));
        assert_eq!(section_line(text, "cluster"), None);
        let e =
            ConfigError::Parse { path: "f".into(), message: "TOML parse error at line 3, column 1".into() };
        assert_eq!(parse_error_line(&e), Some(3));
    }

    #[test]
    fn an_unspecified_address_is_dialled_on_loopback() {
        assert_eq!(dialable("0.0.0.0:7001"), "127.0.0.1:7001");
        assert_eq!(dialable("[::]:7001"), "[::1]:7001");
        assert_eq!(dialable("localhost:7001"), "localhost:7001");
        assert_eq!(dialable("127.0.0.1:8090"), "127.0.0.1:8090");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_value("com.example/a b&c"), "com.example%2Fa%20b%26c");
    }
}
