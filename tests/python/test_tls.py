"""TLS interop: Autobahn|Python over `wss://` and RawSocket over TLS (all three
serializers), authentication over TLS (ticket, and client certificates as
authmethod `tls`), certificate reload without a restart, and TLS configuration
errors. Certificates are made at test time (tls_certs.py)."""

import asyncio
import ssl

import pytest
from autobahn.wamp.exception import ApplicationError

from conftest import ALL_COMBOS, JoinFailed, RouterError, TestSession, connect_session
from test_auth import session_for
from tls_certs import CA, served_serial

pytestmark = pytest.mark.timeout(40)


def tls_config(server, ca=None, client_auth="optional", extra=""):
    client = f'client_ca = "{ca.path}"\nclient_auth = "{client_auth}"\n' if ca else ""
    table = f'cert = "{server.cert}"\nkey = "{server.key}"\n{client}'
    return f"""
[websocket]
listen = "127.0.0.1:0"
[websocket.tls]
{table}
[rawsocket]
listen = "127.0.0.1:0"
[rawsocket.tls]
{table}
{extra}
"""


REALMS = """
[[realms]]
name = "realm1"

[[realms]]
name = "secure"
[realms.auth.ticket.principals.joe]
role = "user"
ticket = "secret123"
[realms.auth.wampcra.principals.peter]
role = "operator"
secret = "prq7+YkJ1/KlW1X0YczMHw=="
[realms.auth.tls]
role = "device"
[realms.auth.tls.principals.client01]
role = "backend"
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CA(d)
    return {
        "dir": d,
        "ca": ca,
        "server": ca.issue("127.0.0.1", "server"),
        "client01": ca.issue("client01", "client01", server=False),
        "client02": ca.issue("client02", "client02", server=False),
        "other_ca": CA(d / "other", name="Other CA"),
    }


@pytest.fixture(scope="module")
def tls_router(pki, tmp_path_factory):
    from conftest import Router

    d = tmp_path_factory.mktemp("tls-router")
    cfg = d / "junction.toml"
    cfg.write_text(tls_config(pki["server"], pki["ca"]) + REALMS)
    r = Router(["--config", str(cfg)], d / "router.log")
    yield r
    r.stop()


def test_listeners_announce_tls(tls_router):
    assert tls_router.listeners["websocket"].startswith("wss://")
    assert tls_router.listeners["rawsocket"].startswith("tls://")


async def test_rpc_and_pubsub_over_tls(tls_router, pki, combo):
    ctx = pki["ca"].client_context()
    callee = await connect_session(tls_router, combo, ssl=ctx)
    caller = await connect_session(tls_router, ALL_COMBOS[(ALL_COMBOS.index(combo) + 3) % 6], ssl=ctx)
    await callee.register(lambda a, b: a + b, "com.tls.add")
    assert await caller.call("com.tls.add", 2, 3) == 5
    got = asyncio.get_running_loop().create_future()
    await caller.subscribe(lambda x: got.set_result(x), "com.tls.topic")
    from autobahn.wamp.types import PublishOptions

    await callee.publish("com.tls.topic", "hello", options=PublishOptions(acknowledge=True))
    assert await asyncio.wait_for(got, 10) == "hello"
    callee.leave()
    caller.leave()


def closed_by_server(host, port, first_bytes, ctx=None):
    """Connects (over TLS with ctx), sends first_bytes and returns True when the
    server ends the connection (EOF or a TLS alert) within 5 s."""
    import socket

    with socket.create_connection((host, port), timeout=5) as raw:
        sock = ctx.wrap_socket(raw, server_hostname=host) if ctx else raw
        try:
            sock.sendall(first_bytes)
            while sock.recv(1024):  # e.g. a TLS alert before the close
                pass
            return True
        except (ssl.SSLError, ConnectionError):
            return True
        except socket.timeout:
            return False


def test_plain_clients_are_refused_by_tls_listeners(tls_router):
    host, port = tls_router.ws_addr
    assert closed_by_server(host, port, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
    host, port = tls_router.rs_addr
    assert closed_by_server(host, port, bytes([0x7F, 0xF2, 0, 0]))


async def test_ticket_over_tls(tls_router, pki, combo):
    ctx = pki["ca"].client_context()
    s = await connect_session(tls_router, combo, realm="secure", session_cls=session_for("joe", ["ticket"], "secret123"),
                              ssl=ctx)
    assert (await s.joined).authmethod == "ticket"
    s.leave()
    with pytest.raises(JoinFailed) as e:
        await connect_session(tls_router, combo, realm="secure", session_cls=session_for("joe", ["ticket"], "nope"),
                              ssl=ctx)
    assert e.value.reason == "wamp.error.authentication_denied"


async def test_wampcra_over_tls(tls_router, pki, combo):
    ctx = pki["ca"].client_context()
    cra = session_for("peter", ["wampcra"], "prq7+YkJ1/KlW1X0YczMHw==")
    s = await connect_session(tls_router, combo, realm="secure", session_cls=cra, ssl=ctx)
    assert ((await s.joined).authid, (await s.joined).authmethod) == ("peter", "wampcra")
    s.leave()
    with pytest.raises(JoinFailed) as e:
        await connect_session(tls_router, combo, realm="secure", session_cls=session_for("peter", ["wampcra"], "bm9wZQ=="),
                              ssl=ctx)
    assert e.value.reason == "wamp.error.authentication_denied"
    with pytest.raises(JoinFailed) as e:
        await connect_session(tls_router, combo, realm="secure", session_cls=session_for("nobody", ["wampcra"], "x"),
                              ssl=ctx)
    assert e.value.reason == "wamp.error.authentication_denied", "unknown authids are not disclosed"


def tls_session():
    class S(TestSession):
        __test__ = False

        def onConnect(self):
            self.join(self.config.realm, ["tls"])

    return S


async def test_client_certificate_authentication(tls_router, pki, combo):
    ca = pki["ca"]
    s = await connect_session(tls_router, combo, realm="secure", session_cls=tls_session(),
                              ssl=ca.client_context(pki["client01"]))
    d = await s.joined
    assert (d.authid, d.authrole, d.authmethod, d.authprovider) == ("client01", "backend", "tls", "static")
    s.leave()
    # a CN not listed gets the method's default role
    s = await connect_session(tls_router, combo, realm="secure", session_cls=tls_session(),
                              ssl=ca.client_context(pki["client02"]))
    assert ((await s.joined).authid, (await s.joined).authrole) == ("client02", "device")
    s.leave()


async def test_tls_method_without_a_certificate_is_refused(tls_router, pki, combo):
    with pytest.raises(JoinFailed) as e:
        await connect_session(tls_router, combo, realm="secure", session_cls=tls_session(),
                              ssl=pki["ca"].client_context())
    assert e.value.reason == "wamp.error.no_such_principal"


def test_certificate_from_another_ca_is_rejected(tls_router, pki):
    other = pki["other_ca"].issue("mallory", "mallory", server=False)
    host, port = tls_router.rs_addr
    # TLS 1.3 reports a rejected client certificate with the server's first reply
    assert closed_by_server(host, port, bytes([0x7F, 0xF2, 0, 0]), pki["ca"].client_context(other))


async def test_required_client_certificate(pki, start_router):
    r = start_router(config=tls_config(pki["server"], pki["ca"], client_auth="required") + REALMS, listen=False)
    ok = await connect_session(r, ALL_COMBOS[3], realm="secure", session_cls=tls_session(),
                               ssl=pki["ca"].client_context(pki["client01"]))
    assert (await ok.joined).authid == "client01"
    host, port = r.rs_addr
    assert closed_by_server(host, port, bytes([0x7F, 0xF2, 0, 0]), pki["ca"].client_context())
    ok.leave()


async def wait_for_serial(host, port, ca, serial, timeout=15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = None
    while loop.time() < deadline:
        seen = await loop.run_in_executor(None, served_serial, host, port, ca)
        if seen == serial:
            return
        await asyncio.sleep(0.2)  # polling the served certificate: the reload has no other signal
    raise AssertionError(f"certificate serial {seen} still served, expected {serial}")


async def test_certificate_reload_without_restart(pki, start_router, tmp_path):
    ca = pki["ca"]
    first = ca.issue("127.0.0.1", "reload-a")
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    live_cert.write_bytes(first.cert.read_bytes())
    live_key.write_bytes(first.key.read_bytes())

    class Live:
        cert, key = live_cert, live_key

    r = start_router(config=tls_config(Live) + '[[realms]]\nname = "realm1"\n', listen=False)
    host, port = r.ws_addr
    ctx = ca.client_context()
    old = await connect_session(r, ALL_COMBOS[0], ssl=ctx)
    await old.register(lambda: "still here", "com.tls.reload")
    assert served_serial(host, port, ca) == first.serial
    second = ca.issue("127.0.0.1", "reload-b")
    live_key.write_bytes(second.key.read_bytes())
    live_cert.write_bytes(second.cert.read_bytes())
    await wait_for_serial(host, port, ca, second.serial)
    # the connection made before the reload keeps working
    assert await old.call("com.tls.reload") == "still here"
    # a broken file keeps the previous certificate
    live_cert.write_text("not a certificate")
    deadline = asyncio.get_running_loop().time() + 15
    while "do not load" not in r.stderr_tail():
        assert asyncio.get_running_loop().time() < deadline, r.stderr_tail()
        await asyncio.sleep(0.2)  # waiting for the reload attempt to be logged
    assert served_serial(host, port, ca) == second.serial
    fresh = await connect_session(r, ALL_COMBOS[3], ssl=ctx)
    assert await fresh.call("com.tls.reload") == "still here"
    old.leave()
    fresh.leave()


@pytest.mark.parametrize("broken", ["missing cert", "garbage key", "missing ca"])
def test_bad_tls_files_are_config_errors(pki, start_router, tmp_path, broken):
    server = pki["server"]
    cert, key, ca = server.cert, server.key, pki["ca"].path
    if broken == "missing cert":
        cert = tmp_path / "nope.crt"
    elif broken == "garbage key":
        key = tmp_path / "garbage.key"
        key.write_text("garbage")
    else:
        ca = tmp_path / "nope-ca.pem"
    cfg = f'[websocket]\nlisten = "127.0.0.1:0"\n[websocket.tls]\ncert = "{cert}"\nkey = "{key}"\nclient_ca = "{ca}"\n'
    with pytest.raises(RouterError) as e:
        start_router(config=cfg + '[[realms]]\nname = "realm1"\n', listen=False)
    text = str(e.value)
    assert "exited with 2" in text and "websocket.tls" in text, text
