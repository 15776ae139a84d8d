"""Attacks on authorization, tried with Autobahn|Python against a running router:

- a pattern SUBSCRIBE / REGISTER walking around a deny (allowed `com.app.`, denied
  `com.app.secret.`), and the dynamic authorizer seeing the match policy;
- testaments published around authorization or into the router's namespaces;
- taking over a dynamic authenticator in the README's example: removing its
  callee, registering its URI exactly or by pattern, killing its session, and
  an `admin` role answered for a realm that is not the admin realm;
- registering or publishing in the router's own `junction.` namespace.

Each is refused with the URI a client can act on; what is allowed keeps working."""

import asyncio
import subprocess

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions

from autobahn_helpers import subscribe_log
from conftest import ALL_COMBOS, JoinFailed, connect_session, junction_bin, ticket_session

pytestmark = pytest.mark.timeout(40)

NOT_AUTHORIZED = "wamp.error.not_authorized"
INVALID_URI = "wamp.error.invalid_uri"
WAIT = 10

PATTERN_CONFIG = """
[[realms]]
name = "app"
[[realms.history]]
topic = "com.app.secret."
match = "prefix"
limit = 10
[[realms.history]]
topic = "com.app.public.log"
limit = 10
[realms.auth.ticket.principals.eve]
role = "user"
ticket = "e"
[realms.auth.ticket.principals.svc]
role = "service"
ticket = "s"
[realms.auth.ticket.principals.dev]
role = "device"
ticket = "d"

[[realms.roles]]
name = "user"
[[realms.roles.permissions]]
uri = "com.app."
match = "prefix"
subscribe = true
register = true
publish = true
call = true
[[realms.roles.permissions]]
uri = "com.app.secret."
match = "prefix"
[[realms.roles.permissions]]
uri = "wamp.session.add_testament"
call = true
[[realms.roles.permissions]]
uri = "wamp.subscription."
match = "prefix"
call = true

[[realms.roles]]
name = "service"
[[realms.roles.permissions]]
uri = "com."
match = "prefix"
subscribe = true
register = true
publish = true
call = true
[[realms.roles.permissions]]
uri = "wamp.subscription."
match = "prefix"
call = true

[[realms.roles]]
name = "device"
authorizer = "com.app.authorize"
authorizer_role = "service"
cache_ttl_ms = 0
"""

TICKETS = {"eve": "e", "svc": "s", "dev": "d", "authenticator": "auth-secret", "root": "r"}


async def as_user(router, authid, realm="app", combo=ALL_COMBOS[0]):
    return await connect_session(router, combo, realm=realm, session_cls=ticket_session(authid, TICKETS[authid]))


async def refused(coro, uri=NOT_AUTHORIZED):
    with pytest.raises(ApplicationError) as e:
        await asyncio.wait_for(coro, WAIT)
    assert e.value.error == uri, e.value
    return e.value


@pytest.fixture
def app_router(start_router):
    return start_router(config=PATTERN_CONFIG)


async def test_prefix_subscription_cannot_cover_a_denied_topic(app_router, combo):
    eve = await as_user(app_router, "eve", combo=combo)
    svc = await as_user(app_router, "svc")
    await refused(eve.subscribe(lambda *a: None, "com.app.", options=SubscribeOptions(match="prefix")))
    await refused(eve.subscribe(lambda *a: None, "com.app", options=SubscribeOptions(match="prefix")))
    await refused(eve.subscribe(lambda *a: None, "com.app..x", options=SubscribeOptions(match="wildcard")))
    await refused(eve.subscribe(lambda *a: None, "com.app.secret.x"))
    # what the role allows still works, by pattern too
    public = await subscribe_log(eve, "com.app.public.", match="prefix")
    await svc.publish("com.app.secret.plans", "s", options=PublishOptions(acknowledge=True))
    await svc.publish("com.app.public.news", "p", options=PublishOptions(acknowledge=True))
    args, _, details = await asyncio.wait_for(public.get(), WAIT)
    assert args == ["p"] and details.topic == "com.app.public.news"
    eve.leave()
    svc.leave()


async def test_prefix_registration_cannot_receive_denied_invocations(app_router):
    eve = await as_user(app_router, "eve")
    svc = await as_user(app_router, "svc")
    await refused(eve.register(lambda *a: None, "com.app.", options=RegisterOptions(match="prefix")))
    await refused(eve.register(lambda *a: None, "com..op", options=RegisterOptions(match="wildcard")))
    # no one serves com.app.secret.op: the caller is told so, and eve saw nothing
    await refused(svc.call("com.app.secret.op", "password"), "wamp.error.no_such_procedure")
    await eve.register(lambda *a: "public", "com.app.public.", options=RegisterOptions(match="prefix"))
    assert await asyncio.wait_for(svc.call("com.app.public.op"), WAIT) == "public"


async def test_dynamic_authorizer_sees_the_match_policy(app_router):
    svc = await as_user(app_router, "svc")
    asked = []

    def authorize(session, uri, action, options):
        asked.append((uri, action, options.get("match")))
        return options.get("match") == "exact"

    await svc.register(authorize, "com.app.authorize")
    dev = await as_user(app_router, "dev")
    await refused(dev.subscribe(lambda *a: None, "com.app.", options=SubscribeOptions(match="prefix")))
    await dev.subscribe(lambda *a: None, "com.app.x")
    assert ("com.app.", "subscribe", "prefix") in asked and ("com.app.x", "subscribe", "exact") in asked, asked


async def test_only_the_named_role_registers_the_authorizer(app_router):
    eve = await as_user(app_router, "eve")
    e = await refused(eve.register(lambda *a: True, "com.app.authorize"))
    assert "service" in e.args[0]
    # a pattern registration covering it never receives the authorizer's calls
    await eve.register(lambda *a: True, "com.app.auth", options=RegisterOptions(match="prefix"))
    dev = await as_user(app_router, "dev")
    await refused(dev.call("com.app.public.op"))


async def test_testament_needs_publish_permission(app_router, combo):
    eve = await as_user(app_router, "eve", combo=combo)
    svc = await as_user(app_router, "svc")
    secret = await subscribe_log(svc, "com.app.secret.", match="prefix")
    public = await subscribe_log(svc, "com.app.public.gone")
    await refused(eve.call("wamp.session.add_testament", "com.app.secret.leak", ["x"], {}))
    await refused(eve.call("wamp.session.add_testament", "wamp.session.on_join", [{"session": 1}], {}),
                  INVALID_URI)
    await eve.call("wamp.session.add_testament", "com.app.public.gone", ["bye"], {})
    eve.leave()
    args, _, _ = await asyncio.wait_for(public.get(), WAIT)
    assert args == ["bye"]
    assert secret.empty(), "the refused testament was not published"


async def test_event_history_needs_subscribe_permission(app_router):
    eve = await as_user(app_router, "eve")
    svc = await as_user(app_router, "svc")
    await svc.publish("com.app.secret.plans", "s", options=PublishOptions(acknowledge=True))
    await svc.publish("com.app.public.log", "p", options=PublishOptions(acknowledge=True))
    secret = await eve.call("wamp.subscription.lookup", "com.app.secret.", {"match": "prefix"})
    public = await eve.call("wamp.subscription.lookup", "com.app.public.log")
    await refused(eve.call("wamp.subscription.get_events", secret))
    events = await eve.call("wamp.subscription.get_events", public)
    assert [e["args"] for e in events] == [["p"]], events
    assert len(await svc.call("wamp.subscription.get_events", secret)) == 1, "a role that may subscribe reads it"


async def test_testament_cannot_forge_meta_events_in_an_open_realm(start_router):
    router = start_router()
    s = await connect_session(router, ALL_COMBOS[0])
    for topic in ("wamp.session.on_join", "wamp.session.on_leave", "junction.anything"):
        await refused(s.call("wamp.session.add_testament", topic, [], {}), INVALID_URI)


async def test_junction_namespace_is_reserved(start_router, combo):
    router = start_router()
    s = await connect_session(router, combo)
    await refused(s.register(lambda: None, "junction.cluster.status"), INVALID_URI)
    await refused(s.register(lambda: None, "junction.mine"), INVALID_URI)
    await refused(s.publish("junction.mine", options=PublishOptions(acknowledge=True)), INVALID_URI)


# --------------------------------------------------------------------------
# the README's dynamic authenticator, attacked from its own realm
# --------------------------------------------------------------------------

AUTHENTICATOR_CONFIG = """
[admin]
realm = "ops"

[[realms]]
name = "auth"
[realms.auth.anonymous]
role = "anonymous"
[realms.auth.ticket.principals.authenticator]
role = "authenticator"
ticket = "auth-secret"
[[realms.roles]]
name = "authenticator"
[[realms.roles.permissions]]
uri = "com.example.authenticate"
register = true
[[realms.roles]]
name = "anonymous"
[[realms.roles.permissions]]
uri = ""
match = "prefix"
call = true
register = true
subscribe = true
publish = true

[[realms]]
name = "app"
[realms.auth]
authenticator_realm = "auth"
authenticator_role = "authenticator"
[realms.auth.ticket]
authenticator = "com.example.authenticate"

[[realms]]
name = "ops"
[realms.auth.ticket.principals.root]
role = "admin"
ticket = "r"
"""


@pytest.fixture
async def authenticated(start_router):
    router = start_router(config=AUTHENTICATOR_CONFIG)
    authenticator = await as_user(router, "authenticator", realm="auth")
    tickets = []

    def authenticate(realm, authid, details):
        tickets.append(details.get("ticket"))
        if details.get("ticket") == f"pw-{authid}":
            return "admin" if authid == "boss" else "user"
        raise ApplicationError("com.example.invalid_ticket", "wrong ticket")

    reg = await authenticator.register(authenticate, "com.example.authenticate")
    yield router, authenticator, reg, tickets
    authenticator.leave()


async def test_anonymous_cannot_take_over_the_authenticator(authenticated, combo):
    router, authenticator, reg, tickets = authenticated
    attacker = await connect_session(router, combo, realm="auth")
    stolen = []
    # remove the authenticator's callee: refused without an explicit permission
    await refused(attacker.call("wamp.registration.remove_callee", reg.id, authenticator.session_id))
    await refused(attacker.call("wamp.session.kill", authenticator.session_id))
    await refused(attacker.call("wamp.session.kill_by_authrole", "authenticator"))
    # register it: exactly (refused), by pattern (never called)
    await refused(attacker.register(lambda *a: "admin", "com.example.authenticate"))
    await attacker.register(lambda *a: stolen.append(a) or "admin", "com.example.",
                            options=RegisterOptions(match="prefix"))
    await attacker.register(lambda *a: stolen.append(a) or "admin", "com.example.",
                            options=RegisterOptions(match="wildcard"))
    user = await connect_session(router, ALL_COMBOS[0], realm="app", session_cls=ticket_session("joe", "pw-joe"))
    assert user.joined.result().authrole == "user"
    assert stolen == [] and "pw-joe" in tickets
    with pytest.raises(JoinFailed) as e:
        await connect_session(router, ALL_COMBOS[0], realm="app", session_cls=ticket_session("joe", "guess"))
    assert e.value.reason == "com.example.invalid_ticket"
    assert stolen == []
    # the authenticator is still registered and still the only callee
    callees = await attacker.call("wamp.registration.list_callees", reg.id)
    assert callees == [authenticator.session_id], callees


async def test_admin_role_counts_only_in_the_admin_realm(authenticated):
    router, _, _, _ = authenticated
    boss = await connect_session(router, ALL_COMBOS[0], realm="app", session_cls=ticket_session("boss", "pw-boss"))
    assert boss.joined.result().authrole == "admin"
    for proc, args in (("junction.session.list", []), ("junction.cluster.status", []),
                       ("junction.role.set", ["user", {"permissions": []}])):
        await refused(boss.call(proc, *args))
    root = await as_user(router, "root", realm="ops")
    sessions = await asyncio.wait_for(root.call("junction.session.list"), WAIT)
    assert any(s["session"] == boss.session_id for s in sessions), sessions


async def test_explicit_wamp_permission_allows_removing_callees(start_router):
    config = AUTHENTICATOR_CONFIG.replace(
        'uri = ""\nmatch = "prefix"',
        'uri = "wamp.registration.remove_callee"\ncall = true\n[[realms.roles.permissions]]\n'
        'uri = ""\nmatch = "prefix"')
    router = start_router(config=config)
    authenticator = await as_user(router, "authenticator", realm="auth")
    reg = await authenticator.register(lambda *a: "user", "com.example.authenticate")
    operator = await connect_session(router, ALL_COMBOS[0], realm="auth")
    await operator.call("wamp.registration.remove_callee", reg.id, authenticator.session_id)
    await refused(operator.call("wamp.session.kill", authenticator.session_id))


def test_dynamic_authenticator_without_a_registering_role_is_refused(tmp_path):
    cfg = tmp_path / "junction.toml"
    cfg.write_text(AUTHENTICATOR_CONFIG.replace('authenticator_role = "authenticator"\n', ""))
    out = subprocess.run([str(junction_bin()), "--config", str(cfg), "--ws", "127.0.0.1:0", "--rawsocket", ""],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "authenticator_role" in out.stderr, out
    cfg.write_text(PATTERN_CONFIG.replace('authorizer_role = "service"\n', ""))
    out = subprocess.run([str(junction_bin()), "--config", str(cfg), "--ws", "127.0.0.1:0", "--rawsocket", ""],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "authorizer_role" in out.stderr, out
