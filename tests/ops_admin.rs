//! The admin HTTP server of the `junction` binary: `/healthz`, `/readyz` (also
//! while draining on SIGTERM), `/metrics` in the Prometheus and OpenMetrics
//! formats, `/api/status`, `/api/sessions` and killing a session, the session
//! gauge and message counters following a real WebSocket client, and the
//! `--admin` flag's address handling.
//!
//! Its access rules, attacked from outside: without the bearer token, with a
//! wrong one, as a cross-site "simple" request (text/plain, form), from a foreign
//! `Origin`, under a rebound `Host`; closed when no token is configured; the token
//! from `[admin] token_file` and from `JUNCTION_ADMIN_TOKEN`; `metrics_public`;
//! the console's login page.

mod ops_support;

use std::net::SocketAddr;
use std::time::Duration;

use ops_support::{
    ADMIN_TOKEN, BEARER, GOODBYE, Node, RESULT, get, get_authed, http, poll, poll_authed, post_authed,
    test_dir,
};
use serde_json::Value;

const LISTENERS: [&str; 6] = ["--admin", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0"];

/// A node whose admin token is [`ADMIN_TOKEN`] (from the environment).
fn start(name: &str) -> Node {
    let dir = test_dir(name);
    Node::start(&dir, "node", &LISTENERS, &[("JUNCTION_ADMIN_TOKEN", ADMIN_TOKEN)])
}

/// A node started with `config` as its file (and the listeners on free ports).
fn start_with_config(name: &str, config: &str, env: &[(&str, &str)]) -> (Node, std::path::PathBuf) {
    let dir = test_dir(name);
    let path = dir.join("junction.toml");
    std::fs::write(&path, config).unwrap();
    let mut args = vec!["--config", path.to_str().unwrap()];
    args.extend(LISTENERS);
    (Node::start(&dir, "node", &args, env), dir)
}

/// Runs blocking HTTP off the async test's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Whether the client's session still answers a call.
async fn alive(client: &mut ops_support::Wamp) -> bool {
    let reply = client.call("wamp.session.count", serde_json::json!({}), serde_json::json!([])).await;
    reply[0] == RESULT
}

fn assert_bearer_challenge(r: &ops_support::Response) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer")), "{:?}", r.headers);
}

#[test]
fn healthz_readyz_and_metrics_answer() {
    let node = start("health");
    let admin = node.admin();
    let h = get(admin, "/healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let r = get(admin, "/readyz");
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    let c = get(admin, "/readyz?cluster=1");
    assert_eq!((c.status, c.body.as_str()), (200, "ready\n"), "a lone node is a healthy one-node cluster");

    assert_bearer_challenge(&get(admin, "/metrics"));
    let m = get_authed(admin, "/metrics");
    assert_eq!(m.status, 200);
    assert_eq!(m.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    for name in [
        "# TYPE junction_sessions gauge",
        "# TYPE junction_messages_received_total counter",
        "# TYPE junction_messages_sent_total counter",
        "# TYPE junction_call_duration_seconds histogram",
        "junction_call_duration_seconds_bucket{le=\"+Inf\"} ",
        "junction_events_delivered_total 0",
        "junction_events_dropped_total 0",
        "junction_outbound_queue_bytes ",
        "junction_slow_consumer_disconnects_total 0",
        "# TYPE junction_auth_failures_total counter",
        "junction_raft_term 1",
        "junction_raft_leader_id 1",
        "junction_raft_is_leader 1",
        "junction_raft_commit_index ",
        "junction_raft_apply_lag 0",
        "junction_raft_members 1",
        "# TYPE junction_link_up gauge",
        "# TYPE junction_link_bytes_sent_total counter",
        "junction_ready 1",
        "junction_draining 0",
        "junction_build_info{version=",
    ] {
        assert!(m.body.contains(name), "/metrics lacks {name:?}:\n{}", m.body);
    }
    assert!(!m.body.contains("# EOF"));

    let accept = ("Accept", "application/openmetrics-text; version=1.0.0");
    let om = http(admin, "GET", "/metrics", &[accept, ("Authorization", BEARER)], "");
    assert_eq!(om.status, 200);
    assert!(om.header("content-type").is_some_and(|c| c.starts_with("application/openmetrics-text")));
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(om.body.contains("# TYPE junction_messages_received counter"));
}

#[test]
fn status_api_reports_node_and_cluster() {
    let node = start("status");
    // openraft's metrics may trail the state machine by a moment.
    let s = poll_authed(node.admin(), "/api/status", Duration::from_secs(5), |r| {
        let c = &r.json()["cluster"];
        r.status == 200 && !c["applied_index"].is_null() && c["applied_index"] == c["committed_index"]
    });
    assert_eq!(s.header("content-type"), Some("application/json"));
    let s = s.json();
    assert_eq!(s["node"], 1);
    assert_eq!(s["ready"], true);
    assert_eq!(s["draining"], false);
    assert_eq!(s["sessions"]["realm1"], 0);
    let c = &s["cluster"];
    assert_eq!(c["state"], "leader");
    assert_eq!(c["leader"]["node"], 1);
    assert!(c["term"].as_u64().is_some_and(|t| t >= 1), "{s}");
    assert_eq!(c["members"][0]["node"], 1);
    assert_eq!(c["members"][0]["role"], "voter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_api_lists_and_kills_a_session() {
    let node = start("sessions");
    let admin = node.admin();
    let mut client = ops_support::Wamp::join(node.ws(), "realm1").await;
    let id = client.session;

    let list = blocking(move || get_authed(admin, "/api/sessions")).await;
    assert_eq!(list.status, 200);
    let list = list.json();
    let entry = list.as_array().and_then(|l| l.iter().find(|s| s["session"] == id)).cloned();
    let entry = entry.unwrap_or_else(|| panic!("session {id} not listed: {list}"));
    assert_eq!(entry["realm"], "realm1");
    assert_eq!(entry["serializer"], "json");
    assert_eq!(entry["authrole"], "anonymous");
    let other_realm = blocking(move || get_authed(admin, "/api/sessions?realm=nope")).await;
    assert_eq!(other_realm.json(), Value::Array(vec![]));

    let status = blocking(move || get_authed(admin, "/api/status")).await;
    assert_eq!(status.json()["sessions"]["realm1"], 1);

    let missing = blocking(move || post_authed(admin, "/api/sessions/1/kill", "{}")).await;
    assert_eq!(missing.status, 404);
    let path = format!("/api/sessions/{id}/kill");
    let (p, q) = (path.clone(), path.clone());
    let not_json = blocking(move || post_authed(admin, &p, "reason=x")).await;
    assert_eq!(not_json.status, 400, "a body that is not a JSON object: {}", not_json.body);
    let json_type = ("Content-Type", "application/json");
    let no_body = blocking(move || {
        http(admin, "POST", "/api/sessions/1/kill", &[("Authorization", BEARER), json_type], "")
    })
    .await;
    assert_eq!(no_body.status, 404, "no body with the JSON type means the defaults: {}", no_body.body);
    let array = blocking(move || post_authed(admin, &q, "[]")).await;
    assert_eq!(array.status, 400, "not a JSON object: {}", array.body);

    let body = r#"{"reason": "wamp.close.killed", "message": "bye from the test"}"#;
    let killed = blocking(move || post_authed(admin, &path, body)).await;
    assert_eq!(killed.status, 200, "{}", killed.body);
    assert_eq!(killed.json()["killed"], id);
    let bye = client.recv().await;
    assert_eq!(bye[0], GOODBYE, "expected GOODBYE, got {bye}");
    assert_eq!(bye[2], "wamp.close.killed");
    assert_eq!(bye[1]["message"], "bye from the test");

    let empty = blocking(move || {
        poll_authed(admin, "/api/sessions", Duration::from_secs(5), |r| r.body.trim() == "[]")
    })
    .await;
    assert_eq!(empty.status, 200);
}

/// One hostile request: method, headers, body, the status it must get.
type Attack<'a> = (&'static str, Vec<(&'a str, &'a str)>, &'a str, u16);

/// Every attack of the security report, against a node that has a token: each is
/// refused, and the session they aim at is still alive afterwards; then the
/// operator's request (token, JSON) kills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_without_token_or_from_foreign_pages_are_refused_and_the_session_survives() {
    let node = start("attacks");
    let admin = node.admin();
    let mut client = ops_support::Wamp::join(node.ws(), "realm1").await;
    let id = client.session;
    let kill = format!("/api/sessions/{id}/kill");
    let evil = ("Origin", "http://evil.example");
    let text = ("Content-Type", "text/plain");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let auth = ("Authorization", BEARER);
    let wrong = ("Authorization", "Bearer ops-test-admin-token-4f1d9b");
    let rebound = format!("rebind.evil.example:{}", admin.port());
    let attacks: Vec<Attack> = vec![
        // the report's CSRF: a simple cross-site POST, empty text/plain body
        ("GET", vec![], "/api/sessions", 401),
        ("POST", vec![evil, text], "", 403),
        ("POST", vec![evil, text, auth], "", 403),
        ("POST", vec![text], "", 401),
        ("POST", vec![text, auth], "", 415),
        ("POST", vec![form, auth], "reason=wamp.close.killed", 415),
        ("POST", vec![], "{}", 401),
        ("POST", vec![wrong], "{}", 401),
        ("POST", vec![("Authorization", "Basic b3BzOnRlc3Q=")], "{}", 401),
        ("POST", vec![evil, auth], "{}", 403),
        ("POST", vec![("Origin", "null"), auth], "{}", 403),
        ("POST", vec![("Host", rebound.as_str()), auth], "{}", 403),
        ("OPTIONS", vec![evil, ("Access-Control-Request-Method", "POST")], "", 403),
    ];
    for (method, headers, body, expected) in attacks {
        let path = if method == "GET" { "/api/sessions".to_string() } else { kill.clone() };
        let h: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let b = body.to_string();
        let r = blocking(move || {
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            http(admin, method, &path, &h, &b)
        })
        .await;
        assert_eq!(r.status, expected, "{method} {headers:?} {body:?}: {} {}", r.status, r.body);
        assert!(!r.body.contains(&id.to_string()), "{method} {headers:?} leaked the session: {}", r.body);
        assert!(r.header("access-control-allow-origin").is_none(), "{:?}", r.headers);
        if expected == 401 {
            assert_bearer_challenge(&r);
        }
        assert!(alive(&mut client).await, "the session died after {method} {headers:?} {body:?}");
    }
    let rebound_get = blocking(move || {
        http(admin, "GET", "/api/sessions", &[("Host", "localhost.evil.example"), auth], "")
    })
    .await;
    assert_eq!(rebound_get.status, 403, "{}", rebound_get.body);
    let wrong_get = blocking(move || http(admin, "GET", "/api/status", &[wrong], "")).await;
    assert_bearer_challenge(&wrong_get);
    assert!(wrong_get.header("www-authenticate").is_some_and(|c| c.contains("invalid_token")));

    // the operator: the token, JSON, from the server's own origin
    let own = format!("http://{admin}");
    let killed = blocking(move || {
        http(admin, "POST", &kill, &[auth, ("Origin", own.as_str())], r#"{"message": "operator"}"#)
    })
    .await;
    assert_eq!(killed.status, 200, "{}", killed.body);
    let bye = client.recv().await;
    assert_eq!(
        (bye[0].clone(), bye[2].clone()),
        (Value::from(GOODBYE), Value::from("wamp.close.killed")),
        "{bye}"
    );
}

/// No token configured (the default): only the probes answer; every other route,
/// with any credential, is 401 and the session lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_only_the_probes_answer() {
    let dir = test_dir("closed");
    let node = Node::start(&dir, "node", &LISTENERS, &[]);
    let admin = node.admin();
    let mut client = ops_support::Wamp::join(node.ws(), "realm1").await;
    let kill = format!("/api/sessions/{}/kill", client.session);
    let r = blocking(move || {
        let open = [get(admin, "/healthz").status, get(admin, "/readyz").status];
        let closed: Vec<(String, ops_support::Response)> = [
            "/metrics",
            "/api/status",
            "/api/sessions",
            "/api/stats",
            "/api/console-config",
            "/console",
            "/nope",
        ]
        .iter()
        .map(|p| (p.to_string(), http(admin, "GET", p, &[("Authorization", BEARER)], "")))
        .collect();
        let killed = [post_authed(admin, &kill, "{}"), http(admin, "POST", &kill, &[], "")];
        (open, closed, killed)
    })
    .await;
    assert_eq!(r.0, [200, 200]);
    for (path, resp) in &r.1 {
        assert_bearer_challenge(resp);
        if path != "/console" {
            assert!(resp.body.contains("no token is configured"), "{path}: {}", resp.body);
        }
    }
    for resp in &r.2 {
        assert_bearer_challenge(resp);
    }
    assert!(alive(&mut client).await);
    let log = std::fs::read_to_string(&node.stderr_path).unwrap_or_default();
    assert!(log.contains("no admin token"), "the router says the API is closed: {log}");
}

/// `[admin] token_file` (first line) and `JUNCTION_ADMIN_TOKEN`, which wins;
/// `allowed_hosts` and `allowed_origins`; `metrics_public`.
#[test]
fn token_from_file_or_environment_and_allowed_hosts_and_origins() {
    let dir = test_dir("token-file-config");
    let token_path = dir.join("admin-token");
    std::fs::write(&token_path, "file-token-7c3e1b52d9a0\nignored second line\n").unwrap();
    let config = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = {:?}\nmetrics_public = true\n\
         allowed_hosts = [\"admin.internal.test\"]\nallowed_origins = [\"https://console.internal.test\"]\n",
        token_path.to_str().unwrap()
    );
    let (node, _) = start_with_config("token-file", &config, &[]);
    let admin = node.admin();
    let file_bearer = ("Authorization", "Bearer file-token-7c3e1b52d9a0");
    assert_eq!(http(admin, "GET", "/api/status", &[file_bearer], "").status, 200);
    assert_bearer_challenge(&get_authed(admin, "/api/status"));
    assert_bearer_challenge(&http(
        admin,
        "GET",
        "/api/status",
        &[("Authorization", "Bearer ignored second line")],
        "",
    ));
    // metrics_public: /metrics without a token, the API still closed
    let m = get(admin, "/metrics");
    assert!(m.status == 200 && m.body.contains("junction_ready"), "{} {}", m.status, m.body);
    assert_bearer_challenge(&get(admin, "/api/stats"));
    // a configured host name and a configured origin pass; others do not
    let host = format!("admin.internal.test:{}", admin.port());
    let ok = [("Host", host.as_str()), ("Origin", "https://console.internal.test"), file_bearer];
    assert_eq!(http(admin, "GET", "/api/stats", &ok, "").status, 200);
    let other = format!("admin.internal.test.evil:{}", admin.port());
    assert_eq!(http(admin, "GET", "/api/stats", &[("Host", other.as_str()), file_bearer], "").status, 403);
    let bad_origin = [("Origin", "https://console.internal.test.evil"), file_bearer];
    assert_eq!(http(admin, "GET", "/api/stats", &bad_origin, "").status, 403);
    drop(node);

    // JUNCTION_ADMIN_TOKEN wins over the file
    let (node, _) = start_with_config("token-env", &config, &[("JUNCTION_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let admin: SocketAddr = node.admin();
    assert_eq!(get_authed(admin, "/api/status").status, 200);
    assert_bearer_challenge(&http(admin, "GET", "/api/status", &[file_bearer], ""));
    drop(node);

    // JUNCTION_ADMIN_TOKEN_FILE (where a container mounts its secret) wins over token_file
    let mounted = dir.join("mounted-token");
    std::fs::write(&mounted, format!("{ADMIN_TOKEN}\n")).unwrap();
    let env = [("JUNCTION_ADMIN_TOKEN_FILE", mounted.to_str().unwrap())];
    let (node, _) = start_with_config("token-env-file", &config, &env);
    let admin: SocketAddr = node.admin();
    assert_eq!(get_authed(admin, "/api/status").status, 200);
    assert_bearer_challenge(&http(admin, "GET", "/api/status", &[file_bearer], ""));
}

#[test]
fn an_unreadable_or_empty_token_file_stops_the_start() {
    let dir = test_dir("token-file-bad");
    for (name, content) in [("missing", None), ("empty", Some("\n"))] {
        let token = dir.join(format!("token-{name}"));
        if let Some(c) = content {
            std::fs::write(&token, c).unwrap();
        }
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = {:?}\n", token))
            .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(["--config", cfg.to_str().unwrap(), "--ws", "", "--rawsocket", ""])
            .env_remove("JUNCTION_ADMIN_TOKEN")
            .env_remove("JUNCTION_ADMIN_TOKEN_FILE")
            .output()
            .expect("run junction");
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("admin.token_file"), "{name}: {out:?}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(["--admin", "127.0.0.1:0", "--ws", "", "--rawsocket", ""])
        .env_remove("JUNCTION_ADMIN_TOKEN")
        .env("JUNCTION_ADMIN_TOKEN_FILE", dir.join("not-mounted"))
        .output()
        .expect("run junction");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JUNCTION_ADMIN_TOKEN_FILE"), "{out:?}");
}

/// The console asks for the token instead of taking a secret in its URL: without
/// one, `/console` is 401 with the login page; `/api/console-config` needs it.
#[test]
fn the_console_logs_in_with_the_token_not_its_url() {
    let node = start("console");
    let admin = node.admin();
    let page = get(admin, "/console");
    assert_bearer_challenge(&page);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.body.contains("id=\"login\"") && page.body.contains("sessionStorage"), "{}", page.body);
    assert!(!page.body.contains(ADMIN_TOKEN));
    let authed = get_authed(admin, "/console");
    assert_eq!(authed.status, 200);
    assert_eq!(authed.header("cache-control"), Some("no-store"));
    let cfg = get(admin, "/api/console-config");
    assert_bearer_challenge(&cfg);
    assert!(!cfg.body.contains("ws://"));
    let cfg = get_authed(admin, "/api/console-config");
    assert_eq!(cfg.status, 200);
    assert_eq!(cfg.json()["url"].as_str(), Some(node.ws()), "{}", cfg.body);
    // the URL names this node's listener as the browser reaches it: the name in
    // `Host`, and the port moved by as much as `Host`'s differs from the bound one
    // (a published port mapping)
    let ws_port: i32 = node.ws().rsplit(':').next().unwrap().trim_end_matches("/ws").parse().unwrap();
    let seen = i32::from(admin.port()) + if ws_port > 1100 { -100 } else { 100 };
    let host = format!("localhost:{seen}");
    let mapped =
        http(admin, "GET", "/api/console-config", &[("Host", host.as_str()), ("Authorization", BEARER)], "");
    let expected = format!("ws://localhost:{}/ws", ws_port + seen - i32::from(admin.port()));
    assert_eq!(mapped.json()["url"].as_str(), Some(expected.as_str()), "{}", mapped.body);
    // a foreign page cannot read it with the token either
    let foreign = http(
        admin,
        "GET",
        "/api/console-config",
        &[("Origin", "http://evil.example"), ("Authorization", BEARER)],
        "",
    );
    assert_eq!(foreign.status, 403);
}

/// Needs the router to count sessions and messages (see the ops report):
/// `junction::observe::metrics::session_joined` in `Session::join`, and
/// `message_in`/`message_out` where messages are decoded and encoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_gauge_and_message_counters_follow_a_client() {
    let node = start("gauge");
    let admin = node.admin();
    let series = "junction_sessions{realm=\"realm1\",transport=\"websocket\",serializer=\"json\"}";
    let client = ops_support::Wamp::join(node.ws(), "realm1").await;
    let joined = format!("{series} 1\n");
    let m = tokio::task::spawn_blocking(move || {
        poll_authed(admin, "/metrics", Duration::from_secs(5), |r| r.body.contains(&joined))
    })
    .await
    .unwrap();
    assert!(m.body.contains("junction_messages_received_total{type=\"hello\"} 1\n"), "{}", m.body);
    assert!(m.body.contains("junction_messages_sent_total{type=\"welcome\"} 1\n"), "{}", m.body);
    drop(client);
    let left = format!("{series} 0\n");
    tokio::task::spawn_blocking(move || {
        poll_authed(admin, "/metrics", Duration::from_secs(5), |r| r.body.contains(&left))
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_routes_refusals_and_the_process_are_measured() {
    let node = start("measured");
    let admin = node.admin();
    let mut callee = ops_support::Wamp::join(node.ws(), "realm1").await;
    callee.register("com.example.add").await;
    let (seen, _invocations) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(callee.serve_sum(seen));
    let mut subscriber = ops_support::Wamp::join(node.ws(), "realm1").await;
    subscriber.subscribe("com.example.news").await;
    let mut caller = ops_support::Wamp::join(node.ws(), "realm1").await;
    let reply = caller.call("com.example.add", serde_json::json!({}), serde_json::json!([1, 2])).await;
    assert_eq!(reply[0], RESULT, "{reply}");
    let reply = caller.call("com.example.missing", serde_json::json!({}), serde_json::json!([])).await;
    assert_eq!(reply[0], ops_support::ERROR, "{reply}");
    let refused = ops_support::Wamp::try_join(node.ws(), "no.such.realm").await.err().expect("ABORT");
    assert_eq!(refused[2], "wamp.error.no_such_realm", "{refused}");

    let expected = [
        "junction_calls_total{outcome=\"result\"} 1\n",
        "junction_calls_total{outcome=\"no_such_procedure\"} 1\n",
        "junction_calls_total{outcome=\"canceled\"} 0\n",
        "junction_calls_in_flight 0\n",
        "junction_subscription_interest_lingering 0\n",
        "junction_registrations{realm=\"realm1\"} 1\n",
        "junction_subscriptions{realm=\"realm1\"} 1\n",
        "junction_sessions_refused_total{reason=\"no_such_realm\"} 1\n",
        "junction_sessions_refused_total{reason=\"max_sessions\"} 0\n",
        "# TYPE junction_raft_proposal_duration_seconds histogram",
        "junction_raft_proposal_failures_total{reason=\"no_quorum\"} 0\n",
        "# TYPE junction_link_reconnects_total counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_open_fds gauge",
        "# TYPE process_max_fds gauge",
    ];
    let m = blocking(move || {
        poll_authed(admin, "/metrics", Duration::from_secs(5), |r| {
            expected.iter().all(|e| r.body.contains(e))
        })
    })
    .await;
    for e in expected {
        assert!(m.body.contains(e), "/metrics lacks {e:?}:\n{}", m.body);
    }
    let value = |name: &str| -> f64 {
        let line = m.body.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_default();
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(-1.0)
    };
    assert!(value("process_resident_memory_bytes") > 1e6, "{}", m.body);
    assert!(value("process_cpu_seconds_total") > 0.0, "{}", m.body);
    assert!(value("process_open_fds") >= 5.0, "{}", m.body);
    let proposals = value("junction_raft_proposal_duration_seconds_count");
    assert!(proposals >= 1.0, "the registration went through Raft: {}", m.body);
    // Message types only in the direction they can travel.
    for impossible in [
        "junction_messages_received_total{type=\"welcome\"}",
        "junction_messages_received_total{type=\"event\"}",
        "junction_messages_received_total{type=\"result\"}",
        "junction_messages_sent_total{type=\"hello\"}",
        "junction_messages_sent_total{type=\"call\"}",
        "junction_messages_sent_total{type=\"yield\"}",
        "junction_messages_sent_total{type=\"other\"}",
    ] {
        assert!(!m.body.contains(impossible), "{impossible} is exposed:\n{}", m.body);
    }
    assert!(m.body.contains("junction_messages_received_total{type=\"yield\"} 1\n"), "{}", m.body);
    assert!(m.body.contains("junction_messages_sent_total{type=\"invocation\"} 1\n"), "{}", m.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_comes_back_counts_a_reconnect() {
    let dir = test_dir("reconnect");
    let (p1, p2) = (ops_support::free_port(), ops_support::free_port());
    let config = |id: u64, me: u16, peer: u16| {
        let path = dir.join(format!("node{id}.toml"));
        let text = format!(
            "[cluster]\nnode_id = {id}\nlisten = \"127.0.0.1:{me}\"\npeers = [\"127.0.0.1:{peer}\"]\n\
             bootstrap = {}\nvoters = 1\nephemeral = true\n",
            id == 1
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (c1, c2) = (config(1, p1, p2), config(2, p2, p1));
    let args = |c: &str| -> Vec<String> {
        ["--config", c].iter().chain(LISTENERS.iter()).map(|s| s.to_string()).collect()
    };
    let start = |tag: &str, a: &[String]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        Node::start(&dir, tag, &a, &[("JUNCTION_ADMIN_TOKEN", ADMIN_TOKEN)])
    };
    let (a1, a2) = (args(&c1), args(&c2));
    let node1 = start("node1", &a1);
    let node2 = start("node2", &a2);
    let admin = node1.admin();
    let has = |text: &'static str| {
        move || poll_authed(admin, "/metrics", Duration::from_secs(20), |r| r.body.contains(text))
    };
    // a subscription on node 1 is announced to node 2 over the link
    let mut client = ops_support::Wamp::join(node1.ws(), "realm1").await;
    client.subscribe("com.example.news").await;
    let m = blocking(has("junction_link_reconnects_total{peer=\"2\"} 0\n")).await;
    assert!(m.body.contains("junction_link_reconnects_total{peer=\"2\"} 0\n"), "{}", m.body);
    drop(node2);
    let _node2 = start("node2-again", &a2);
    let m = blocking(has("junction_link_reconnects_total{peer=\"2\"} 1\n")).await;
    assert!(m.body.contains("junction_link_reconnects_total{peer=\"2\"} 1\n"), "{}", m.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_draining_after_sigterm() {
    let dir = test_dir("drain");
    let cfg = dir.join("junction.toml");
    std::fs::write(&cfg, "[admin]\nlisten = \"127.0.0.1:0\"\ndrain_delay_ms = 1500\nmetrics_public = true\n")
        .unwrap();
    let mut node = Node::start(
        &dir,
        "node",
        &["--config", cfg.to_str().unwrap(), "--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0"],
        &[],
    );
    let admin = node.admin();
    let mut client = ops_support::Wamp::join(node.ws(), "realm1").await;
    assert_eq!(get(admin, "/readyz").status, 200);
    node.sigterm();
    let r = tokio::task::spawn_blocking(move || {
        poll(admin, "/readyz", Duration::from_secs(5), |r| r.status == 503)
    })
    .await
    .unwrap();
    assert_eq!(r.body, "draining\n");
    assert_eq!(get(admin, "/healthz").status, 200, "still alive while draining");
    assert!(get(admin, "/metrics").body.contains("junction_draining 1\n"));
    // After the drain delay the client is told to leave, and the process exits.
    let bye = client.recv().await;
    assert_eq!(bye[0], GOODBYE, "expected GOODBYE, got {bye}");
    assert_eq!(bye[2], "wamp.close.system_shutdown");
    client.send(serde_json::json!([GOODBYE, {}, "wamp.close.goodbye_and_out"])).await;
    let status = tokio::task::spawn_blocking(move || node.wait(Duration::from_secs(15))).await.unwrap();
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}");
}

#[test]
fn admin_address_flag() {
    let dir = test_dir("flag");
    let node = Node::start(&dir, "off", &["--admin", "", "--ws", "127.0.0.1:0", "--rawsocket", ""], &[]);
    assert!(node.admin.is_none(), "stdout {:?}", node.stdout);

    // An explicit address that is taken is an error, not a silent skip.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(["--admin", &addr, "--ws", "", "--rawsocket", ""])
        .output()
        .expect("run junction");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen for admin HTTP"), "{stderr}");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(["--admin", "nope"])
        .output()
        .expect("run junction");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--admin"));
}
