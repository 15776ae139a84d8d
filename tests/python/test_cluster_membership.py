# Cluster membership with real `junction` processes on 127.0.0.1 (a fresh
# cluster per test, every node with its own data directory):
# - the voters are the lowest node ids that are up: a node with a lower id that
#   joins late takes the seat of the highest voter, which becomes a learner;
# - a learner down longer than cluster.forget_after_ms leaves the membership, a
#   voter down as long does not;
# - `junction cluster transfer-leader` hands leadership to the voter asked for (or
#   the best one), and `junction cluster remove` of the leader hands over first;
# - a voter id that comes back with an empty log is refused (the process exits)
#   until it has been removed, then it joins again;
# - a cluster node without cluster.data_dir refuses to start (exit 2).
#
# Waiting polls `junction cluster status`; nothing sleeps to synchronise.
import asyncio
import os
import shutil
import subprocess

import pytest

from cluster_helpers import Cluster, wait_until
from conftest import junction_bin

pytestmark = pytest.mark.timeout(120)


def junction(*args, config=None, timeout=30):
    """Runs `junction [--config FILE] ARGS...` to completion."""
    cmd = [str(junction_bin())] + (["--config", str(config)] if config else []) + list(args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_CLUSTER_SECRET")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def clusters(request):
    """make(n=3, **kw) -> a Cluster, not started; stopped at teardown."""
    made = []

    def make(n=3, **kw):
        name = f"test_cluster_membership_{request.node.name}_{len(made)}"
        c = Cluster(name, n=n, **kw)
        made.append(c)
        return c

    yield make
    crashed = []
    for c in made:
        crashed += c.stop()
    if crashed:
        pytest.fail("nodes died that the test did not kill: "
                    + ", ".join(f"node {n.node_id} exit {code} (log {n.log_path})" for n, code in crashed))


def roles(st):
    return {i: m.role for i, m in st.members.items() if m.role != "gone"}


def peers_of(cluster, i):
    return [cluster.grpc[j] for j in sorted(cluster.grpc) if j != i]


async def wait_roles(cluster, want, ids=None, timeout=20.0):
    """Waits until the leader (of `ids`) reports exactly the roles `want`."""
    async def probe():
        lead = await cluster.leader(ids)
        return lead if roles(lead) == want else None

    return await wait_until(probe, timeout, f"roles {want}")


async def wait_leader(cluster, want, timeout=10.0):
    async def probe():
        lead = await cluster.leader()
        return lead if lead.node_id == want else None

    return await wait_until(probe, timeout, f"node {want} to lead")


async def test_voters_are_the_lowest_ids_that_are_up(clusters):
    c = clusters(n=4, voters=3)
    # Join order 1, 4, 3, 2: by join order, 4 would keep a seat.
    for i in (1, 4, 3):
        await asyncio.to_thread(c._start_node, i, peers_of(c, i))
    await wait_roles(c, {1: "voter", 3: "voter", 4: "voter"})
    await asyncio.to_thread(c._start_node, 2, peers_of(c, 2))
    # 2 is promoted, then 4 (the highest) is demoted: a scale-down to 3 loses no voter.
    await wait_roles(c, {1: "voter", 2: "voter", 3: "voter", 4: "learner"})


async def test_a_learner_down_longer_than_forget_after_is_removed_a_voter_is_not(clusters):
    c = clusters(n=4, voters=3, lease_ms=1000, extra="forget_after_ms = 3000\n")
    c.start()
    await wait_roles(c, {1: "voter", 2: "voter", 3: "voter", 4: "learner"})
    c[3].sigkill()
    c[4].sigkill()

    async def forgotten():
        lead = await c.leader([1, 2])
        return lead if 4 not in lead.members else None

    lead = await wait_until(forgotten, 20.0, "learner 4 to be removed")
    # Down as long as 4 was: voter 3 keeps its membership (an operator removes voters).
    assert roles(lead) == {1: "voter", 2: "voter", 3: "voter"}, lead.text
    assert not lead.members[3].up, lead.text


async def test_transfer_leader_and_remove_the_leader(clusters):
    c = clusters(n=3)
    c.start()
    old = (await c.leader()).node_id
    to = max(i for i in c.live() if i != old)
    r = await asyncio.to_thread(junction, "cluster", "transfer-leader", "--node", c.grpc[old], "--to", str(to))
    assert r.returncode == 0, r.stderr
    assert f"from node {old} to node {to}" in r.stdout, r.stdout
    await wait_leader(c, to)

    # Without --to: the lowest-id voter that is up, asked through a follower.
    best = min(i for i in c.live() if i != to)
    follower = next(i for i in c.live() if i != to)
    r = await asyncio.to_thread(junction, "cluster", "transfer-leader", "--node", c.grpc[follower])
    assert r.returncode == 0, r.stderr
    await wait_leader(c, best)

    # Removing the leader hands leadership over first, then removes it.
    r = await asyncio.to_thread(junction, "cluster", "remove", "--node", c.grpc[best], "--id", str(best))
    assert r.returncode == 0, r.stderr
    rest = [i for i in c.live() if i != best]
    lead = await wait_roles(c, {i: "voter" for i in rest}, ids=rest)
    assert lead.node_id != best
    c[best].killed = True  # removed: its process is no longer part of the cluster
    await asyncio.to_thread(c[best].stop, 3)
    await c.sync(rest)


async def test_a_voter_back_with_an_empty_log_is_refused_until_removed(clusters):
    c = clusters(n=3)
    c.start()
    await wait_roles(c, {1: "voter", 2: "voter", 3: "voter"})
    c[3].sigkill()
    await c.wait_status(1, lambda st: 3 in st.members and not st.members[3].up, 15.0, "node 3 declared down")
    await asyncio.to_thread(c[3].proc.wait, 10)
    shutil.rmtree(c.data_dir(3))

    # Refused; and refused again on the next start, although its log received
    # entries from the leader meanwhile.
    for _ in range(2):
        r = await asyncio.to_thread(junction, config=c.log_dir / "node3.toml", timeout=60)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "refused this node" in r.stderr and "empty Raft log" in r.stderr, r.stderr
        assert "junction cluster remove --id 3" in r.stderr, r.stderr
        assert "ready" not in r.stdout

    r = await asyncio.to_thread(junction, "cluster", "remove", "--node", c.grpc[1], "--id", "3")
    assert r.returncode == 0, r.stderr
    await wait_roles(c, {1: "voter", 2: "voter"}, ids=[1, 2])
    shutil.rmtree(c.data_dir(3), ignore_errors=True)
    await asyncio.to_thread(c._start_node, 3, peers_of(c, 3))
    await wait_roles(c, {1: "voter", 2: "voter", 3: "voter"})


def test_a_cluster_node_without_a_data_dir_refuses_to_start(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text('[websocket]\nlisten = "127.0.0.1:0"\n[rawsocket]\nlisten = ""\n[cluster]\nnode_id = 2\n'
                    'listen = "127.0.0.1:1"\npeers = ["127.0.0.1:2"]\n')
    r = junction(config=path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "cluster.data_dir is required" in r.stderr and "cluster.ephemeral" in r.stderr, r.stderr
