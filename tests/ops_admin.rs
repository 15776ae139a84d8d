//! The admin HTTP server of the `junction` binary: `/healthz`, `/readyz` (also
//! while draining on SIGTERM), `/metrics` in the Prometheus and OpenMetrics
//! formats, `/api/status`, `/api/sessions` and killing a session, the session
//! gauge and message counters following a real WebSocket client, and the
//! `--admin` flag's address handling.

mod ops_support;

use std::time::Duration;

use ops_support::{GOODBYE, Node, get, http, poll, test_dir};
use serde_json::Value;

fn start(name: &str) -> Node {
    let dir = test_dir(name);
    Node::start(
        &dir,
        "node",
        &["--admin", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0"],
        &[],
    )
}

#[test]
fn healthz_readyz_and_metrics_answer() {
    let node = start("health");
    let admin = node.admin();
    let h = get(admin, "/healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let r = get(admin, "/readyz");
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));

    let m = get(admin, "/metrics");
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

    let om = http(admin, "GET", "/metrics", &[("Accept", "application/openmetrics-text; version=1.0.0")], "");
    assert_eq!(om.status, 200);
    assert!(om.header("content-type").is_some_and(|c| c.starts_with("application/openmetrics-text")));
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(om.body.contains("# TYPE junction_messages_received counter"));
}

#[test]
fn status_api_reports_node_and_cluster() {
    let node = start("status");
    // openraft's metrics may trail the state machine by a moment.
    let s = poll(node.admin(), "/api/status", Duration::from_secs(5), |r| {
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

    let list = tokio::task::spawn_blocking(move || get(admin, "/api/sessions")).await.unwrap();
    assert_eq!(list.status, 200);
    let list = list.json();
    let entry = list.as_array().and_then(|l| l.iter().find(|s| s["session"] == id)).cloned();
    let entry = entry.unwrap_or_else(|| panic!("session {id} not listed: {list}"));
    assert_eq!(entry["realm"], "realm1");
    assert_eq!(entry["serializer"], "json");
    assert_eq!(entry["authrole"], "anonymous");
    let other_realm =
        tokio::task::spawn_blocking(move || get(admin, "/api/sessions?realm=nope")).await.unwrap();
    assert_eq!(other_realm.json(), Value::Array(vec![]));

    let status = tokio::task::spawn_blocking(move || get(admin, "/api/status")).await.unwrap();
    assert_eq!(status.json()["sessions"]["realm1"], 1);

    let missing = tokio::task::spawn_blocking(move || http(admin, "POST", "/api/sessions/1/kill", &[], ""))
        .await
        .unwrap();
    assert_eq!(missing.status, 404);

    let body = r#"{"reason": "wamp.close.killed", "message": "bye from the test"}"#;
    let path = format!("/api/sessions/{id}/kill");
    let killed = tokio::task::spawn_blocking(move || http(admin, "POST", &path, &[], body)).await.unwrap();
    assert_eq!(killed.status, 200, "{}", killed.body);
    assert_eq!(killed.json()["killed"], id);
    let bye = client.recv().await;
    assert_eq!(bye[0], GOODBYE, "expected GOODBYE, got {bye}");
    assert_eq!(bye[2], "wamp.close.killed");
    assert_eq!(bye[1]["message"], "bye from the test");

    let empty = tokio::task::spawn_blocking(move || {
        poll(admin, "/api/sessions", Duration::from_secs(5), |r| r.body.trim() == "[]")
    })
    .await
    .unwrap();
    assert_eq!(empty.status, 200);
}

/// Needs the router to count sessions and messages (see the ops report):
/// `junction::ops::metrics::session_joined` in `Session::join`, and
/// `message_in`/`message_out` where messages are decoded and encoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_gauge_and_message_counters_follow_a_client() {
    let node = start("gauge");
    let admin = node.admin();
    let series = "junction_sessions{realm=\"realm1\",transport=\"websocket\",serializer=\"json\"}";
    let client = ops_support::Wamp::join(node.ws(), "realm1").await;
    let joined = format!("{series} 1\n");
    let m = tokio::task::spawn_blocking(move || {
        poll(admin, "/metrics", Duration::from_secs(5), |r| r.body.contains(&joined))
    })
    .await
    .unwrap();
    assert!(m.body.contains("junction_messages_received_total{type=\"hello\"} 1\n"), "{}", m.body);
    assert!(m.body.contains("junction_messages_sent_total{type=\"welcome\"} 1\n"), "{}", m.body);
    drop(client);
    let left = format!("{series} 0\n");
    tokio::task::spawn_blocking(move || {
        poll(admin, "/metrics", Duration::from_secs(5), |r| r.body.contains(&left))
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_draining_after_sigterm() {
    let dir = test_dir("drain");
    let cfg = dir.join("junction.toml");
    std::fs::write(&cfg, "[admin]\nlisten = \"127.0.0.1:0\"\ndrain_delay_ms = 1500\n").unwrap();
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
