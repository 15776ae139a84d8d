# Shared helpers for the Advanced Profile interop tests (tests/python/test_adv_*.py).
#
# - `extra_options`: Autobahn|Python 26 has no API for some options the
#   Advanced Profile defines (CALL.Options.disclose_me, PUBLISH.Options.disclose_me,
#   REGISTER.Options.disclose_caller, CANCEL.Options.mode). This context manager
#   adds such options to the next messages of one type that an Autobahn session
#   sends, so the rest of the exchange still goes through Autobahn.
# - `raw_peer`: a wampraw client joined with the client features announced
#   (call_canceling, progressive results/invocations, ...), so the router treats
#   it as an advanced-profile peer.
# - `Sink`: an event / invocation handler that queues what it gets.
# - small helpers on top of wampraw (register, call, expect).
import asyncio
import contextlib

import pytest
from autobahn.wamp import message

import wampraw
from conftest import ALL_COMBOS

# message codes missing from wampraw (advanced profile)
CANCEL = 49
INTERRUPT = 69

# A smaller set of combos for tests that spend wall time on timers: both
# transports, json and msgpack.
TIMED_COMBOS = [c for c in ALL_COMBOS if c.serializer in ("json", "msgpack")]
TIMED_IDS = [c.id for c in TIMED_COMBOS]
timed_combos = pytest.mark.parametrize("tcombo", TIMED_COMBOS, ids=TIMED_IDS)

ALL_CLIENT_FEATURES = {
    "publisher": {"features": {
        "publisher_identification": True,
        "subscriber_blackwhite_listing": True,
        "publisher_exclusion": True,
    }},
    "subscriber": {"features": {
        "publisher_identification": True,
        "pattern_based_subscription": True,
    }},
    "caller": {"features": {
        "caller_identification": True,
        "progressive_call_results": True,
        "progressive_call_invocations": True,
        "call_canceling": True,
        "call_timeout": True,
    }},
    "callee": {"features": {
        "caller_identification": True,
        "pattern_based_registration": True,
        "shared_registration": True,
        "progressive_call_results": True,
        "progressive_call_invocations": True,
        "call_canceling": True,
    }},
}

# A client announcing no features at all (basic profile only).
NO_FEATURES = {"publisher": {}, "subscriber": {}, "caller": {}, "callee": {}}


def other_combo(combo):
    """A different transport *and* serializer than `combo`."""
    for c in ALL_COMBOS:
        if c.transport != combo.transport and c.serializer != combo.serializer:
            return c
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------
# Autobahn option injection
# --------------------------------------------------------------------------

_patched_classes = {}


def _with_extra(cls, extra):
    key = (cls, tuple(sorted(extra.items())))
    patched = _patched_classes.get(key)
    if patched is None:
        def marshal(self):
            m = cls.marshal(self)
            # PUBLISH, CALL, REGISTER and CANCEL all carry Options at index 2
            m[2] = {**(m[2] or {}), **extra}
            return m

        patched = type(f"{cls.__name__}WithExtraOptions", (cls,), {"__slots__": (), "marshal": marshal})
        _patched_classes[key] = patched
    return patched


@contextlib.contextmanager
def extra_options(session, msg_cls, **extra):
    """Within the block, every `msg_cls` message (message.Call, message.Publish,
    message.Register, message.Cancel) the Autobahn session sends carries `extra`
    in its Options. Autobahn sends synchronously inside call()/publish()/
    register() and in a cancelled call's canceller, so use the block around the
    call that sends, and await the returned future after it."""
    transport = session._transport
    assert transport is not None, "session has no transport"
    original = transport.send

    def send(msg):
        if type(msg) is msg_cls:
            msg.__class__ = _with_extra(msg_cls, extra)
        return original(msg)

    transport.send = send
    try:
        yield
    finally:
        del transport.send  # back to the class attribute


def call_with(session, extra, procedure, *args, options=None, **kwargs):
    """session.call() with extra CALL options (e.g. disclose_me=True)."""
    with extra_options(session, message.Call, **extra):
        if options is not None:
            return session.call(procedure, *args, options=options, **kwargs)
        return session.call(procedure, *args, **kwargs)


def publish_with(session, extra, topic, *args, options=None, **kwargs):
    """session.publish() with extra PUBLISH options (e.g. disclose_me=True)."""
    with extra_options(session, message.Publish, **extra):
        if options is not None:
            return session.publish(topic, *args, options=options, **kwargs)
        return session.publish(topic, *args, **kwargs)


def register_with(session, extra, endpoint, procedure, options=None):
    """session.register() with extra REGISTER options (e.g. disclose_caller=True)."""
    with extra_options(session, message.Register, **extra):
        return session.register(endpoint, procedure, options=options)


def identity(session):
    """(session id, authid, authrole) of a joined Autobahn session, as WELCOME said."""
    details = session.joined.result()
    return session.session_id, details.authid, details.authrole


# --------------------------------------------------------------------------
# Queues of things received
# --------------------------------------------------------------------------


class Sink:
    """Event handler (use with details_arg='details') that queues
    (args, kwargs, details)."""

    def __init__(self):
        self.queue = asyncio.Queue()
        self.received = []

    def __call__(self, *args, details=None, **kwargs):
        item = (list(args), kwargs, details)
        self.received.append(item)
        self.queue.put_nowait(item)

    async def get(self, timeout=10):
        return await asyncio.wait_for(self.queue.get(), timeout)

    def empty(self):
        return self.queue.empty()


# --------------------------------------------------------------------------
# Raw peers
# --------------------------------------------------------------------------


async def raw_peer(wamp, combo=None, roles=None):
    """A wampraw client joined to realm1 announcing `roles` (default: every
    advanced client feature). Sets .session_id, .welcome, .authid, .authrole."""
    c = await wamp.raw(combo=combo)
    welcome = await c.hello(details={"roles": ALL_CLIENT_FEATURES if roles is None else roles})
    assert welcome[0] == wampraw.WELCOME, f"expected WELCOME, got {welcome!r}"
    c.welcome = welcome
    c.session_id = welcome[1]
    c.authid = welcome[2].get("authid")
    c.authrole = welcome[2].get("authrole")
    return c


async def raw_register(c, procedure, options=None):
    rid = c.request_id()
    reply = await c.request([wampraw.REGISTER, rid, options or {}, procedure])
    assert reply[0] == wampraw.REGISTERED and reply[1] == rid, f"REGISTER {procedure} {options}: {reply!r}"
    return reply[2]


async def raw_subscribe(c, topic, options=None):
    rid = c.request_id()
    reply = await c.request([wampraw.SUBSCRIBE, rid, options or {}, topic])
    assert reply[0] == wampraw.SUBSCRIBED and reply[1] == rid, f"SUBSCRIBE {topic} {options}: {reply!r}"
    return reply[2]


async def raw_call(c, procedure, args=None, options=None, kwargs=None):
    """Send a CALL; returns its request id (read the answer with expect())."""
    rid = c.request_id()
    msg = [wampraw.CALL, rid, options or {}, procedure]
    if args is not None or kwargs is not None:
        msg.append(list(args or []))
    if kwargs is not None:
        msg.append(kwargs)
    await c.send(msg)
    return rid


async def expect(c, code, timeout=10.0, what=""):
    """The next message of raw client c; asserts its type code."""
    msg = await c.recv(timeout)
    assert msg[0] == code, f"{what}: expected message type {code}, got {msg!r}"
    return msg


async def expect_invocation(c, registration=None, timeout=10.0):
    inv = await expect(c, wampraw.INVOCATION, timeout, "callee")
    if registration is not None:
        assert inv[2] == registration, inv
    assert isinstance(inv[3], dict), inv
    return inv


def payload_of(msg, start):
    """(args, kwargs) of a message whose payload starts at index `start`."""
    args = msg[start] if len(msg) > start else []
    kwargs = msg[start + 1] if len(msg) > start + 1 else {}
    return args, kwargs


async def wait_for(fut, timeout=10.0):
    return await asyncio.wait_for(asyncio.shield(fut), timeout)
