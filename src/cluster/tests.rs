//! Tests of the cluster layer: the state machine (apply, snapshot/restore, NodeDown
//! purge), the redb log store (openraft's storage test suite, persistence), and an
//! in-process 3-node cluster over real gRPC on 127.0.0.1 (election, forwarded
//! writes, a learner, leader loss, NodeDown by lease, a minority refusing writes,
//! leadership transfer, an empty voter refused until removed).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{EntryPayload, RaftSnapshotBuilder};

use super::config::ClusterConfig;
use super::log_store::LogStore;
use super::node::Cluster;
use super::state_machine::StateMachine;
use super::types::{Entry, Request, TypeConfig};
use crate::dealer::{Callee, InvokePolicy};
use crate::ids::{NodeId, SessionId};
use crate::link::{LinkHandler, LinkMsg};
use crate::table::{Command, Outcome, RoutingTable};
use crate::wamp::uri::MatchPolicy;

/// A callee of `node` joining the shared registration of `procedure` (one per node).
fn sub(node: u64, procedure: &str) -> Command {
    reg(node, 1000 + node, procedure)
}

fn reg(node: u64, session: u64, procedure: &str) -> Command {
    Command::Register {
        realm: "r".into(),
        callee: Callee { node: NodeId(node), session: SessionId(session), disclose_caller: false },
        procedure: procedure.into(),
        policy: MatchPolicy::Exact,
        invoke: InvokePolicy::RoundRobin,
        now_ms: 1,
    }
}

fn entry(index: u64, req: Request) -> Entry {
    Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(req),
    }
}

/// The table as a canonical JSON value (maps sorted), for equality checks.
fn canonical(t: &RoutingTable) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or(serde_json::Value::Null)
}

fn callees(t: &RoutingTable, procedure: &str) -> Vec<u64> {
    t.realm("r")
        .and_then(|r| r.registrations.lookup(procedure))
        .map(|r| r.callees.iter().map(|c| c.node.0).collect())
        .unwrap_or_default()
}

/// The nodes with a callee of `procedure`, sorted.
fn interest(t: &RoutingTable, procedure: &str) -> Vec<u64> {
    let mut nodes = callees(t, procedure);
    nodes.sort_unstable();
    nodes
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "junction-{name}-{}-{}",
        std::process::id(),
        crate::ids::random_id()
    ));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

#[tokio::test]
async fn state_machine_applies_routes_and_liveness() {
    let table = Arc::new(RwLock::new(RoutingTable::default()));
    let mut sm = StateMachine::open(table.clone(), None).expect("state machine");
    let shared = sm.shared();
    let mut down = shared.subscribe_node_down();
    let out = sm
        .apply(vec![
            entry(1, Request::Announce { node: 1, addr: "a:1".into(), incarnation: 10 }),
            entry(2, Request::Announce { node: 2, addr: "a:2".into(), incarnation: 20 }),
            entry(3, Request::Route(sub(1, "t"))),
            entry(4, Request::Route(sub(2, "t"))),
            entry(5, Request::Route(reg(1, 11, "p"))),
            entry(6, Request::Route(reg(2, 21, "p"))),
        ])
        .await
        .expect("apply");
    assert_eq!(out.len(), 6);
    assert_eq!(out[2], out[3], "one subscription id for the topic cluster-wide");
    assert!(matches!(out[4], Outcome::Registered(Ok(_))));
    assert_eq!(shared.applied_index(), Some(6));
    {
        let t = table.read().expect("lock");
        assert_eq!(interest(&t, "t"), vec![1, 2]);
        assert_eq!(callees(&t, "p"), vec![1, 2]);
    }

    // A stale Down (old incarnation) changes nothing; the right one purges node 2.
    sm.apply(vec![entry(7, Request::Down { node: 2, incarnation: 19 })]).await.expect("apply");
    assert_eq!(callees(&table.read().expect("lock"), "p"), vec![1, 2]);
    sm.apply(vec![entry(8, Request::Down { node: 2, incarnation: 20 })]).await.expect("apply");
    assert_eq!(callees(&table.read().expect("lock"), "p"), vec![1]);
    assert_eq!(interest(&table.read().expect("lock"), "t"), vec![1]);
    let ev = down.try_recv().expect("a NodeDown event");
    assert_eq!((ev.node, ev.incarnation, ev.log_index), (2, 20, 8));
    assert_eq!(shared.node(2).map(|n| n.up), Some(false));

    // Node 1 restarts: its new incarnation purges what the old one had.
    sm.apply(vec![entry(9, Request::Announce { node: 1, addr: "a:1".into(), incarnation: 11 })])
        .await
        .expect("apply");
    assert!(callees(&table.read().expect("lock"), "p").is_empty());
    let ev = down.try_recv().expect("a purge event for the old incarnation");
    assert_eq!((ev.node, ev.incarnation), (1, 10));
    // Same incarnation again: no purge.
    sm.apply(vec![
        entry(10, Request::Route(reg(1, 12, "q"))),
        entry(11, Request::Announce { node: 1, addr: "a:1".into(), incarnation: 11 }),
    ])
    .await
    .expect("apply");
    assert_eq!(callees(&table.read().expect("lock"), "q"), vec![1]);
    assert!(down.try_recv().is_err());

    // Router-proposed NodeDown and Forget purge and report too.
    sm.apply(vec![entry(12, Request::Route(Command::NodeDown { node: NodeId(1) }))]).await.expect("apply");
    assert!(callees(&table.read().expect("lock"), "q").is_empty());
    assert_eq!(down.try_recv().map(|e| e.node).ok(), Some(1));
    sm.apply(vec![entry(13, Request::Forget { node: 2 })]).await.expect("apply");
    assert!(shared.node(2).is_none());
    assert_eq!(down.try_recv().map(|e| e.node).ok(), Some(2));
}

#[tokio::test]
async fn snapshot_round_trips_and_restores_equal() {
    let table = Arc::new(RwLock::new(RoutingTable::default()));
    let mut sm = StateMachine::open(table.clone(), None).expect("state machine");
    let mut cmds = vec![entry(1, Request::Announce { node: 1, addr: "a:1".into(), incarnation: 1 })];
    for i in 0..50u64 {
        cmds.push(entry(2 + 2 * i, Request::Route(sub(1 + i % 3, &format!("t.{i}")))));
        cmds.push(entry(3 + 2 * i, Request::Route(reg(1 + i % 3, 100 + i, &format!("p.{}", i % 7)))));
    }
    sm.apply(cmds).await.expect("apply");
    let snap = sm.get_snapshot_builder().await.build_snapshot().await.expect("snapshot");
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(101));

    // Install on a fresh state machine: the same table, ids, liveness and indexes.
    let table2 = Arc::new(RwLock::new(RoutingTable::default()));
    let mut sm2 = StateMachine::open(table2.clone(), None).expect("state machine");
    let current = sm.get_current_snapshot().await.expect("get").expect("a current snapshot");
    sm2.install_snapshot(&current.meta, current.snapshot).await.expect("install");
    assert_eq!(canonical(&table.read().expect("lock")), canonical(&table2.read().expect("lock")));
    assert_eq!(sm2.shared().nodes(), sm.shared().nodes());
    assert_eq!(sm2.applied_state().await.expect("state").0, snap.meta.last_log_id);
    assert_eq!(sm2.shared().applied_index(), Some(101));
    // Both keep producing the same ids.
    let a = sm.apply(vec![entry(102, Request::Route(sub(2, "new")))]).await.expect("apply");
    let b = sm2.apply(vec![entry(102, Request::Route(sub(2, "new")))]).await.expect("apply");
    assert_eq!(a, b);
}

#[tokio::test]
async fn data_dir_survives_a_restart() {
    let dir = temp_dir("restart");
    let table = Arc::new(RwLock::new(RoutingTable::default()));
    {
        let mut log = LogStore::open(&dir).expect("log");
        let mut sm = StateMachine::open(table.clone(), Some(&dir)).expect("sm");
        let vote = openraft::Vote::new(3, 1);
        log.save_vote(&vote).await.expect("vote");
        sm.apply(vec![entry(1, Request::Route(sub(1, "t")))]).await.expect("apply");
        sm.get_snapshot_builder().await.build_snapshot().await.expect("snapshot");
    }
    let table2 = Arc::new(RwLock::new(RoutingTable::default()));
    let mut log = LogStore::open(&dir).expect("log reopens");
    let mut sm = StateMachine::open(table2.clone(), Some(&dir)).expect("sm reopens");
    assert_eq!(log.read_vote().await.expect("vote"), Some(openraft::Vote::new(3, 1)));
    assert_eq!(sm.applied_state().await.expect("state").0.map(|l| l.index), Some(1));
    assert_eq!(canonical(&table.read().expect("lock")), canonical(&table2.read().expect("lock")));
    std::fs::remove_dir_all(&dir).ok();
}

struct MemBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, ()> for MemBuilder {
    async fn build(&self) -> Result<((), LogStore, StateMachine), openraft::StorageError<u64>> {
        let log = LogStore::in_memory();
        let sm = StateMachine::open(Arc::default(), None)
            .map_err(|e| openraft::StorageIOError::write(openraft::AnyError::error(e.to_string())))?;
        Ok(((), log, sm))
    }
}

struct DiskBuilder(std::path::PathBuf);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, ()> for DiskBuilder {
    async fn build(&self) -> Result<((), LogStore, StateMachine), openraft::StorageError<u64>> {
        let dir = self.0.join(crate::ids::random_id().to_string());
        let err = |e: String| openraft::StorageIOError::write(openraft::AnyError::error(e));
        let log = LogStore::open(&dir).map_err(|e| err(e.to_string()))?;
        let sm = StateMachine::open(Arc::default(), Some(&dir)).map_err(|e| err(e.to_string()))?;
        Ok(((), log, sm))
    }
}

#[test]
fn openraft_storage_suite_in_memory() {
    Suite::test_all(MemBuilder).expect("openraft storage suite (in memory)");
}

#[test]
fn openraft_storage_suite_on_disk() {
    let dir = temp_dir("suite");
    let res = Suite::test_all(DiskBuilder(dir.clone()));
    std::fs::remove_dir_all(&dir).ok();
    res.expect("openraft storage suite (redb on disk)");
}

// ---------------------------------------------------------------------------
// In-process cluster over gRPC.

struct TestNode {
    cluster: Arc<Cluster>,
    table: Arc<RwLock<RoutingTable>>,
}

fn node_cfg(id: u64, peers: Vec<String>) -> ClusterConfig {
    ClusterConfig {
        node_id: id,
        listen: "127.0.0.1:0".into(),
        peers,
        heartbeat_ms: 50,
        election_timeout_ms: 300,
        lease_ms: 1000,
        propose_timeout_ms: 2000,
        join_timeout_ms: 20_000,
        ephemeral: true,
        ..ClusterConfig::default()
    }
}

async fn start(cfg: ClusterConfig) -> TestNode {
    let table = Arc::new(RwLock::new(RoutingTable::default()));
    let cluster =
        Cluster::start(&cfg, table.clone(), tonic::service::Routes::default()).await.expect("node starts");
    TestNode { cluster, table }
}

/// Polls `f` every 20 ms for up to `secs` seconds.
async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn leader_of(nodes: &[&TestNode]) -> Option<u64> {
    nodes.iter().find(|n| n.cluster.is_leader()).map(|n| n.cluster.id())
}

fn voters(n: &TestNode) -> Vec<u64> {
    n.cluster.raft().metrics().borrow().membership_config.membership().voter_ids().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_forward_fail_over_and_refuse_without_quorum() {
    let n1 = start(ClusterConfig { bootstrap: true, ..node_cfg(1, vec![]) }).await;
    let seed = n1.cluster.addr().to_string();
    let n2 = start(node_cfg(2, vec![seed.clone()])).await;
    let n3 = start(node_cfg(3, vec![seed.clone()])).await;
    let all = [&n1, &n2, &n3];
    eventually(10, "three voters", || all.iter().all(|n| voters(n) == vec![1, 2, 3])).await;
    assert_eq!(leader_of(&all), Some(1));

    // A fourth node joins as a learner: the cluster has its 3 voters.
    let n4 = start(node_cfg(4, vec![n2.cluster.addr().to_string()])).await;
    eventually(5, "node 4 is a learner", || {
        let m = n1.cluster.raft().metrics().borrow().membership_config.clone();
        m.membership().learner_ids().any(|l| l == 4)
    })
    .await;
    assert_eq!(voters(&n4), vec![1, 2, 3]);

    // Propose on a follower: forwarded to the leader, applied here before returning.
    let out = n2.cluster.propose(Request::Route(sub(2, "a"))).await.expect("forwarded write");
    assert!(matches!(out, Outcome::Registered(Ok(_))));
    assert_eq!(interest(&n2.table.read().expect("lock"), "a"), vec![2], "read-your-writes on the follower");
    let out = n3.cluster.propose(Request::Route(reg(3, 30, "p"))).await.expect("write from node 3");
    assert!(matches!(out, Outcome::Registered(Ok(_))));
    let out = n4.cluster.propose(Request::Route(reg(4, 40, "p"))).await.expect("write from the learner");
    assert!(matches!(out, Outcome::Registered(Ok(_))));
    n1.cluster.propose(Request::Route(sub(1, "a"))).await.expect("write on the leader");
    let everyone = [&n1, &n2, &n3, &n4];
    eventually(5, "all tables equal", || {
        let first = canonical(&n1.table.read().expect("lock"));
        everyone.iter().all(|n| canonical(&n.table.read().expect("lock")) == first)
    })
    .await;
    assert_eq!(callees(&n1.table.read().expect("lock"), "p"), vec![3, 4]);

    // Status answers over gRPC.
    let text = super::status(n2.cluster.addr(), Default::default()).await.expect("status");
    assert!(text.contains("leader:    1"), "{text}");
    assert!(text.contains("learner"), "{text}");

    // Kill the leader: a new one is elected, writes keep working, and the old
    // leader's entries are purged by NodeDown within the lease.
    let mut down2 = n2.cluster.subscribe_node_down();
    n1.cluster.shutdown().await;
    let survivors = [&n2, &n3];
    eventually(10, "a new leader", || leader_of(&survivors).is_some()).await;
    let out = n3.cluster.propose(Request::Route(sub(3, "b"))).await.expect("write after fail-over");
    assert!(matches!(out, Outcome::Registered(Ok(_))));
    let started = Instant::now();
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match down2.recv().await {
                Ok(e) if e.node == 1 => return Some(e),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
    .expect("NodeDown for the old leader");
    assert_eq!(ev.incarnation, n1.cluster.incarnation());
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(interest(&n2.table.read().expect("lock"), "a"), vec![2], "node 1's interest purged");

    // Leave: node 4 is removed from the membership.
    let leader = leader_of(&survivors).expect("leader");
    let leader_node = if leader == 2 { &n2 } else { &n3 };
    let reply = super::membership::handle_leave(&leader_node.cluster, 4).await;
    assert!(matches!(reply.result, Some(super::proto::leave_reply::Result::LogIndex(_))), "{reply:?}");
    n4.cluster.shutdown().await;

    // Cut the last node off from the majority: it refuses writes within the timeout.
    let (gone, alone) = if leader == 2 { (&n2, &n3) } else { (&n3, &n2) };
    gone.cluster.shutdown().await;
    let started = Instant::now();
    let err = alone.cluster.propose(Request::Route(sub(alone.cluster.id(), "c"))).await;
    let took = started.elapsed();
    let msg = err.expect_err("a minority must refuse").to_string();
    assert!(msg.contains("no quorum"), "{msg}");
    assert!(took < Duration::from_millis(3500), "refused after {took:?}");
    alone.cluster.shutdown().await;
}

#[tokio::test]
async fn a_lone_node_is_a_one_node_cluster() {
    let table = Arc::new(RwLock::new(RoutingTable::default()));
    let c = Cluster::start(&ClusterConfig::single(), table.clone(), tonic::service::Routes::default())
        .await
        .expect("one-node cluster");
    assert!(c.is_leader());
    assert_eq!(c.local_addr(), None, "no gRPC server without cluster.listen");
    let out = c.propose(Request::Route(sub(1, "x"))).await.expect("write");
    assert!(matches!(out, Outcome::Registered(Ok(_))));
    assert_eq!(interest(&table.read().expect("lock"), "x"), vec![1]);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_catches_up_from_a_snapshot() {
    let cfg = |id: u64, peers: Vec<String>| ClusterConfig { snapshot_logs: 10, ..node_cfg(id, peers) };
    let n1 = start(ClusterConfig { bootstrap: true, ..cfg(1, vec![]) }).await;
    for i in 0..40u64 {
        n1.cluster.propose(Request::Route(reg(1, 100 + i, &format!("p.{}", i % 5)))).await.expect("write");
    }
    eventually(5, "log purged after a snapshot", || {
        n1.cluster.raft().metrics().borrow().purged.is_some_and(|p| p.index > 5)
    })
    .await;
    let n2 = start(cfg(2, vec![n1.cluster.addr().to_string()])).await;
    assert!(n2.cluster.raft().metrics().borrow().snapshot.is_some(), "installed a snapshot");
    eventually(5, "tables equal", || {
        canonical(&n1.table.read().expect("lock")) == canonical(&n2.table.read().expect("lock"))
    })
    .await;
    assert_eq!(callees(&n2.table.read().expect("lock"), "p.0").len(), 8);
    n2.cluster.shutdown().await;
    n1.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rejoins_with_a_fresh_incarnation() {
    let base = temp_dir("rejoin");
    let cfg = |id: u64, peers: Vec<String>| ClusterConfig {
        data_dir: Some(base.join(id.to_string())),
        ..node_cfg(id, peers)
    };
    let n1 = start(ClusterConfig { bootstrap: true, ..cfg(1, vec![]) }).await;
    let seed = n1.cluster.addr().to_string();
    let n2 = start(cfg(2, vec![seed.clone()])).await;
    let n3 = start(cfg(3, vec![seed.clone()])).await;
    eventually(10, "three voters", || voters(&n1) == vec![1, 2, 3]).await;
    n3.cluster.propose(Request::Route(reg(3, 30, "p"))).await.expect("register on node 3");
    assert_eq!(callees(&n1.table.read().expect("lock"), "p"), vec![3]);
    let old = n3.cluster.incarnation();
    let old_addr = n3.cluster.addr().to_string();
    let mut events = n1.cluster.subscribe_node_down();
    let killed = Instant::now();
    n3.cluster.shutdown().await;
    drop(n3);

    // Nothing listens on its port any more: NodeDown comes well before the 2 s lease.
    let ev = tokio::time::timeout(Duration::from_secs(3), events.recv()).await.ok().and_then(Result::ok);
    let took = killed.elapsed();
    eprintln!("NodeDown {took:?} after the node stopped");
    assert_eq!(ev.map(|e| (e.node, e.incarnation)), Some((3, old)));
    assert!(took < Duration::from_millis(1900), "NodeDown took {took:?}");

    // Same id and data directory, new process (incarnation) and a new port.
    let n3 = start(cfg(3, vec![seed])).await;
    assert_ne!(n3.cluster.incarnation(), old);
    assert_ne!(n3.cluster.addr(), old_addr);
    assert!(events.try_recv().is_err(), "already purged: no second purge");
    assert!(callees(&n1.table.read().expect("lock"), "p").is_empty());
    assert_eq!(voters(&n3), vec![1, 2, 3]);
    assert_eq!(n1.cluster.node_addr(3).as_deref(), Some(n3.cluster.addr()));
    n3.cluster.propose(Request::Route(reg(3, 31, "p"))).await.expect("node 3 writes again");
    eventually(5, "node 2 sees it", || callees(&n2.table.read().expect("lock"), "p") == vec![3]).await;
    for n in [&n1, &n2, &n3] {
        n.cluster.shutdown().await;
    }
    std::fs::remove_dir_all(&base).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retiring_node_is_purged_at_once() {
    let n1 = start(ClusterConfig { bootstrap: true, lease_ms: 5000, ..node_cfg(1, vec![]) }).await;
    let seed = n1.cluster.addr().to_string();
    let n2 = start(ClusterConfig { lease_ms: 5000, ..node_cfg(2, vec![seed]) }).await;
    n2.cluster.propose(Request::Route(reg(2, 20, "p"))).await.expect("register");
    let mut events = n1.cluster.subscribe_node_down();
    let t = Instant::now();
    n2.cluster.retire().await;
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv()).await.ok().and_then(Result::ok);
    assert_eq!(ev.map(|e| e.node), Some(2));
    assert!(t.elapsed() < Duration::from_secs(2), "long before the 5 s lease");
    assert!(callees(&n1.table.read().expect("lock"), "p").is_empty());
    n1.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_on_request_and_an_empty_voter_is_refused_until_removed() {
    let n1 = start(ClusterConfig { bootstrap: true, ..node_cfg(1, vec![]) }).await;
    let seed = n1.cluster.addr().to_string();
    let n2 = start(node_cfg(2, vec![seed.clone()])).await;
    let n3 = start(node_cfg(3, vec![seed.clone()])).await;
    eventually(10, "three voters", || [&n1, &n2, &n3].iter().all(|n| voters(n) == vec![1, 2, 3])).await;

    // Asked through a follower, the leader hands over to node 3.
    let new = super::transfer::transfer(&n2.cluster, Some(3)).await.expect("transfer");
    assert_eq!(new, 3);
    eventually(5, "node 3 leads", || leader_of(&[&n1, &n2, &n3]) == Some(3)).await;
    n1.cluster.propose(Request::Route(sub(1, "t"))).await.expect("a write after the transfer");

    // Node 2 restarts in memory: a voter with an empty log is refused at once.
    n2.cluster.shutdown().await;
    drop(n2);
    let table = Arc::new(RwLock::new(RoutingTable::default()));
    let refused =
        Cluster::start(&node_cfg(2, vec![seed.clone()]), table, tonic::service::Routes::default()).await;
    match refused {
        Err(super::ClusterError::Refused(m)) => assert!(m.contains("empty Raft log"), "{m}"),
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("an empty voter joined"),
    }

    // Once removed, it joins again as a new member and takes the free seat.
    super::membership::remove(&n1.cluster, 2).await.expect("remove node 2");
    let n2 = start(node_cfg(2, vec![seed])).await;
    eventually(10, "node 2 votes again", || voters(&n3) == vec![1, 2, 3]).await;
    for n in [&n1, &n2, &n3] {
        n.cluster.shutdown().await;
    }
}

/// Commit latency on loopback (run with `--ignored --nocapture`): p50/p99 of
/// proposals on the leader and forwarded from a follower, in memory and on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn commit_latency() {
    for disk in [false, true] {
        let base = temp_dir("latency");
        let cfg = |id: u64, peers: Vec<String>| ClusterConfig {
            data_dir: disk.then(|| base.join(id.to_string())),
            ..node_cfg(id, peers)
        };
        let n1 = start(ClusterConfig { bootstrap: true, ..cfg(1, vec![]) }).await;
        let seed = n1.cluster.addr().to_string();
        let n2 = start(cfg(2, vec![seed.clone()])).await;
        let n3 = start(cfg(3, vec![seed])).await;
        eventually(10, "three voters", || voters(&n3) == vec![1, 2, 3]).await;
        for (name, node) in [("leader", &n1), ("follower", &n2)] {
            let mut times = Vec::new();
            for i in 0..300u64 {
                let t = Instant::now();
                node.cluster
                    .propose(Request::Route(reg(2, 1000 + i, &format!("{name}.{i}"))))
                    .await
                    .expect("write");
                times.push(t.elapsed());
            }
            times.sort();
            eprintln!(
                "disk={disk} {name}: p50 {:?} p99 {:?} max {:?}",
                times[times.len() / 2],
                times[times.len() * 99 / 100],
                times[times.len() - 1]
            );
        }
        for n in [&n1, &n2, &n3] {
            n.cluster.shutdown().await;
        }
        std::fs::remove_dir_all(&base).ok();
    }
}

#[tokio::test]
#[ignore = "measurement, not a check"]
async fn commit_latency_single() {
    let table = Arc::new(RwLock::new(RoutingTable::default()));
    let c = Cluster::start(&ClusterConfig::single(), table, tonic::service::Routes::default())
        .await
        .expect("start");
    let mut times = Vec::new();
    for i in 0..300u64 {
        let t = Instant::now();
        c.propose(Request::Route(reg(1, 1000 + i, &format!("p.{i}")))).await.expect("write");
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!("single: p50 {:?} p99 {:?}", times[150], times[297]);
}

// Mutual TLS: a node's id is bound to its certificate.

/// A cluster CA writing PEM files under `dir`.
struct TestCa {
    dir: std::path::PathBuf,
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new(dir: std::path::PathBuf, name: &str) -> TestCa {
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).expect("CA");
        std::fs::write(dir.join("ca.pem"), issuer.pem()).expect("write CA");
        TestCa { dir, issuer }
    }

    /// A certificate for 127.0.0.1 whose CN is `cn`; returns `[cluster.tls]`.
    fn issue(&self, cn: &str) -> super::config::ClusterTls {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.subject_alt_names = vec![rcgen::SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let (cert_path, key_path) = (self.dir.join(format!("{cn}.crt")), self.dir.join(format!("{cn}.key")));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        super::config::ClusterTls { cert: cert_path, key: key_path, ca: self.dir.join("ca.pem") }
    }
}

/// MessagePack of a Raft request, as the gRPC payloads carry it.
fn payload<T: serde::Serialize>(v: &T) -> super::proto::RaftPayload {
    super::proto::RaftPayload {
        payload: super::convert::encode("test payload", v).expect("encodes"),
        sent_ms: 0,
    }
}

/// Asserts that a gRPC call was refused with `PERMISSION_DENIED`.
fn denied<T>(r: Result<tonic::Response<T>, tonic::Status>, what: &str) {
    match r {
        Err(s) if s.code() == tonic::Code::PermissionDenied => {}
        Err(s) => panic!("{what}: expected PERMISSION_DENIED, got {s:?}"),
        Ok(_) => panic!("{what}: accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutual_tls_a_certificate_speaks_only_for_the_node_it_names() {
    use super::proto::raft_client::RaftClient;
    use super::proto::{ClientWriteRequest, JoinRequest, StatusRequest};
    use super::secure::Credentials;
    use tokio_stream::wrappers::ReceiverStream;

    let dir = temp_dir("mtls-ids");
    let ca = TestCa::new(dir.join("ca"), "Cluster CA");
    let tls = |id: u64| Some(ca.issue(&format!("node-{id}")));
    let n1 = start(ClusterConfig { bootstrap: true, tls: tls(1), ..node_cfg(1, vec![]) }).await;
    let n2 = start(ClusterConfig { tls: tls(2), ..node_cfg(2, vec![n1.cluster.addr().to_string()]) }).await;
    eventually(10, "two voters over mutual TLS", || voters(&n1) == vec![1, 2] && voters(&n2) == vec![1, 2])
        .await;
    // Node 2 forwards its own writes to the leader with its own certificate.
    let out = n2.cluster.propose(Request::Route(reg(2, 20, "com.legit"))).await.expect("forwarded write");
    assert!(matches!(out, Outcome::Registered(Ok(_))));

    // An intruder holding a valid certificate of the cluster CA, for node 3.
    let intruder = ClusterConfig { tls: tls(3), ..node_cfg(3, vec![]) };
    let creds = Credentials::from_config(&intruder).expect("credentials");
    let channel = creds.endpoint(n1.cluster.addr()).expect("endpoint").connect().await.expect("TLS connects");
    let mut client = RaftClient::new(channel);

    let join = |id| JoinRequest { node_id: id, addr: "127.0.0.1:1".into(), incarnation: 7, empty_log: false };
    denied(client.join(join(2)).await, "join claiming member 2");
    denied(client.join(join(4)).await, "join claiming new node 4");
    let vote = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(99, 2), None);
    denied(client.vote(payload(&vote)).await, "vote as node 2");
    let append = openraft::raft::AppendEntriesRequest::<super::types::TypeConfig> {
        vote: openraft::Vote::new_committed(99, 2),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    denied(client.append_entries(payload(&append)).await, "append as 2");
    let announce = Request::Announce { node: 2, addr: "127.0.0.1:1".into(), incarnation: 9 };
    let write = ClientWriteRequest { request: payload(&announce).payload, timeout_ms: 1000 };
    denied(client.client_write(write).await, "announce node 2");
    let forged = Request::Route(reg(2, 20, "com.forged"));
    let write = ClientWriteRequest { request: payload(&forged).payload, timeout_ms: 1000 };
    denied(client.client_write(write.clone()).await, "register on node 2");

    // The same on the streams: the stream opens, the request on it is refused.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(payload(&append)).await.expect("queued");
    let mut replies = client.append_stream(ReceiverStream::new(rx)).await.expect("opens").into_inner();
    denied(replies.message().await.map(tonic::Response::new), "append as 2 on a stream");
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(write).await.expect("queued");
    let mut replies = client.write_stream(ReceiverStream::new(rx)).await.expect("opens").into_inner();
    denied(replies.message().await.map(tonic::Response::new), "register on node 2 on a stream");

    // Requests claiming no node id need only a certificate of the CA.
    client.status(StatusRequest {}).await.expect("status with any cluster certificate");
    assert_eq!(voters(&n1), vec![1, 2], "membership unchanged");
    assert!(callees(&n1.table.read().expect("lock"), "com.forged").is_empty());

    // A certificate naming no node id speaks for no node.
    let nameless = ClusterConfig { tls: Some(ca.issue("127.0.0.1")), ..node_cfg(5, vec![]) };
    let creds = Credentials::from_config(&nameless).expect("credentials");
    let channel = creds.endpoint(n1.cluster.addr()).expect("endpoint").connect().await.expect("connects");
    let mut vote_client = RaftClient::new(channel);
    let vote = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(99, 5), None);
    denied(vote_client.vote(payload(&vote)).await, "nameless vote");

    n2.cluster.shutdown().await;
    n1.cluster.shutdown().await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutual_tls_a_link_stream_speaks_only_for_the_node_its_certificate_names() {
    use super::link::pb::link_client::LinkClient;
    use super::link::pb::{Batch, Frame};
    use super::secure::Credentials;

    let dir = temp_dir("mtls-link");
    let ca = TestCa::new(dir.join("ca"), "Cluster CA");
    let cfg = ClusterConfig { bootstrap: true, tls: Some(ca.issue("node-1")), ..node_cfg(1, vec![]) };
    let (data_path, routes) = super::runtime::DataPath::new(&cfg);
    let cluster = Cluster::start(&cfg, Arc::default(), routes).await.expect("node 1 starts");
    let _links = data_path.connect(&cluster, Arc::new(Ignore));
    let addr = cluster.addr().to_string();

    // A valid certificate of the cluster CA, for node 3.
    let intruder = ClusterConfig { tls: Some(ca.issue("node-3")), ..node_cfg(3, vec![]) };
    let creds = Credentials::from_config(&intruder).expect("credentials");
    let stream_as = |batches: Vec<u64>| {
        let creds = creds.clone();
        let addr = addr.clone();
        async move {
            let channel = creds.endpoint(&addr).expect("endpoint").connect().await.expect("TLS connects");
            let batches: Vec<Batch> = batches
                .into_iter()
                .map(|from_node| Batch { from_node, frames: Vec::<Frame>::new(), epoch: 0, first_seq: 0 })
                .collect();
            let mut responses = LinkClient::new(channel)
                .stream(tokio_stream::iter(batches))
                .await
                .expect("stream opens")
                .into_inner();
            responses.message().await.expect_err("the stream is refused").code()
        }
    };
    assert_eq!(stream_as(vec![2]).await, tonic::Code::PermissionDenied, "speaking for node 2");
    assert_eq!(stream_as(vec![3, 2]).await, tonic::Code::PermissionDenied, "switching to node 2");

    // A certificate of the cluster CA naming no node opens no stream at all.
    let nameless = ClusterConfig { tls: Some(ca.issue("127.0.0.1")), ..node_cfg(5, vec![]) };
    let creds = Credentials::from_config(&nameless).expect("credentials");
    let channel = creds.endpoint(&addr).expect("endpoint").connect().await.expect("TLS connects");
    let refused = LinkClient::new(channel).stream(tokio_stream::iter(Vec::<Batch>::new())).await;
    assert_eq!(refused.map(|_| ()).map_err(|s| s.code()), Err(tonic::Code::PermissionDenied));

    cluster.retire().await;
    std::fs::remove_dir_all(dir).ok();
}

/// A link handler that drops what arrives: the link's own checks need no router.
struct Ignore;

impl LinkHandler for Ignore {
    fn on_link(&self, _: NodeId, _: LinkMsg) {}
    fn node_lost(&self, _: NodeId) {}
    fn link_up(&self, _: NodeId) {}
    fn stream_ended(&self, _: NodeId) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_from_a_follower_are_committed_in_batches_each_answered() {
    use crate::cluster::Replicate;
    let n1 = start(ClusterConfig { bootstrap: true, ..node_cfg(1, vec![]) }).await;
    let seed = n1.cluster.addr().to_string();
    let n2 = start(node_cfg(2, vec![seed.clone()])).await;
    let n3 = start(node_cfg(3, vec![seed])).await;
    eventually(10, "three voters", || voters(&n3) == vec![1, 2, 3]).await;
    let follower = if n2.cluster.is_leader() { &n3 } else { &n2 };
    let node = follower.cluster.id();
    let before = follower.cluster.applied_index().unwrap_or(0);
    let n = 300u64;
    let commits = (0..n).map(|i| {
        let c = follower.cluster.clone();
        tokio::spawn(async move { c.commit(reg(node, 5000 + i, &format!("batched.{i}"))).await })
    });
    let outcomes = futures_util::future::join_all(commits).await;
    let mut ids = std::collections::HashSet::new();
    for o in outcomes {
        match o.expect("task") {
            Ok(Outcome::Registered(Ok(id))) => assert!(ids.insert(id), "each REGISTER gets its own id"),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(ids.len() as u64, n);
    let entries = follower.cluster.applied_index().unwrap_or(0) - before;
    assert!(entries < n, "{n} commands took {entries} log entries: not batched");
    let applied = |t: &TestNode| {
        let table = t.table.read().unwrap();
        (0..n).all(|i| callees(&table, &format!("batched.{i}")) == vec![node])
    };
    assert!(applied(follower), "applied on the proposing node when answered");
    eventually(10, "applied on every node", || [&n1, &n2, &n3].iter().all(|t| applied(t))).await;
    for t in [&n1, &n2, &n3] {
        t.cluster.shutdown().await;
    }
}

#[test]
fn a_batch_speaks_for_every_node_its_commands_name() {
    let one = Request::Batch(vec![reg(2, 1, "a"), reg(2, 2, "b")]);
    assert_eq!(one.origins().into_iter().collect::<Vec<_>>(), vec![2]);
    let mixed = Request::Batch(vec![reg(2, 1, "a"), reg(3, 2, "b")]);
    assert_eq!(mixed.origins().into_iter().collect::<Vec<_>>(), vec![2, 3], "each origin is checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_elected_after_the_old_ones_silence_is_not_fenced_once_a_quorum_acknowledged_it() {
    use super::replicate::Replicate;
    // the fence (three quarters of the lease) is shorter than an election: the new
    // leader's last contact is stale when it takes over. A quorum that acknowledged
    // it proves contact at once, not at the next liveness tick (250 ms here).
    let cfg = |id, peers| ClusterConfig {
        heartbeat_ms: 250,
        election_timeout_ms: 300,
        lease_ms: 400,
        ..node_cfg(id, peers)
    };
    let n1 = start(ClusterConfig { bootstrap: true, ..cfg(1, vec![]) }).await;
    let seed = n1.cluster.addr().to_string();
    let n2 = start(cfg(2, vec![seed.clone()])).await;
    let n3 = start(cfg(3, vec![seed])).await;
    let all = [&n1, &n2, &n3];
    eventually(10, "three voters", || all.iter().all(|n| voters(n) == vec![1, 2, 3])).await;
    n1.cluster.shutdown().await;
    let survivors = [&n2, &n3];
    eventually(10, "a new leader", || leader_of(&survivors).is_some()).await;
    let leader = if n2.cluster.is_leader() { &n2 } else { &n3 };
    let id = leader.cluster.id();
    leader.cluster.propose(Request::Route(sub(id, "after"))).await.expect("committed by the new majority");
    assert!(leader.cluster.is_leader());
    assert!(!leader.cluster.fenced(), "a leader a quorum just acknowledged is fenced");
}
