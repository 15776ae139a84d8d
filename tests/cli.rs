//! The administration commands of the `junction` binary, run as a user runs them
//! against real nodes on 127.0.0.1: `session list` / `session kill` over the admin
//! API (token from the environment or `[admin] token_file`, address from `--admin`
//! or the configuration, `localhost:PORT`), their errors and exit codes (401, 404,
//! unreachable), `config check`, `cluster status` with the node taken from the
//! configuration, `--output json` for results and errors, `--config` after the
//! command, and the logs (no ANSI colours off a terminal, openraft's INFO lines
//! only when asked for).

mod ops_support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ops_support::{ADMIN_TOKEN, GOODBYE, Node, free_port, test_dir};
use serde_json::Value;

const LISTENERS: [&str; 6] = ["--admin", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0"];

/// Runs `junction ARGS` to completion with only `envs` of the junction variables set.
fn junction(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.args(args);
    for var in [
        "JUNCTION_ADMIN",
        "JUNCTION_ADMIN_TOKEN",
        "JUNCTION_ADMIN_TOKEN_FILE",
        "JUNCTION_CONFIG",
        "JUNCTION_CLUSTER_SECRET",
        "JUNCTION_CLUSTER_SECRET_FILE",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied());
    cmd.output().expect("run junction")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout as one JSON document.
fn json(o: &Output) -> Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// Runs `junction ARGS` until `ok(output)` holds (a state the node reaches by itself).
fn poll(args: &[&str], envs: &[(&str, &str)], ok: impl Fn(&Output) -> bool) -> Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = junction(args, envs);
        if ok(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "never matched: {}\n{}", stdout(&out), stderr(&out));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_list_and_kill_through_the_admin_api() {
    let dir = test_dir("cli-sessions");
    let node = Node::start(&dir, "node", &LISTENERS, &[("JUNCTION_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let admin = node.admin().to_string();
    let mut client = ops_support::Wamp::join(node.ws(), "realm1").await;
    let id = client.session;
    let token = [("JUNCTION_ADMIN_TOKEN", ADMIN_TOKEN)];

    let admin2 = admin.clone();
    let list = tokio::task::spawn_blocking(move || {
        junction(&["session", "list", "--admin", &admin2, "--output", "json"], &token)
    })
    .await
    .unwrap();
    assert_eq!(code(&list), 0, "{}", stderr(&list));
    let sessions = json(&list)["sessions"].clone();
    let me = sessions.as_array().and_then(|l| l.iter().find(|s| s["session"] == id)).cloned();
    assert_eq!(me.unwrap_or_else(|| panic!("{id} not in {sessions}"))["realm"], "realm1");

    // text; --realm filters; the address may be a host name
    let port = node.admin().port();
    let text =
        junction(&["session", "list", "--admin", &format!("localhost:{port}"), "--realm", "realm1"], &token);
    assert_eq!(code(&text), 0, "{}", stderr(&text));
    let out = stdout(&text);
    assert!(
        out.starts_with("SESSION") && out.contains(&id.to_string()) && out.contains("1 session\n"),
        "{out}"
    );
    let none =
        junction(&["--output", "json", "session", "list", "--admin", &admin, "--realm", "nope"], &token);
    assert_eq!(json(&none)["sessions"], Value::Array(vec![]));

    // refusals: no token here, a wrong token (exit 1), no session (exit 1), nobody there (exit 3)
    let anon = junction(&["session", "list", "--admin", &admin], &[]);
    assert_eq!(code(&anon), 1);
    assert!(
        stderr(&anon).contains("none is configured here") && stderr(&anon).contains("JUNCTION_ADMIN_TOKEN")
    );
    let wrong = junction(
        &["session", "list", "--admin", &admin, "--output", "json"],
        &[("JUNCTION_ADMIN_TOKEN", "nope")],
    );
    assert_eq!(code(&wrong), 1);
    let err = json(&wrong);
    assert!(err["error"].as_str().is_some_and(|e| e.contains("refused the token")), "{err}");
    assert_eq!(err["status"], 401);
    let missing = junction(&["session", "kill", "1", "--admin", &admin], &token);
    assert_eq!(code(&missing), 1);
    assert!(stderr(&missing).contains("no session 1 on this node"), "{}", stderr(&missing));
    let closed = format!("127.0.0.1:{}", free_port());
    let away = junction(&["session", "list", "--admin", &closed, "--output", "json"], &token);
    assert_eq!(code(&away), 3);
    assert!(json(&away)["error"].as_str().is_some_and(|e| e.contains("unreachable")));
    let away_text = junction(&["session", "kill", "5", "--admin", &closed], &token);
    assert_eq!(code(&away_text), 3);
    assert!(stderr(&away_text).contains("unreachable"), "{}", stderr(&away_text));

    // the kill, with its reason and message
    let args = [
        "session",
        "kill",
        &id.to_string(),
        "--admin",
        &admin,
        "--reason",
        "com.example.bye",
        "--message",
        "cli test",
        "--output",
        "json",
    ]
    .map(str::to_owned);
    let kill = tokio::task::spawn_blocking(move || {
        junction(&args.iter().map(String::as_str).collect::<Vec<_>>(), &token)
    })
    .await
    .unwrap();
    assert_eq!(code(&kill), 0, "{}", stderr(&kill));
    assert_eq!(json(&kill)["killed"], id);
    let bye = client.recv().await;
    assert_eq!(bye[0], GOODBYE, "{bye}");
    assert_eq!((bye[2].as_str(), bye[1]["message"].as_str()), (Some("com.example.bye"), Some("cli test")));
    let admin3 = admin.clone();
    tokio::task::spawn_blocking(move || {
        poll(&["session", "list", "--admin", &admin3], &token, |o| stdout(o).contains("0 sessions"))
    })
    .await
    .unwrap();
}

#[test]
fn session_commands_take_address_and_token_from_the_config_given_after_the_command() {
    let dir = test_dir("cli-session-config");
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let admin_port = free_port();
    let config = dir.join("junction.toml");
    std::fs::write(
        &config,
        format!("[admin]\nlisten = \"localhost:{admin_port}\"\ntoken_file = \"{}\"\n", token_file.display()),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let _node = Node::start(
        &dir,
        "node",
        &["--config", cfg, "--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0"],
        &[],
    );
    let list = junction(&["session", "list", "--config", cfg, "--output", "json"], &[]);
    assert_eq!(code(&list), 0, "{}", stderr(&list));
    assert_eq!(json(&list)["sessions"], Value::Array(vec![]));
    // the environment wins over the file, as for the server
    let env = junction(&["session", "list", "--config", cfg], &[("JUNCTION_ADMIN_TOKEN", "other")]);
    assert_eq!(code(&env), 1, "{}", stderr(&env));
    // the admin server disabled: nothing to talk to (exit 2)
    let off = dir.join("off.toml");
    std::fs::write(&off, "[admin]\nlisten = \"\"\n").unwrap();
    let disabled = junction(&["session", "list", "--config", off.to_str().unwrap()], &[]);
    assert_eq!(code(&disabled), 2);
    assert!(stderr(&disabled).contains("--admin"), "{}", stderr(&disabled));
}

#[test]
fn config_check_reports_every_problem_with_its_location() {
    let dir = test_dir("cli-config-check");
    let good = dir.join("good.toml");
    std::fs::write(&good, "[[realms]]\nname = \"realm1\"\n[websocket]\nlisten = \"localhost:8080\"\n")
        .unwrap();
    let ok = junction(&["config", "check", good.to_str().unwrap()], &[]);
    assert_eq!((code(&ok), stdout(&ok).as_str()), (0, "ok\n"), "{}", stderr(&ok));
    let ok_json = junction(&["--output", "json", "config", "check", good.to_str().unwrap()], &[]);
    assert_eq!(json(&ok_json)["ok"], true);

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[realms]]\nname = \"a b\"\n\n[limits]\nmax_message_size = 10\n\n[admin]\ntoken_file = \"/nonexistent/token\"\n\n\
         [websocket.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n\n\
         [rawsocket.tls]\ncert = \"/nonexistent/raw.pem\"\nkey = \"/nonexistent/key.pem\"\n",
    )
    .unwrap();
    let out = junction(&["config", "check", bad.to_str().unwrap()], &[]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    let path = bad.display().to_string();
    for (line, what) in [
        (1, "realms[0].name"),
        (4, "limits.max_message_size"),
        (10, "cert.pem"),
        (7, "admin.token_file"),
        (14, "raw.pem"),
    ] {
        assert!(err.contains(&format!("{path}:{line}: ")) && err.contains(what), "{what} at {line}: {err}");
    }
    assert!(err.contains("5 problems"), "{err}");
    let j = junction(&["config", "check", bad.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(code(&j), 2);
    let doc = json(&j);
    assert_eq!(doc["ok"], false);
    assert!(doc["error"].is_string());
    assert_eq!(doc["errors"].as_array().map(Vec::len), Some(5), "{doc}");
    let sections: Vec<&str> =
        doc["errors"].as_array().unwrap().iter().filter_map(|e| e["section"].as_str()).collect();
    assert_eq!(sections, ["realms[0]", "limits", "admin", "websocket.tls", "rawsocket.tls"], "in file order");
    assert_eq!(doc["errors"][1]["section"], "limits");
    assert_eq!(doc["errors"][1]["line"], 4);

    // the same file refuses to start the router, with the first of those problems
    let start = junction(&["--config", bad.to_str().unwrap()], &[]);
    assert_eq!(code(&start), 2);
    assert!(stderr(&start).contains("realms[0].name"), "{}", stderr(&start));

    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "[limits]\nmax_message_size = \n").unwrap();
    let parse = junction(&["config", "check", broken.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(code(&parse), 2);
    assert_eq!(json(&parse)["errors"][0]["line"], 2);
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[limits]\nmax_msg = 1\n").unwrap();
    let u = junction(&["config", "check", unknown.to_str().unwrap()], &[]);
    assert_eq!(code(&u), 2);
    assert!(stderr(&u).contains("max_msg"), "{}", stderr(&u));
    let absent = junction(&["config", "check", dir.join("absent.toml").to_str().unwrap()], &[]);
    assert_eq!(code(&absent), 2);
    assert!(stderr(&absent).contains("cannot read"), "{}", stderr(&absent));
}

#[test]
fn cluster_status_asks_the_configured_node_and_prints_json() {
    let dir = test_dir("cli-cluster-status");
    let grpc = free_port();
    let config = dir.join("junction.toml");
    std::fs::write(&config, format!("[cluster]\nnode_id = 1\nlisten = \"localhost:{grpc}\"\n")).unwrap();
    let cfg = config.to_str().unwrap();
    let node = Node::start(
        &dir,
        "node",
        &["--config", cfg, "--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0", "--admin", ""],
        &[],
    );

    let text = poll(&["cluster", "status", "--config", cfg], &[], |o| stdout(o).contains(" leader"));
    assert!(stdout(&text).starts_with("node:      1 "), "{}", stdout(&text));
    let j = junction(&["cluster", "status", "--node", &format!("localhost:{grpc}"), "--output", "json"], &[]);
    assert_eq!(code(&j), 0, "{}", stderr(&j));
    let doc = json(&j);
    assert_eq!(
        (doc["node_id"].as_u64(), doc["state"].as_str(), doc["leader_id"].as_u64()),
        (Some(1), Some("leader"), Some(1))
    );
    assert_eq!(doc["members"][0]["role"], "voter");
    let add = junction(&["--output", "json", "cluster", "add", "--config", cfg, "--id", "1", "--voter"], &[]);
    assert_eq!(code(&add), 0, "{}", stderr(&add));
    assert_eq!(json(&add)["result"], "node 1 is a voter already");
    let not_member = junction(&["cluster", "add", "--config", cfg, "--id", "9", "--output", "json"], &[]);
    assert_eq!(code(&not_member), 1);
    assert!(json(&not_member)["error"].as_str().is_some_and(|e| e.contains("not a member")));

    // no node to ask: bad flags (2); nobody at the address: unreachable (3)
    let nothing = junction(&["cluster", "status"], &[]);
    assert_eq!(code(&nothing), 2);
    assert!(stderr(&nothing).contains("--node"), "{}", stderr(&nothing));
    let away = format!("127.0.0.1:{}", free_port());
    let gone = junction(&["cluster", "status", "--node", &away, "--output", "json"], &[]);
    assert_eq!(code(&gone), 3, "{}", stdout(&gone));
    assert!(json(&gone)["error"].as_str().is_some_and(|e| e.contains(&away)));
    let gone_text = junction(&["cluster", "remove", "--node", &away, "--id", "2"], &[]);
    assert_eq!(code(&gone_text), 3);
    assert!(stderr(&gone_text).contains("cannot remove node 2"), "{}", stderr(&gone_text));

    // the node's log: no colours in a file, openraft's routine INFO lines left out
    let log = std::fs::read_to_string(&node.stderr_path).unwrap();
    assert!(log.contains(" INFO ") && !log.contains('\u{1b}'), "{log}");
    assert!(!log.lines().any(|l| l.contains("INFO") && l.contains("openraft")), "{log}");
}

#[test]
fn rust_log_brings_openraft_info_back() {
    let dir = test_dir("cli-rust-log");
    let node = Node::start(&dir, "node", &LISTENERS, &[("RUST_LOG", "info")]);
    let log = std::fs::read_to_string(&node.stderr_path).unwrap();
    assert!(log.lines().any(|l| l.contains("INFO") && l.contains("openraft")), "{log}");
}

#[test]
fn bad_flags_exit_2_also_as_json() {
    let text = junction(&["session", "kill"], &[]);
    assert_eq!(code(&text), 2);
    assert!(stderr(&text).contains("<ID>"), "{}", stderr(&text));
    let j = junction(&["session", "kill", "--output", "json"], &[]);
    assert_eq!(code(&j), 2);
    assert!(json(&j)["error"].as_str().is_some_and(|e| e.contains("<ID>")), "{}", stdout(&j));
    let bad_addr = junction(&["--ws", "no-port-here"], &[]);
    assert_eq!(code(&bad_addr), 2);
    assert!(stderr(&bad_addr).contains("--ws"), "{}", stderr(&bad_addr));
    let help = junction(&["cluster", "transfer-leader", "--help"], &[]);
    assert_eq!(code(&help), 0);
    let h = stdout(&help);
    assert!(
        h.contains("Exit codes: 0 done; 1") && h.contains("[default: text]") && h.contains("--config"),
        "{h}"
    );
}
