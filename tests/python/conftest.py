# Shared fixtures for the Junction interop suite (Autobahn|Python clients).
#
# - `router`: one Junction process per test module, started with port 0 for
#   WebSocket and RawSocket; the real addresses are read from its stdout
#   (lines "listening ..." then "ready").
# - `start_router`: start extra routers with custom flags and/or a TOML config.
# - `combo`: parametrizes a test over the six transport x serializer pairs;
#   `other_combo(combo)` is a pair with the other transport and serializer, and
#   `timed_combos` parametrizes `tcombo` over four pairs (both transports, json
#   and msgpack) for tests that spend wall time on timers.
# - `wamp`: connects Autobahn|Python ApplicationSessions (or raw clients, see
#   wampraw.py) to a router and cleans them up after the test.
import asyncio
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import ComponentConfig

import wampraw

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 20.0
JOIN_TIMEOUT = 20.0

SERIALIZERS = {
    "json": JsonSerializer,
    "msgpack": MsgPackSerializer,
    "cbor": CBORSerializer,
}
TRANSPORTS = ("websocket", "rawsocket")


def junction_bin():
    path = Path(os.environ.get("JUNCTION_BIN", "target/debug/junction"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


class RouterError(Exception):
    pass


class Router:
    """A running `junction` process and the addresses it listens on."""

    def __init__(self, args, log_path):
        self.args = list(args)
        self.log_path = Path(log_path)
        self.listeners = {}
        self.stdout_lines = []
        self._lines = queue.Queue()
        binary = junction_bin()
        if not binary.exists():
            raise RouterError(f"router binary {binary} does not exist (run cargo build --bins)")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=str(REPO_ROOT),
        )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _read_stdout(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)  # EOF

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RouterError(f"router did not print 'ready' within {READY_TIMEOUT}s; {self.describe()}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=10)
                raise RouterError(f"router exited with {self.proc.returncode} before 'ready'; {self.describe()}")
            if line.strip() == "ready":
                return
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "listening":
                kind, addr = parts[1], parts[2]
                if kind == "rawsocket" and addr.startswith("unix:"):
                    kind = "unix"
                self.listeners[kind] = addr

    def describe(self):
        return f"args={self.args} stdout={self.stdout_lines!r} stderr tail:\n{self.stderr_tail()}"

    def stderr_tail(self, n=4000):
        try:
            self._log.flush()
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")

    # --- addresses -------------------------------------------------------
    @property
    def ws_url(self):
        return self.listeners["websocket"]

    @property
    def ws_addr(self):
        u = urlparse(self.ws_url)
        return u.hostname, u.port

    @property
    def rs_addr(self):
        u = urlparse(self.listeners["rawsocket"])  # tcp://127.0.0.1:PORT
        return u.hostname, u.port

    @property
    def rs_url(self):
        host, port = self.rs_addr
        return f"rs://{host}:{port}"

    @property
    def unix_path(self):
        return self.listeners["unix"][len("unix:"):]

    # --- lifecycle -------------------------------------------------------
    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self._log.close()
        return self.proc.returncode


@dataclass(frozen=True)
class Combo:
    transport: str
    serializer: str

    @property
    def id(self):
        return f"{'ws' if self.transport == 'websocket' else 'rs'}-{self.serializer}"


ALL_COMBOS = [Combo(t, s) for t in TRANSPORTS for s in SERIALIZERS]


def pytest_generate_tests(metafunc):
    if "combo" in metafunc.fixturenames:
        metafunc.parametrize("combo", ALL_COMBOS, ids=[c.id for c in ALL_COMBOS])


def other_combo(combo):
    """A different transport *and* serializer than `combo`."""
    for c in ALL_COMBOS:
        if c.transport != combo.transport and c.serializer != combo.serializer:
            return c
    raise AssertionError("unreachable")


# A smaller set of combos for tests that spend wall time on timers: both
# transports, json and msgpack.
TIMED_COMBOS = [c for c in ALL_COMBOS if c.serializer in ("json", "msgpack")]
TIMED_IDS = [c.id for c in TIMED_COMBOS]
timed_combos = pytest.mark.parametrize("tcombo", TIMED_COMBOS, ids=TIMED_IDS)


@pytest.fixture(scope="module")
def router(tmp_path_factory, request):
    log = tmp_path_factory.mktemp("router") / f"{request.module.__name__}.stderr.log"
    r = Router(["--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0"], log)
    yield r
    crashed = not r.alive()
    code = r.stop()
    if crashed:
        pytest.fail(f"router exited during the module with code {code}; stderr tail:\n{r.stderr_tail()}")


@pytest.fixture
def ws_url(router):
    """ws://127.0.0.1:PORT/ws of the module's router."""
    return router.ws_url


@pytest.fixture
def rs_url(router):
    """rs://127.0.0.1:PORT of the module's router (RawSocket over TCP)."""
    return router.rs_url


@pytest.fixture
def start_router(tmp_path):
    """start_router(*extra_args, config=None) -> Router. `config` is TOML text."""
    started = []

    def start(*extra_args, config=None, listen=True):
        args = []
        if listen:
            args += ["--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0"]
        if config is not None:
            cfg = tmp_path / f"junction-{len(started)}.toml"
            cfg.write_text(config)
            args += ["--config", str(cfg)]
        args += list(extra_args)
        r = Router(args, tmp_path / f"router-{len(started)}.stderr.log")
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


# --------------------------------------------------------------------------
# Autobahn|Python sessions
# --------------------------------------------------------------------------


class JoinFailed(Exception):
    def __init__(self, details):
        super().__init__(f"session closed before join: {details.reason} {details.message}")
        self.reason = details.reason
        self.details = details


class TestSession(ApplicationSession):
    """ApplicationSession exposing join / leave / disconnect as futures."""

    __test__ = False  # not a pytest test class

    def __init__(self, config=None):
        super().__init__(config)
        loop = asyncio.get_running_loop()
        self.joined = loop.create_future()
        self.left = loop.create_future()
        self.disconnected = loop.create_future()
        self.welcome = None
        self.proto = None

    def onWelcome(self, welcome):
        self.welcome = welcome
        return None

    def onJoin(self, details):
        if not self.joined.done():
            self.joined.set_result(details)

    def onLeave(self, details):
        if not self.left.done():
            self.left.set_result(details)
        return super().onLeave(details)

    def onDisconnect(self):
        if not self.disconnected.done():
            self.disconnected.set_result(True)
        if not self.left.done():
            self.left.set_exception(ConnectionError("transport closed before the session was closed"))
            self.left.exception()  # mark retrieved
        return super().onDisconnect()

    def abort_transport(self):
        """Drop the TCP connection without GOODBYE / close handshake."""
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.abort()


def ticket_session(authid, ticket, challenges=None):
    """A TestSession class joining with ticket authentication as `authid`; each
    CHALLENGE is appended to `challenges` (method, extra) when a list is given."""

    class TicketSession(TestSession):
        __test__ = False

        def onConnect(self):
            self.join(self.config.realm, ["ticket"], authid)

        def onChallenge(self, challenge):
            if challenges is not None:
                challenges.append((challenge.method, dict(challenge.extra)))
            return ticket

    return TicketSession


async def connect_session(router, combo, realm="realm1", session_cls=TestSession, ssl=None):
    """Connect an Autobahn|Python session over combo's transport/serializer (over
    TLS with the `ssl` context, to a TLS listener) and wait until it has joined
    (raises JoinFailed on ABORT)."""
    loop = asyncio.get_running_loop()
    session = session_cls(ComponentConfig(realm=realm))
    ser = SERIALIZERS[combo.serializer]()
    if combo.transport == "websocket":
        factory = WampWebSocketClientFactory(lambda: session, url=router.ws_url, serializers=[ser])
        host, port = router.ws_addr
    else:
        factory = WampRawSocketClientFactory(lambda: session, serializer=ser)
        host, port = router.rs_addr
    tls = {} if ssl is None else {"ssl": ssl, "server_hostname": host}
    _, proto = await asyncio.wait_for(loop.create_connection(factory, host, port, **tls), JOIN_TIMEOUT)
    session.proto = proto
    done, _ = await asyncio.wait([session.joined, session.left, session.disconnected],
                                 timeout=JOIN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if session.joined.done():
        return session
    if session.left.done() and session.left.exception() is None:
        raise JoinFailed(session.left.result())
    if not done:
        session.abort_transport()
        raise asyncio.TimeoutError(f"session did not join within {JOIN_TIMEOUT}s ({combo.id})")
    raise ConnectionError(f"transport closed before join ({combo.id})")


class Wamp:
    """Per-test connection helper; everything it opens is closed at teardown."""

    def __init__(self, router, combo):
        self.router = router
        self.combo = combo
        self._sessions = []
        self._raws = []

    async def session(self, combo=None, realm="realm1", router=None, session_cls=TestSession):
        s = await connect_session(router or self.router, combo or self.combo, realm=realm, session_cls=session_cls)
        self._sessions.append(s)
        return s

    async def raw(self, combo=None, router=None, **kw):
        combo = combo or self.combo
        router = router or self.router
        if combo.transport == "websocket":
            host, port = router.ws_addr
            c = await wampraw.RawWebSocketClient.connect(router.ws_url, host, port, combo.serializer, **kw)
        else:
            host, port = router.rs_addr
            c = await wampraw.RawSocketClient.connect(host, port, combo.serializer, **kw)
        self._raws.append(c)
        return c

    async def close(self):
        for s in self._sessions:
            try:
                if s.is_attached():
                    s.leave()
                    await asyncio.wait_for(asyncio.shield(s.disconnected), 5)
            except Exception:
                pass
            s.abort_transport()
        for c in self._raws:
            try:
                await c.close()
            except Exception:
                pass


@pytest.fixture
async def wamp(router, request):
    combo = request.getfixturevalue("combo") if "combo" in request.fixturenames else ALL_COMBOS[0]
    w = Wamp(router, combo)
    yield w
    await w.close()


def uri(prefix, request_or_name):
    """A URI unique to the calling test, so tests sharing a router never collide."""
    import re
    import uuid

    name = request_or_name if isinstance(request_or_name, str) else request_or_name.node.name
    name = re.sub(r"[^0-9a-z_]+", "_", name.lower()).strip("_")
    return f"{prefix}.{name}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique(request):
    """unique('com.example') -> 'com.example.<test name>.<random>'"""
    return lambda prefix="com.example": uri(prefix, request)


def assert_same(actual, expected, path="$"):
    """Deep equality that also checks types (True is not 1, 1.0 is not 1)."""
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)), f"{path}: expected list, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected dict, got {actual!r}"
        assert set(actual) == set(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for k in expected:
            assert_same(actual[k], expected[k], f"{path}.{k}")
    elif isinstance(expected, (bytes, bytearray)):
        assert isinstance(actual, (bytes, bytearray)), f"{path}: expected bytes, got {type(actual).__name__} {actual!r}"
        assert bytes(actual) == bytes(expected), f"{path}: bytes differ"
    else:
        assert type(actual) is type(expected), f"{path}: type {type(actual).__name__} != {type(expected).__name__} ({actual!r} vs {expected!r})"
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
