# The `junction cluster` commands against a real 3-node cluster on 127.0.0.1, as
# an operator on a node's host runs them: the node taken from `--config` (its
# `[cluster] listen`) instead of `--node`, `--output json`, and the warnings printed
# (on stderr and in the JSON) when a change reduces fault tolerance:
# - transfer-leader while a voter is down (the cluster then tolerates no loss);
# - remove of a voter whose seat no learner can take (fewer voters than the
#   configured `voters`, and an even number of them).
#
# Waiting polls `junction cluster status`; nothing sleeps to synchronise.
import asyncio
import json
import os
import subprocess

import pytest

from cluster_helpers import Cluster, wait_until
from conftest import junction_bin

pytestmark = pytest.mark.timeout(120)


def junction(*args, timeout=40):
    """Runs `junction ARGS...` to completion (no cluster secret from the environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_")}
    return subprocess.run([str(junction_bin()), *args], capture_output=True, text=True, timeout=timeout, env=env)


def doc(r):
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"stdout is not JSON: {r.stdout!r}; stderr: {r.stderr}")


@pytest.fixture
def cluster(request):
    c = Cluster(f"test_cli_cluster_{request.node.name}", n=3, voters=3, lease_ms=1000)
    c.start()
    yield c
    crashed = c.stop()
    if crashed:
        pytest.fail("nodes died that the test did not kill: "
                    + ", ".join(f"node {n.node_id} exit {code} (log {n.log_path})" for n, code in crashed))


async def test_status_json_and_warnings_when_fault_tolerance_drops(cluster):
    c = cluster
    lead = await c.leader()
    victim = max(i for i in c.live() if i != lead.node_id)
    other = next(i for i in c.live() if i not in (lead.node_id, victim))

    # status: the node from the configuration (after the command), as JSON
    r = await asyncio.to_thread(junction, "cluster", "status", "--config", str(c[other].config_path),
                                "--output", "json")
    assert r.returncode == 0, r.stderr
    st = doc(r)
    assert st["node_id"] == other and st["leader_id"] == lead.node_id, st
    assert sorted(m["node_id"] for m in st["members"]) == [1, 2, 3], st
    assert {m["role"] for m in st["members"]} == {"voter"}, st

    c[victim].sigkill()
    live = [lead.node_id, other]
    await c.wait_status(lead.node_id, lambda s: victim in s.members and not s.members[victim].up, 20,
                        f"node {victim} reported down")

    # transfer-leader with a voter down: done, with a warning
    r = await asyncio.to_thread(junction, "--output", "json", "cluster", "transfer-leader",
                                "--config", str(c[lead.node_id].config_path))
    assert r.returncode == 0, r.stderr
    moved = doc(r)
    assert (moved["from"], moved["to"]) == (lead.node_id, other), moved
    assert any(f"voter {victim} down" in w and "no voter" in w for w in moved["warnings"]), moved
    assert f"junction: warning: voter {victim} down" in r.stderr, r.stderr

    async def new_leader():
        lead2 = await c.leader(live)
        return lead2 if lead2.node_id == other else None

    await wait_until(new_leader, 15, f"node {other} to lead")

    # remove the dead voter: 2 voters left (no learner to take the seat), fewer than
    # the 3 configured, and an even number
    r = await asyncio.to_thread(junction, "cluster", "remove", "--config", str(c[other].config_path),
                                "--id", str(victim))
    assert r.returncode == 0, r.stderr
    assert f"node {victim} removed" in r.stdout, r.stdout
    warnings = [l for l in r.stderr.splitlines() if l.startswith("junction: warning:")]
    assert any("leaves 2 voters" in w and "3 configured" in w for w in warnings), r.stderr
    assert any("even number" in w for w in warnings), r.stderr
    c[victim].killed = True

    async def removed():
        st = await c.status(other)
        members = {i for i, m in st.members.items() if m.role != "gone"}
        return st if members == set(live) else None

    await wait_until(removed, 20, f"node {victim} to leave the membership")

    # removing it again, as JSON: nothing to remove, so no warning
    r = await asyncio.to_thread(junction, "cluster", "remove", "--config", str(c[other].config_path),
                                "--id", str(victim), "--output", "json")
    assert r.returncode == 0, r.stderr
    again = doc(r)
    assert again["removed"] == victim and again["warnings"] == [], again
    assert "warning" not in r.stderr, r.stderr

    # a node that cannot be reached: exit 3, the error as JSON
    r = await asyncio.to_thread(junction, "cluster", "transfer-leader", "--node", c.grpc[victim],
                                "--output", "json")
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "cannot transfer leadership" in doc(r)["error"], r.stdout
