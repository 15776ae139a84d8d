"""Graceful shutdown fits its budget (issue #14): every step after SIGTERM is
bounded and the router logs the total at start, for checking against
Kubernetes' terminationGracePeriodSeconds. Here every step is made to take as
long as it may: a callee never answers its invocation (the drain timeout runs
out), a client never answers GOODBYE (the grace runs out), and the OTLP
collector accepts connections but never answers (the flush runs out). The
process must still exit, cleanly, within the budget it announced."""

import asyncio
import re
import signal
import socket
import time

import pytest

import wampraw
from conftest import Wamp, ALL_COMBOS
from raw_clients import raw_call, raw_on, raw_register

pytestmark = pytest.mark.timeout(90)

CONFIG = """
[admin]
listen = ""
drain_delay_ms = 300
[limits]
drain_timeout_ms = 1500
shutdown_grace_ms = 500
[[realms]]
name = "realm1"
"""


@pytest.fixture
def silent_collector():
    """A TCP port that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


async def test_a_graceful_shutdown_with_every_step_stalled_ends_within_its_budget(
        start_router, silent_collector, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", silent_collector)
    router = start_router(config=CONFIG)
    w = Wamp(router, ALL_COMBOS[0])
    try:
        callee = await raw_on(w)
        await raw_register(callee, "com.example.never")
        caller = await raw_on(w)
        await raw_call(caller, "com.example.never")
        inv = await callee.recv(10)
        assert inv[0] == wampraw.INVOCATION, inv
        log = lambda: re.sub(r"\x1b\[[0-9;]*m", "", router.log_path.read_text(errors="replace"))  # noqa: E731
        m = re.search(r"shutdown_budget_ms=(\d+)", log())
        assert m, "the budget is logged at start"
        budget = int(m.group(1)) / 1000
        assert budget >= 0.3 + 1.5 + 0.5 + 6, f"the budget counts every step, the OTLP flush too: {budget}"
        t0 = time.monotonic()
        router.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(router.proc.wait, budget + 10)
        took = time.monotonic() - t0
        assert code == 0, f"exit code {code}"
        assert took >= 1.5, f"the drain waited for the invocation: {took:.2f}s"
        assert took <= budget + 1.0, f"took {took:.2f}s, budget {budget:.2f}s"
        print(f"shutdown took {took:.2f}s of a {budget:.2f}s budget")
    finally:
        await w.close()
