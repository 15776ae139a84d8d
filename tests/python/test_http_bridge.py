"""The HTTP bridge (`[bridge]`, src/transport/bridge.rs) end to end, on a 2-node
cluster: HTTP requests (urllib, in a thread) to one node's bridge and
Autobahn|Python sessions on the other node.

- publish posted to node 1 reaches a subscriber on node 2 (acknowledged: 200 and
  the id the subscriber sees; not: 202);
- call posted to node 1 is served by a callee on node 2; WAMP errors map to HTTP
  statuses (404, 400, 502, 504);
- credentials: bearer ticket of the realm's ticket principals, Basic AUTHID:TICKET
  by the realm's ticket method (static, and a dynamic authenticator on a single
  router), Crossbar.io-style
  signed requests (accepted; a tampered body, a wrong key, a replay refused); none
  or a wrong ticket: 401; a role without the permission: 403;
- limits: a body over `max_body` 413; past the rate of one client address 429
  (node 2's bridge has a tiny rate, node 1's a large one);
- the OpenAPI document lists every route, and the routes answer the statuses it
  documents;
- HTTPS ([bridge.tls]) with an anonymous role, on a single router.

Node logs: target/test-logs/cluster/test_http_bridge/node<N>.stderr.log."""

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import random
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult, SubscribeOptions

from autobahn_helpers import Sink
from cluster_helpers import start_cluster
from conftest import ALL_COMBOS, TestSession, connect_session

pytestmark = pytest.mark.timeout(60)

REALM = "bridged"
TICKETS = {"svc": "svc-ticket", "limited": "limited-ticket"}
KEY, SECRET = "app1", "kkjH68GiuUZ"

CONFIG = f"""
[[realms]]
name = "{REALM}"

[realms.auth.ticket.principals.svc]
role = "backend"
ticket = "{TICKETS['svc']}"
[realms.auth.ticket.principals.limited]
role = "limited"
ticket = "{TICKETS['limited']}"

[[realms.roles]]
name = "backend"
[[realms.roles.permissions]]
uri = "com.br."
match = "prefix"
call = true
register = true
publish = true
subscribe = true

[[realms.roles]]
name = "limited"
[[realms.roles.permissions]]
uri = "com.br."
match = "prefix"
subscribe = true

[bridge]
listen = "127.0.0.1:0"
realm = "{REALM}"
max_body = 2048
[[bridge.keys]]
key = "{KEY}"
secret = "{SECRET}"
role = "backend"
"""


def node_extra(i):
    # node 2's bridge admits 3 requests at once and then about one an hour
    return "rate = 1000.0\nburst = 1000\n" if i == 1 else "rate = 0.0003\nburst = 3\n"


@pytest.fixture(scope="module")
def cluster():
    base, keys = CONFIG.split("[[bridge.keys]]")
    c = start_cluster("test_http_bridge", n=2, extra=base,
                      node_extra=lambda i: node_extra(i) + "[[bridge.keys]]" + keys)
    yield c
    crashed = c.stop()
    if crashed:
        pytest.fail("nodes died during the module: "
                    + ", ".join(f"node {n.node_id} exit {code} (log {n.log_path})" for n, code in crashed))


def ticket_session(authid):
    class S(TestSession):
        __test__ = False

        def onConnect(self):
            self.join(self.config.realm, ["ticket"], authid)

        def onChallenge(self, challenge):
            return TICKETS[authid]

    return S


async def session(router, authid="svc"):
    s = await connect_session(router, ALL_COMBOS[0], realm=REALM, session_cls=ticket_session(authid))
    await s.joined
    return s


def _post(url, body, headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw


async def post(router, route, body, ticket="svc", headers=None, query=""):
    """POST to `router`'s bridge; ticket: an authid of TICKETS, a raw "Bearer" value
    (prefixed "raw:"), or None for no Authorization header."""
    h = dict(headers or {})
    if ticket is not None:
        h["Authorization"] = "Bearer " + (ticket[4:] if ticket.startswith("raw:") else TICKETS[ticket])
    url = router.listeners["bridge"] + "/" + route + query
    return await asyncio.to_thread(_post, url, body, h)


async def get(router, route):
    def fetch():
        with urllib.request.urlopen(router.listeners["bridge"] + "/" + route, timeout=10) as r:
            return r.status, json.loads(r.read())
    return await asyncio.to_thread(fetch)


def signed_query(body_bytes, key=KEY, secret=SECRET, seq=1, nonce=None, timestamp=None):
    """Crossbar.io's signed request: HMAC-SHA256 over key, timestamp, seq, nonce
    and the body, URL-safe base64, in the query string."""
    if timestamp is None:
        now = datetime.datetime.now(datetime.timezone.utc)
        timestamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    nonce = random.randint(0, 2 ** 53) if nonce is None else nonce
    mac = hmac.new(secret.encode(), None, hashlib.sha256)
    for part in (key, timestamp, str(seq), str(nonce)):
        mac.update(part.encode())
    mac.update(body_bytes)
    signature = base64.urlsafe_b64encode(mac.digest()).decode()
    return "?" + urlencode({"key": key, "timestamp": timestamp, "seq": seq, "nonce": nonce,
                            "signature": signature})


async def test_publish_reaches_a_subscriber_on_another_node(cluster, unique):
    sub = await session(cluster[2])
    topic = unique("com.br")
    sink = Sink()
    await sub.subscribe(sink, topic, options=SubscribeOptions(details_arg="details"))

    status, doc = await post(cluster[1], "publish", {"topic": topic, "args": [1, "two"], "kwargs": {"k": [3]},
                                                      "options": {"acknowledge": True}})
    assert status == 200, doc
    args, kwargs, details = await sink.get()
    assert args == [1, "two"] and kwargs == {"k": [3]}
    assert details.publication == doc["id"]

    status, doc = await post(cluster[1], "publish", {"topic": topic, "args": ["unacked"]})
    assert status == 202 and isinstance(doc["id"], int), doc
    args, _, _ = await sink.get()
    assert args == ["unacked"]
    sub.leave()


async def test_call_is_served_by_a_callee_on_another_node(cluster, unique):
    callee = await session(cluster[2])
    proc = unique("com.br")

    def add(a, b, scale=1):
        return CallResult((a + b) * scale, note="sum")

    await callee.register(add, proc)
    await cluster.sync()
    status, doc = await post(cluster[1], "call", {"procedure": proc, "args": [2, 3], "kwargs": {"scale": 10}})
    assert status == 200, doc
    assert doc == {"args": [50], "kwargs": {"note": "sum"}}

    # binary travels as in WAMP's JSON serializer: "\u0000" + base64, both ways
    def echo(blob):
        assert blob == b"\x00\xffbin"
        return blob + b"!"

    await callee.register(echo, proc + ".echo")
    await cluster.sync()
    arg = "\u0000" + base64.b64encode(b"\x00\xffbin").decode()
    status, doc = await post(cluster[1], "call", {"procedure": proc + ".echo", "args": [arg]})
    assert status == 200, doc
    assert doc["args"] == ["\u0000" + base64.b64encode(b"\x00\xffbin!").decode()]
    callee.leave()


async def test_wamp_errors_map_to_http_statuses(cluster, unique):
    callee = await session(cluster[2])
    base = unique("com.br")

    def oops():
        raise ApplicationError("com.br.oops", "it broke", code=7)

    def bad():
        raise ApplicationError(ApplicationError.INVALID_ARGUMENT, "bad input")

    never = asyncio.get_running_loop().create_future()

    async def hang():
        return await never

    await callee.register(oops, base + ".oops")
    await callee.register(bad, base + ".bad")
    await callee.register(hang, base + ".hang")
    await cluster.sync()

    status, doc = await post(cluster[1], "call", {"procedure": base + ".missing"})
    assert status == 404 and doc["error"] == "wamp.error.no_such_procedure", doc

    status, doc = await post(cluster[1], "call", {"procedure": base + ".oops"})
    assert status == 502, doc
    assert doc == {"error": "com.br.oops", "args": ["it broke"], "kwargs": {"code": 7}}

    status, doc = await post(cluster[1], "call", {"procedure": base + ".bad"})
    assert status == 400 and doc["error"] == "wamp.error.invalid_argument", doc

    status, doc = await post(cluster[1], "call", {"procedure": base + ".hang", "options": {"timeout": 300}})
    assert status == 504 and doc["error"] in ("wamp.error.canceled", "wamp.error.timeout"), doc

    status, doc = await post(cluster[1], "call", {"args": [1]})
    assert status == 400 and doc["error"] == "junction.bridge.bad_request", doc
    status, doc = await post(cluster[1], "call", b"not json")
    assert status == 400, doc
    callee.leave()


async def test_credentials_and_permissions(cluster, unique):
    topic = unique("com.br")
    status, doc = await post(cluster[1], "publish", {"topic": topic}, ticket=None)
    assert status == 401 and doc["error"] == "junction.bridge.unauthenticated", doc
    status, doc = await post(cluster[1], "publish", {"topic": topic}, ticket="raw:wrong")
    assert status == 401, doc
    status, doc = await post(cluster[1], "call", {"procedure": topic}, ticket=None,
                             headers={"Authorization": "Basic eDp5"})
    assert status == 401, doc

    # Basic AUTHID:TICKET: the realm's ticket method, as a WAMP login
    basic = "Basic " + base64.b64encode(f"svc:{TICKETS['svc']}".encode()).decode()
    status, doc = await post(cluster[1], "publish", {"topic": topic}, ticket=None,
                             headers={"Authorization": basic})
    assert status == 202, doc
    for wrong in ("svc:nope", "nobody:svc-ticket", "no-colon"):
        bad = "Basic " + base64.b64encode(wrong.encode()).decode()
        status, doc = await post(cluster[1], "publish", {"topic": topic}, ticket=None,
                                 headers={"Authorization": bad})
        assert status == 401 and doc["error"] == "junction.bridge.unauthenticated", (wrong, doc)

    # the limited role may subscribe only
    status, doc = await post(cluster[1], "publish", {"topic": topic, "options": {"acknowledge": True}},
                             ticket="limited")
    assert status == 403 and doc["error"] == "wamp.error.not_authorized", doc
    status, doc = await post(cluster[1], "call", {"procedure": topic}, ticket="limited")
    assert status == 403 and doc["error"] == "wamp.error.not_authorized", doc
    # outside the backend role's prefix
    status, doc = await post(cluster[1], "publish", {"topic": "com.other.x", "options": {"acknowledge": True}})
    assert status == 403, doc


async def test_signed_requests(cluster, unique):
    sub = await session(cluster[2])
    topic = unique("com.br")
    sink = Sink()
    await sub.subscribe(sink, topic, options=SubscribeOptions(details_arg="details"))

    body = json.dumps({"topic": topic, "args": ["signed"], "options": {"acknowledge": True}}).encode()
    query = signed_query(body)
    status, doc = await post(cluster[1], "publish", body, ticket=None, query=query)
    assert status == 200, doc
    args, _, details = await sink.get()
    assert args == ["signed"] and details.publication == doc["id"]

    # the same signed request again: a replay
    status, doc = await post(cluster[1], "publish", body, ticket=None, query=query)
    assert status == 401, doc
    # the body changed after signing
    tampered = body.replace(b"signed", b"forged")
    status, doc = await post(cluster[1], "publish", tampered, ticket=None, query=signed_query(body, seq=2))
    assert status == 401, doc
    # another secret, an unknown key, a stale timestamp
    status, doc = await post(cluster[1], "publish", body, ticket=None, query=signed_query(body, secret="nope"))
    assert status == 401, doc
    status, doc = await post(cluster[1], "publish", body, ticket=None, query=signed_query(body, key="other"))
    assert status == 401, doc
    stale = signed_query(body, timestamp="2011-10-14T16:59:51.123Z")
    status, doc = await post(cluster[1], "publish", body, ticket=None, query=stale)
    assert status == 401, doc
    assert sink.empty(), "no refused request published"
    sub.leave()


async def test_body_limit(cluster, unique):
    big = {"topic": unique("com.br"), "args": ["x" * 4096]}
    status, doc = await post(cluster[1], "publish", big)
    assert status == 413 and doc["error"] == "junction.bridge.body_too_large", doc


async def test_openapi_document_matches_the_routes(cluster, unique):
    status, spec = await get(cluster[1], "openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    prefix = cluster[1].listeners["bridge"].split("/", 3)[3]
    paths = spec["paths"]
    assert set(paths) == {f"/{prefix}/publish", f"/{prefix}/call", f"/{prefix}/openapi.json"}

    def documented(route):
        return set(paths[f"/{prefix}/{route}"]["post"]["responses"])

    topic = unique("com.br")
    cases = {
        "publish": [({"topic": topic}, "svc", 202), ({"topic": topic, "options": {"acknowledge": True}}, "svc", 200),
                    ({"topic": topic}, None, 401), ({"nope": 1}, "svc", 400),
                    ({"topic": topic, "args": ["x" * 4096]}, "svc", 413),
                    ({"topic": topic, "options": {"acknowledge": True}}, "limited", 403)],
        "call": [({"procedure": topic + ".none"}, "svc", 404), ({"procedure": topic}, None, 401),
                 ({"procedure": topic}, "limited", 403), ({}, "svc", 400)],
    }
    for route, tries in cases.items():
        assert route in [p.rsplit("/", 1)[1] for p in paths]
        for body, ticket, want in tries:
            status, doc = await post(cluster[1], route, body, ticket=ticket)
            assert status == want, (route, body, doc)
            assert str(status) in documented(route), (route, status)
            if status >= 400:
                assert isinstance(doc["error"], str)


async def test_rate_limit_per_client_address(cluster, unique):
    # node 2's bridge: a burst of 3, then (almost) nothing
    topic = unique("com.br")
    statuses = []
    for _ in range(5):
        status, doc = await post(cluster[2], "publish", {"topic": topic})
        statuses.append(status)
    assert statuses[:3] == [202, 202, 202], statuses
    assert statuses[3:] == [429, 429], statuses
    assert doc["error"] == "junction.bridge.rate_limited"


def test_https_bridge_with_anonymous_role(start_router, tmp_path):
    """[bridge.tls]: the bridge serves HTTPS; with anonymous_role a request without
    credentials is that role (authorized as it: the role may only call here)."""
    from tls_certs import CA

    ca = CA(tmp_path / "pki")
    server = ca.issue("127.0.0.1", "server")
    r = start_router(config=f"""
[[realms]]
name = "open"
[[realms.roles]]
name = "guest"
[[realms.roles.permissions]]
uri = "com.open."
match = "prefix"
call = true

[bridge]
listen = "127.0.0.1:0"
anonymous_role = "guest"
path = "/api/wamp"
[bridge.tls]
cert = "{server.cert}"
key = "{server.key}"
""")
    url = r.listeners["bridge"]
    assert url.startswith("https://") and url.endswith("/api/wamp"), url
    ctx = ca.client_context()

    def send(route, body):
        req = urllib.request.Request(f"{url}/{route}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    status, doc = send("call", {"procedure": "com.open.nobody_home"})
    assert status == 404 and doc["error"] == "wamp.error.no_such_procedure", doc
    status, doc = send("publish", {"topic": "com.open.news", "options": {"acknowledge": True}})
    assert status == 403 and doc["error"] == "wamp.error.not_authorized", doc
    with urllib.request.urlopen(f"{url}/openapi.json", timeout=10, context=ctx) as resp:
        assert f"{r.listeners['bridge'].split('/', 3)[3]}" in json.dumps(json.loads(resp.read())["paths"])


DYNAMIC = """
[[realms]]
name = "auth"

[[realms]]
name = "dyn"
[realms.auth]
authenticator_realm = "auth"
authenticator_role = "anonymous"
[realms.auth.ticket]
authenticator = "com.example.authenticate"
[[realms.roles]]
name = "user"
[[realms.roles.permissions]]
uri = "com.dyn."
match = "prefix"
call = true
[bridge]
listen = "127.0.0.1:0"
realm = "dyn"
"""


async def test_basic_login_through_the_dynamic_authenticator(start_router):
    """Basic AUTHID:TICKET goes to the realm's dynamic ticket authenticator; the
    role it answers is the one the request is authorized as."""
    r = start_router(config=DYNAMIC)
    seen = []

    def authenticate(realm, authid, details):
        seen.append((realm, authid, details["ticket"]))
        if details["ticket"] == f"pw-{authid}":
            return {"role": "user", "authid": authid.upper()}
        raise ApplicationError("com.example.invalid_ticket", "wrong ticket")

    authenticator = await connect_session(r, ALL_COMBOS[0], realm="auth")
    await authenticator.joined
    await authenticator.register(authenticate, "com.example.authenticate")

    def basic(authid, ticket):
        return {"Authorization": "Basic " + base64.b64encode(f"{authid}:{ticket}".encode()).decode()}

    status, doc = await post(r, "call", {"procedure": "com.dyn.nothing"}, ticket=None, headers=basic("joe", "pw-joe"))
    assert status == 404 and doc["error"] == "wamp.error.no_such_procedure", doc
    assert seen[-1] == ("dyn", "joe", "pw-joe")
    status, doc = await post(r, "call", {"procedure": "com.other"}, ticket=None, headers=basic("joe", "pw-joe"))
    assert status == 403, doc
    status, doc = await post(r, "call", {"procedure": "com.dyn.nothing"}, ticket=None, headers=basic("joe", "bad"))
    assert status == 401 and doc["error"] == "junction.bridge.unauthenticated", doc
    # a bearer ticket names no authid: the dynamic authenticator cannot judge it
    status, doc = await post(r, "call", {"procedure": "com.dyn.nothing"}, ticket="raw:pw-joe")
    assert status == 401, doc
    authenticator.leave()
