"""JWT tickets ([realms.auth.ticket.jwt]): Autobahn|Python clients join with a
signed JSON Web Token as their ticket, against a router whose keys come from a
JWKS file. Tokens are signed here with `cryptography` (Ed25519, ES256, RS256):
the mapped authid and authrole, refusals (expired, wrong issuer, unknown key),
the fallback to static principals for tickets that are not JWTs, a replaced JWKS
file taking effect without a restart, and a bad key file stopping the start."""

import base64
import json
import os
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from cluster_helpers import wait_until
from conftest import ALL_COMBOS, JoinFailed, connect_session, junction_bin
from test_auth import session_for


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(n, size=None):
    return n.to_bytes(size or (n.bit_length() + 7) // 8, "big")


class Key:
    """A signing key made for the test and its public JWK."""

    def __init__(self, alg, kid):
        self.alg, self.kid = alg, kid
        if alg == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
            raw = self.private.public_key().public_bytes_raw()
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            n = self.private.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "x": b64url(int_bytes(n.x, 32)), "y": b64url(int_bytes(n.y, 32))}
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            n = self.private.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "n": b64url(int_bytes(n.n)), "e": b64url(int_bytes(n.e))}
        self.jwk.update({"kid": kid, "alg": alg, "use": "sig"})

    def sign(self, claims, kid=True):
        header = {"alg": self.alg, "typ": "JWT"}
        if kid:
            header["kid"] = self.kid
        enc = lambda d: b64url(json.dumps(d, separators=(",", ":")).encode())
        message = f"{enc(header)}.{enc(claims)}".encode()
        if self.alg == "EdDSA":
            sig = self.private.sign(message)
        elif self.alg == "ES256":
            r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
            sig = int_bytes(r, 32) + int_bytes(s, 32)
        else:
            sig = self.private.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return f"{message.decode()}.{b64url(sig)}"


def claims(**over):
    c = {"sub": "alice", "role": "user", "iss": "https://idp.test", "aud": "junction", "exp": int(time.time()) + 300}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def write_jwks(path, keys):
    """Replaces the file in one step, as a deployment tool would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": [k.jwk for k in keys]}))
    os.replace(tmp, path)


def config(jwks_path):
    return f"""
[[realms]]
name = "secure"

[realms.auth.ticket.principals.joe]
role = "user"
ticket = "secret123"

[realms.auth.ticket.jwt]
jwks_file = "{jwks_path}"
issuer = "https://idp.test"
audience = "junction"
authid_claim = "sub"
authrole_claim = "role"
allowed_roles = ["user", "admin"]
leeway_s = 5
"""


# the tests that are about tokens rather than transports use one pair
ONE_COMBO = ALL_COMBOS[0]

KEYS = {alg: Key(alg, f"k-{alg}") for alg in ("EdDSA", "ES256", "RS256")}


@pytest.fixture
def jwks(tmp_path):
    path = tmp_path / "jwks.json"
    write_jwks(path, KEYS.values())
    return path


@pytest.fixture
def jwt_router(start_router, jwks):
    return start_router(config=config(jwks))


async def join(router, combo, ticket, authid=None):
    return await connect_session(router, combo, realm="secure", session_cls=session_for(authid, ["ticket"], ticket))


async def test_token_maps_to_authid_and_authrole(jwt_router, combo):
    for alg, key in KEYS.items():
        role = "admin" if alg == "ES256" else "user"
        s = await join(jwt_router, combo, key.sign(claims(sub=f"user-{alg}", role=role)))
        d = await s.joined
        assert (d.authid, d.authrole, d.authmethod, d.authprovider) == (f"user-{alg}", role, "ticket", "jwt"), alg
        s.leave()


async def test_refused_tokens(jwt_router):
    combo = ONE_COMBO
    key = KEYS["EdDSA"]
    stranger = Key("EdDSA", key.kid)
    cases = [
        (key.sign(claims(exp=int(time.time()) - 60)), "token expired"),
        (key.sign(claims(nbf=int(time.time()) + 600)), "token not yet valid"),
        (key.sign(claims(iss="https://evil.test")), "wrong issuer"),
        (key.sign(claims(aud="other")), "wrong audience"),
        (key.sign(claims(role="root")), "role not allowed"),
        (stranger.sign(claims()), "signature does not verify"),
        (Key("EdDSA", "unknown").sign(claims()), "unknown key id"),
    ]
    for token, why in cases:
        with pytest.raises(JoinFailed) as exc:
            await join(jwt_router, combo, token)
        assert exc.value.reason == "wamp.error.authentication_denied", why
        assert why in str(exc.value), (why, str(exc.value))
        for secret in (key.jwk["x"], stranger.jwk["x"]):
            assert secret not in str(exc.value)
    # HELLO may name the authid, but it must be the token's
    s = await join(jwt_router, combo, key.sign(claims()), authid="alice")
    assert (await s.joined).authid == "alice"
    s.leave()
    with pytest.raises(JoinFailed) as exc:
        await join(jwt_router, combo, key.sign(claims()), authid="mallory")
    assert exc.value.reason == "wamp.error.authentication_denied"


async def test_ordinary_tickets_go_to_static_principals(jwt_router):
    combo = ONE_COMBO
    s = await join(jwt_router, combo, "secret123", authid="joe")
    d = await s.joined
    assert (d.authid, d.authrole, d.authprovider) == ("joe", "user", "static")
    s.leave()
    with pytest.raises(JoinFailed) as exc:
        await join(jwt_router, combo, "wrong", authid="joe")
    assert exc.value.reason == "wamp.error.authentication_denied"


async def test_replaced_jwks_file_takes_effect(jwt_router, jwks):
    combo = ONE_COMBO
    old, new = KEYS["EdDSA"], Key("ES256", "rotated")
    s = await join(jwt_router, combo, old.sign(claims()))
    await s.joined
    s.leave()
    write_jwks(jwks, [new])

    async def new_key_accepted():
        try:
            s = await join(jwt_router, combo, new.sign(claims(sub="bob")))
        except JoinFailed:
            return False
        d = await s.joined
        s.leave()
        return d.authid == "bob"

    await wait_until(new_key_accepted, 20, "a token of the new key accepted")
    with pytest.raises(JoinFailed) as exc:
        await join(jwt_router, combo, old.sign(claims()))
    assert exc.value.reason == "wamp.error.authentication_denied"

    # a broken file keeps the keys in use
    jwks.write_text("{not json")
    assert jwt_router.alive()
    s = await join(jwt_router, combo, new.sign(claims(sub="carol")))
    assert (await s.joined).authid == "carol"
    s.leave()


def test_bad_key_file_stops_the_start(tmp_path):
    for content, expected in [(None, "cannot read"), ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "symmetric")]:
        jwks = tmp_path / "jwks.json"
        if content is None:
            jwks.unlink(missing_ok=True)
        else:
            jwks.write_text(content)
        cfg = tmp_path / "bad.toml"
        cfg.write_text(config(jwks))
        done = subprocess.run([str(junction_bin()), "--config", str(cfg), "--ws", "127.0.0.1:0"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, done
        assert "ticket.jwt.jwks_file" in done.stderr and expected in done.stderr, done.stderr


async def test_a_bearer_jwt_authenticates_an_http_bridge_request(start_router, jwks):
    """The HTTP bridge takes `Authorization: Bearer <JWT>` like a session's ticket:
    verified against the realm's keys, authorized as the token's role."""
    import asyncio

    from test_http_bridge import _post

    router = start_router(config=config(jwks) + '\n[bridge]\nlisten = "127.0.0.1:0"\nrealm = "secure"\n')
    url = router.listeners["bridge"] + "/publish"
    body = {"topic": "com.example.jwt", "args": [1]}

    def with_token(token):
        return asyncio.to_thread(_post, url, body, {"Authorization": f"Bearer {token}"})

    status, answer = await with_token(KEYS["ES256"].sign(claims()))
    assert status in (200, 202) and isinstance(answer["id"], int), (status, answer)
    status, answer = await with_token(KEYS["EdDSA"].sign(claims(exp=int(time.time()) - 600)))
    assert status == 401, (status, answer)
    status, answer = await with_token(KEYS["RS256"].sign(claims(aud="someone-else")))
    assert status == 401, (status, answer)
