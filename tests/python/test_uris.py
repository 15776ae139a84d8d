# URI validation by Junction (wamp.error.invalid_uri), for all six transport x
# serializer combinations: the "loose" rules on the default realm (no empty
# components, no whitespace, no "#") and the "strict" rules (lower-case
# letters, digits and "_" only) on a realm configured with uri_check = "strict"
# in a TOML config file. Malformed URIs are sent with the raw client because
# Autobahn|Python refuses to send them.
import pytest
from autobahn.wamp.exception import ApplicationError

import wampraw
from conftest import Router

LOOSE_INVALID = ["com..bad", "com.#bad", ".com.bad", "com.bad.", "com.bad uri", "com.bad\tx", ""]
STRICT_ONLY_INVALID = ["com.Example.proc", "com.example.my-proc", "com.example.proc!"]
STRICT_VALID = ["com.example.good_1", "a", "com.example.x.y.z_0"]

CONFIG = """
[[realms]]
name = "realm1"

[[realms]]
name = "strict"
uri_check = "strict"
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    """Overrides the default module router: one with a loose and a strict realm."""
    d = tmp_path_factory.mktemp("uris")
    cfg = d / "junction.toml"
    cfg.write_text(CONFIG)
    r = Router(["--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0", "--config", str(cfg)], d / "stderr.log")
    yield r
    crashed = not r.alive()
    code = r.stop()
    if crashed:
        pytest.fail(f"router exited during the module with code {code}; stderr tail:\n{r.stderr_tail()}")


def requests_for(uri, rid):
    return {
        "register": [wampraw.REGISTER, rid, {}, uri],
        "call": [wampraw.CALL, rid, {}, uri, []],
        "subscribe": [wampraw.SUBSCRIBE, rid, {}, uri],
        "publish": [wampraw.PUBLISH, rid, {"acknowledge": True}, uri, []],
    }


SUCCESS = {
    "register": wampraw.REGISTERED,
    "subscribe": wampraw.SUBSCRIBED,
    "publish": wampraw.PUBLISHED,
}


async def expect_invalid_uri(raw, kind, uri):
    rid = raw.request_id()
    msg = requests_for(uri, rid)[kind]
    reply = await raw.request(msg)
    assert reply[:3] == [wampraw.ERROR, msg[0], rid], (kind, uri, reply)
    assert isinstance(reply[3], dict)
    assert reply[4] == "wamp.error.invalid_uri", (kind, uri, reply)


async def expect_accepted(raw, kind, uri):
    rid = raw.request_id()
    msg = requests_for(uri, rid)[kind]
    reply = await raw.request(msg)
    if kind == "call":
        # nobody registered it: the URI itself was fine
        assert reply[:3] == [wampraw.ERROR, wampraw.CALL, rid], (uri, reply)
        assert reply[4] == "wamp.error.no_such_procedure", (uri, reply)
    else:
        assert reply[:2] == [SUCCESS[kind], rid], (kind, uri, reply)


@pytest.mark.parametrize("kind", ["register", "call", "subscribe", "publish"])
async def test_loose_realm_rejects_malformed_uris(wamp, combo, kind, unique):
    raw = await wamp.raw()
    await raw.join("realm1")
    for uri in LOOSE_INVALID:
        await expect_invalid_uri(raw, kind, uri)
    # the session survives all of that
    await expect_accepted(raw, kind, unique())


@pytest.mark.parametrize("kind", ["register", "call", "subscribe", "publish"])
async def test_strict_realm(wamp, combo, kind, unique):
    strict = await wamp.raw()
    await strict.join("strict")
    loose = await wamp.raw()
    await loose.join("realm1")
    for uri in LOOSE_INVALID + STRICT_ONLY_INVALID:
        await expect_invalid_uri(strict, kind, uri)
    suffix = unique("x")  # strict-valid, and unique to this test
    for uri in STRICT_ONLY_INVALID:
        await expect_accepted(loose, kind, f"{uri}.{suffix}")
    for uri in STRICT_VALID:
        await expect_accepted(strict, kind, f"{uri}.{suffix}")


async def test_strict_realm_error_reaches_autobahn(wamp, combo, unique):
    s = await wamp.session(realm="strict")
    with pytest.raises(ApplicationError) as exc:
        await s.register(lambda: None, "com.Example.Proc")
    assert exc.value.error == "wamp.error.invalid_uri"
    with pytest.raises(ApplicationError) as exc:
        await s.subscribe(lambda: None, "com.example.Topic")
    assert exc.value.error == "wamp.error.invalid_uri"
    with pytest.raises(ApplicationError) as exc:
        await s.call("com.example.with-dash")
    assert exc.value.error == "wamp.error.invalid_uri"
    reg = await s.register(lambda: "ok", unique())
    assert await s.call(reg.procedure) == "ok"
