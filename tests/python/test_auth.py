"""Authentication interop: Autobahn|Python clients against a router with static
ticket and WAMP-CRA principals, over every transport/serializer pair: success,
wrong secret, unknown authid, a method the realm does not offer, and anonymous
refused once authentication is configured."""

import pytest
from autobahn.wamp import auth

from conftest import TestSession, JoinFailed, connect_session

CONFIG = """
[[realms]]
name = "secure"

[realms.auth.ticket.principals.joe]
role = "user"
ticket = "secret123"

[realms.auth.wampcra.principals.peter]
role = "operator"
secret = "prq7+YkJ1/KlW1X0YczMHw=="

[realms.auth.wampcra.principals.salty]
role = "user"
secret = "EX1Y3Q9BMM2oGLxsGqDgFeuqtPMf7Wz8Lh6PotZ62ho="
salt = "salt123"
iterations = 100
keylen = 32
"""


def session_for(authid, methods, secret, salted=False):
    class AuthSession(TestSession):
        __test__ = False

        def onConnect(self):
            self.join(self.config.realm, methods, authid)

        def onChallenge(self, challenge):
            if challenge.method == "ticket":
                return secret
            key = secret
            if salted:
                extra = challenge.extra
                key = auth.derive_key(secret, extra["salt"], extra["iterations"], extra["keylen"])
            return auth.compute_wcs(key, challenge.extra["challenge"])

    return AuthSession


@pytest.fixture
def secure_router(start_router):
    return start_router(config=CONFIG)


async def join(router, combo, cls):
    return await connect_session(router, combo, realm="secure", session_cls=cls)


async def test_ticket_success(secure_router, combo):
    s = await join(secure_router, combo, session_for("joe", ["ticket"], "secret123"))
    details = await s.joined
    assert (details.authid, details.authrole, details.authmethod) == ("joe", "user", "ticket")
    assert details.authprovider == "static"
    s.leave()


async def test_wampcra_success(secure_router, combo):
    s = await join(secure_router, combo, session_for("peter", ["wampcra"], "prq7+YkJ1/KlW1X0YczMHw=="))
    details = await s.joined
    assert (details.authid, details.authrole, details.authmethod) == ("peter", "operator", "wampcra")
    s.leave()


async def test_wampcra_salted_secret(secure_router, combo):
    s = await join(secure_router, combo, session_for("salty", ["wampcra"], "secret", salted=True))
    assert (await s.joined).authid == "salty"
    s.leave()


@pytest.mark.parametrize(
    "authid, methods, secret, reason",
    [
        ("joe", ["ticket"], "wrong", "wamp.error.authentication_denied"),
        ("peter", ["wampcra"], "bm90IHRoZSBzZWNyZXQ=", "wamp.error.authentication_denied"),
        # an unknown authid is answered like a wrong ticket (disclose_unknown_authids = false)
        ("nobody", ["ticket"], "x", "wamp.error.authentication_denied"),
        ("joe", ["cryptosign"], "x", "wamp.error.no_matching_auth_method"),
    ],
)
async def test_refusals(secure_router, combo, authid, methods, secret, reason):
    with pytest.raises(JoinFailed) as exc:
        await join(secure_router, combo, session_for(authid, methods, secret))
    assert exc.value.reason == reason


async def test_anonymous_refused_when_auth_is_configured(secure_router, combo):
    with pytest.raises(JoinFailed) as exc:
        await connect_session(secure_router, combo, realm="secure")
    assert exc.value.reason.startswith("wamp.error.")
