"""Authorization interop: Autobahn|Python sessions authenticated by ticket with
roles whose static permissions (exact / prefix / wildcard patterns, most specific
wins) allow or deny call, register, publish and subscribe; disclosure rules; a
dynamic authorizer procedure with its answer cache; roles changed at run time
through `junction.role.*` (admin role only) — on one node and, in a 2-node
cluster, enforced on the other node."""

import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions

from autobahn_helpers import subscribe_log
from cluster_helpers import start_cluster
from conftest import ALL_COMBOS, TestSession, connect_session

pytestmark = pytest.mark.timeout(40)

NOT_AUTHORIZED = "wamp.error.not_authorized"

CONFIG = """
[admin]
realm = "authz"

[[realms]]
name = "authz"

[realms.auth.ticket.principals.alice]
role = "user"
ticket = "a"
[realms.auth.ticket.principals.bob]
role = "backend"
ticket = "b"
[realms.auth.ticket.principals.dev]
role = "device"
ticket = "d"
[realms.auth.ticket.principals.root]
role = "admin"
ticket = "r"
[realms.auth.ticket.principals.ghost]
role = "nobody"
ticket = "g"

[[realms.roles]]
name = "user"
[[realms.roles.permissions]]
uri = "com.app."
match = "prefix"
call = true
publish = true
subscribe = true
[[realms.roles.permissions]]
uri = "com.app.admin."
match = "prefix"
[[realms.roles.permissions]]
uri = "com.app.admin.status"
call = true
[[realms.roles.permissions]]
uri = "com..public"
match = "wildcard"
subscribe = true
publish = true
[[realms.roles.permissions]]
uri = "com.app.audited."
match = "prefix"
call = true
disclose = { caller = true }

[[realms.roles]]
name = "backend"
[[realms.roles.permissions]]
uri = "com."
match = "prefix"
call = true
register = true
publish = true
subscribe = true

[[realms.roles]]
name = "admin"
[[realms.roles.permissions]]
uri = "junction.role."
match = "prefix"
call = true

[[realms.roles]]
name = "device"
authorizer = "com.authz.authorize"
authorizer_role = "backend"
cache_ttl_ms = 60000
cache_size = 100
"""

TICKETS = {"alice": "a", "bob": "b", "dev": "d", "root": "r", "ghost": "g"}


def ticket_session(authid):
    class S(TestSession):
        __test__ = False

        def onConnect(self):
            self.join(self.config.realm, ["ticket"], authid)

        def onChallenge(self, challenge):
            return TICKETS[authid]

    return S


async def as_user(router, authid, combo=ALL_COMBOS[0]):
    s = await connect_session(router, combo, realm="authz", session_cls=ticket_session(authid))
    await s.joined
    return s


async def denied(coro):
    with pytest.raises(ApplicationError) as e:
        await asyncio.wait_for(coro, 10)
    assert e.value.error == NOT_AUTHORIZED, e.value
    return e.value


@pytest.fixture
def router(start_router):
    return start_router(config=CONFIG)


@pytest.fixture
async def backend(router):
    bob = await as_user(router, "bob")

    def echo(*args, details=None):
        return [args, details.caller, details.caller_authid]

    for proc in ("com.app.echo", "com.app.admin.kill", "com.app.admin.status", "com.app.audited.op",
                 "com.other.echo"):
        await bob.register(echo, proc, options=RegisterOptions(details_arg="details"))
    yield bob
    bob.leave()


async def test_call_by_pattern_precedence(router, backend, combo):
    alice = await as_user(router, "alice", combo)
    assert (await alice.call("com.app.echo", 1))[0] == [1]  # prefix com.app.
    await denied(alice.call("com.app.admin.kill"))  # longer prefix without call
    assert (await alice.call("com.app.admin.status"))[0] == []  # exact wins over prefixes
    await denied(alice.call("com.other.echo"))  # nothing matches
    await denied(alice.call("wamp.session.count"))  # meta procedures are authorized too
    alice.leave()


async def test_register_denied_and_allowed(router, backend):
    alice = await as_user(router, "alice")
    e = await denied(alice.register(lambda: None, "com.app.mine"))
    assert "register" in e.args[0]
    bob = await as_user(router, "bob", ALL_COMBOS[4])
    await bob.register(lambda: "ok", "com.backend.fresh")
    assert await bob.call("com.backend.fresh") == "ok"


async def test_subscribe_and_publish(router, backend):
    alice = await as_user(router, "alice")
    bob = backend
    log = await subscribe_log(alice, "com.app.news")
    wlog = await subscribe_log(alice, "com.x.public", match="exact")  # allowed by the wildcard
    await denied(alice.subscribe(lambda: None, "com.other.news"))
    await denied(alice.subscribe(lambda: None, "com.", options=SubscribeOptions(match="prefix")))
    await bob.publish("com.app.news", 1, options=PublishOptions(acknowledge=True))
    assert (await log.get())[0] == [1]
    await bob.publish("com.x.public", "w", options=PublishOptions(acknowledge=True))
    assert (await wlog.get())[0] == ["w"]
    # alice may publish on com.app. but not elsewhere; unacknowledged denials are silent
    blog = await subscribe_log(bob, "com.", match="prefix")
    await denied(alice.publish("com.other.news", 2, options=PublishOptions(acknowledge=True)))
    alice.publish("com.other.news", 3)
    await alice.publish("com.app.news", 4, options=PublishOptions(acknowledge=True))
    args, _, details = await blog.get()
    assert args == [4] and details.topic == "com.app.news", (args, details)


async def test_role_without_rules_may_do_nothing(router, backend):
    ghost = await as_user(router, "ghost")
    await denied(ghost.call("com.app.echo"))
    await denied(ghost.subscribe(lambda: None, "com.app.news"))
    await denied(ghost.register(lambda: None, "com.ghost.p"))
    await denied(ghost.publish("com.app.news", options=PublishOptions(acknowledge=True)))


async def test_disclosure_rule(router, backend):
    alice = await as_user(router, "alice")
    _, caller, caller_authid = await alice.call("com.app.audited.op")
    assert (caller, caller_authid) == (alice.session_id, "alice")
    _, caller, _ = await alice.call("com.app.echo")
    assert caller is None


async def test_dynamic_authorizer_and_its_cache(router, backend):
    asked = []

    def authorize(session, uri, action, options):
        asked.append((session["authid"], session["authrole"], uri, action))
        if uri == "com.app.echo" and action == "call":
            return True
        if uri == "com.app.nocache":
            return {"allow": True, "cache": False}
        if uri == "com.app.audited.op":
            return {"allow": True, "disclose": True}
        return False

    await backend.register(authorize, "com.authz.authorize")
    await backend.register(lambda: "nc", "com.app.nocache")
    dev = await as_user(router, "dev", ALL_COMBOS[2])
    for _ in range(3):
        assert (await dev.call("com.app.echo", 7))[0] == [7]
    assert asked.count(("dev", "device", "com.app.echo", "call")) == 1, asked
    await denied(dev.register(lambda: None, "com.app.echo2"))
    await denied(dev.register(lambda: None, "com.app.echo2"))
    assert asked.count(("dev", "device", "com.app.echo2", "register")) == 1, "denials are cached too"
    for _ in range(2):
        assert await dev.call("com.app.nocache") == "nc"
    assert asked.count(("dev", "device", "com.app.nocache", "call")) == 2, "cache: false is not cached"
    _, caller, _ = await dev.call("com.app.audited.op")
    assert caller == dev.session_id


async def test_authorizer_missing_or_failing_denies(router, backend):
    dev = await as_user(router, "dev")
    await denied(dev.call("com.app.echo"))

    def broken(session, uri, action, options):
        raise ApplicationError("com.authz.broken")

    await backend.register(broken, "com.authz.authorize")
    await denied(dev.call("com.app.echo"))


async def test_roles_changed_at_run_time(router, backend):
    root = await as_user(router, "root")
    alice = await as_user(router, "alice")
    assert sorted(await root.call("junction.role.list")) == ["admin", "backend", "device", "user"]
    user = await root.call("junction.role.get", "user")
    assert any(p["uri"] == "com.app." and p["call"] for p in user["permissions"]), user
    # non-admins may not change roles
    await denied(alice.call("junction.role.set", "user", {"permissions": []}))
    await denied(backend.call("junction.role.set", "user", {"permissions": []}))
    # subscribe only, no calls
    await root.call("junction.role.set", "user",
                    {"permissions": [{"uri": "com.app.", "match": "prefix", "subscribe": True}]})
    await denied(alice.call("com.app.echo"))
    await subscribe_log(alice, "com.app.news")
    # a new role, assigned to a principal only when it exists
    await root.call("junction.role.set", "nobody", {"permissions": [{"uri": "com.app.echo", "call": True}]})
    ghost = await as_user(router, "ghost")
    assert (await ghost.call("com.app.echo", 1))[0] == [1]
    await root.call("junction.role.remove", "nobody")
    await denied(ghost.call("com.app.echo", 1))
    # malformed roles are refused with a clear error
    with pytest.raises(ApplicationError) as e:
        await root.call("junction.role.set", "user", {"permissions": [{"uri": "com.app.", "match": "fuzzy"}]})
    assert e.value.error == "wamp.error.invalid_argument" and "fuzzy" in e.value.args[0]
    with pytest.raises(ApplicationError) as e:
        await root.call("junction.role.get", "nope")
    assert e.value.error == "wamp.error.no_such_role"


@pytest.fixture
def cluster(request):
    c = start_cluster(f"test_authorization_{request.node.name}", n=2, extra=CONFIG)
    yield c
    crashed = c.stop()
    assert not crashed, crashed


async def test_role_change_on_one_node_is_enforced_on_another(cluster):
    bob = await as_user(cluster[1], "bob")
    await bob.register(lambda: "pong", "com.app.ping")
    root = await as_user(cluster[1], "root")
    alice = await as_user(cluster[2], "alice", ALL_COMBOS[4])
    await cluster.sync()
    assert await alice.call("com.app.ping") == "pong"
    await root.call("junction.role.set", "user", {"permissions": [{"uri": "com.app.", "match": "prefix"}]})
    await cluster.sync()
    await denied(alice.call("com.app.ping"))
    await root.call("junction.role.remove", "user")
    await root.call("junction.role.set", "user",
                    {"permissions": [{"uri": "com.app.ping", "call": True}]})
    await cluster.sync()
    assert await alice.call("com.app.ping") == "pong"
    for s in (bob, root, alice):
        s.leave()
