# Advanced Profile, payload_passthru_mode
# (rfc/text/advanced/ap_50_payload_passthru_mode.md), one router, raw clients on
# all six transport x serializer pairs (Autobahn|Python cannot set ppt_* options).
#
# Peers announce HELLO.Details.roles.<role>.features.payload_passthru_mode.
# - CALL.Options.ppt_* -> INVOCATION.Details.ppt_*, payload (one binary item in
#   Arguments, no ArgumentsKw) passed untouched;
# - YIELD.Options.ppt_* -> RESULT.Details.ppt_* (also progressive results);
# - callee ERROR.Details.ppt_* -> caller ERROR.Details.ppt_*;
# - PUBLISH.Options.ppt_* -> EVENT.Details.ppt_*;
# - a Caller / Publisher / Callee using ppt without announcing it -> ABORT
#   wamp.error.protocol_violation;
# - a ppt CALL routed to a Callee without the feature -> ERROR
#   wamp.error.feature_not_supported to the Caller, nothing to the Callee;
# - a ppt YIELD for a Caller without the feature -> ERROR
#   wamp.error.feature_not_supported to the Callee (spec).
#
# JSON has no binary type: a binary item is the string "\0" + base64 on the
# wire (wire_binary / same_binary); the router must hand it on as binary to
# peers using MessagePack / CBOR and back.
import pytest

import wampraw
from conftest import other_combo
from raw_clients import (ALL_CLIENT_FEATURES, expect, expect_invocation, raw_on, raw_register, raw_subscribe,
                         same_binary, wire_binary)

pytestmark = pytest.mark.timeout(20)

PAYLOAD = bytes(range(256)) + b"\x00encrypted\xff"
FULL = {
    "ppt_scheme": "wamp.eth",
    "ppt_serializer": "cbor",
    "ppt_cipher": "xsalsa20poly1305",
    "ppt_keyid": "GTtQ37XGJO2O4R8Dvx4AUo8pe61D9evIWpKGQAPdOh0=",
}
MQTT = {"ppt_scheme": "mqtt", "ppt_serializer": "mqtt"}
CUSTOM = {"ppt_scheme": "x_my_ppt"}
OPTION_SETS = [FULL, MQTT, CUSTOM]
OPTION_IDS = ["full", "mqtt", "scheme-only"]


def ppt_part(details):
    return {k: v for k, v in details.items() if k.startswith("ppt_")}


def assert_payload(msg, start, c, data=PAYLOAD):
    """msg carries exactly [binary] as Arguments and no (or empty) ArgumentsKw."""
    assert len(msg) in (start + 1, start + 2), msg
    args = msg[start]
    assert isinstance(args, list) and len(args) == 1, msg
    assert same_binary(c.serializer, args[0], data), f"payload changed on the way: {msg!r}"
    if len(msg) == start + 2:
        assert msg[start + 1] == {}, msg


async def pair(wamp, combo, callee_roles=None, caller_roles=None):
    callee = await raw_on(wamp, roles=callee_roles)
    caller = await raw_on(wamp, combo=other_combo(combo), roles=caller_roles)
    return callee, caller


async def plain_call_reaches(caller, callee, proc, reg, tag):
    """Barrier: a plain CALL from `caller`; the callee's next message is its
    INVOCATION, the caller's next its RESULT."""
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {}, proc, [tag]])
    inv = await expect_invocation(callee, reg)
    assert inv[4] == [tag], inv
    await callee.send([wampraw.YIELD, inv[1], {}, [tag]])
    res = await expect(caller, wampraw.RESULT, what="caller barrier")
    assert res[1] == rid and res[3] == [tag], res


@pytest.mark.parametrize("opts", OPTION_SETS, ids=OPTION_IDS)
async def test_call_and_yield(wamp, combo, unique, opts):
    proc = unique()
    callee, caller = await pair(wamp, combo)
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, dict(opts), proc, [wire_binary(caller.serializer, PAYLOAD)]])
    inv = await expect_invocation(callee, reg)
    assert ppt_part(inv[3]) == opts, inv
    assert_payload(inv, 4, callee)
    answer = bytes(reversed(PAYLOAD))
    yopts = dict(opts, ppt_keyid="reply-key") if "ppt_keyid" in opts else dict(opts)
    await callee.send([wampraw.YIELD, inv[1], yopts, [wire_binary(callee.serializer, answer)]])
    res = await expect(caller, wampraw.RESULT, what="caller")
    assert res[1] == rid, res
    assert ppt_part(res[2]) == yopts, res
    assert_payload(res, 3, caller, answer)


async def test_plain_answer_to_a_ppt_call(wamp, combo, unique):
    """A YIELD without ppt options gives a RESULT without ppt details."""
    proc = unique()
    callee, caller = await pair(wamp, combo)
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, dict(FULL), proc, [wire_binary(caller.serializer, PAYLOAD)]])
    inv = await expect_invocation(callee, reg)
    await callee.send([wampraw.YIELD, inv[1], {}, ["plain"]])
    res = await expect(caller, wampraw.RESULT)
    assert ppt_part(res[2]) == {}, res
    assert res[3] == ["plain"], res


async def test_progressive_results(wamp, combo, unique):
    proc = unique()
    callee, caller = await pair(wamp, combo)
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, dict(FULL, receive_progress=True), proc,
                       [wire_binary(caller.serializer, PAYLOAD)]])
    inv = await expect_invocation(callee, reg)
    assert ppt_part(inv[3]) == FULL and inv[3].get("receive_progress") is True, inv
    for i in range(3):
        chunk = bytes([i]) * 10
        await callee.send([wampraw.YIELD, inv[1], dict(FULL, progress=True), [wire_binary(callee.serializer, chunk)]])
        res = await expect(caller, wampraw.RESULT)
        assert res[1] == rid and res[2].get("progress") is True, res
        assert ppt_part(res[2]) == FULL, res
        assert_payload(res, 3, caller, chunk)
    await callee.send([wampraw.YIELD, inv[1], dict(FULL), [wire_binary(callee.serializer, b"end")]])
    res = await expect(caller, wampraw.RESULT)
    assert not res[2].get("progress") and ppt_part(res[2]) == FULL, res
    assert_payload(res, 3, caller, b"end")


async def test_callee_error_carries_ppt(wamp, combo, unique):
    proc = unique()
    callee, caller = await pair(wamp, combo)
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, dict(FULL), proc, [wire_binary(caller.serializer, PAYLOAD)]])
    inv = await expect_invocation(callee, reg)
    await callee.send([wampraw.ERROR, wampraw.INVOCATION, inv[1], dict(FULL), "com.myapp.invalid_revenue_year",
                       [wire_binary(callee.serializer, b"secret reason")]])
    err = await expect(caller, wampraw.ERROR, what="caller")
    assert err[1:3] == [wampraw.CALL, rid], err
    assert err[4] == "com.myapp.invalid_revenue_year", err
    assert ppt_part(err[3]) == FULL, err
    assert_payload(err, 5, caller, b"secret reason")


@pytest.mark.parametrize("opts", OPTION_SETS, ids=OPTION_IDS)
async def test_publish_event(wamp, combo, unique, opts):
    topic = unique()
    subscriber = await raw_on(wamp)
    other = await raw_on(wamp, combo=other_combo(combo))
    publisher = await raw_on(wamp, combo=other_combo(combo))
    sid = await raw_subscribe(subscriber, topic)
    await raw_subscribe(other, topic)
    pid = publisher.request_id()
    await publisher.send([wampraw.PUBLISH, pid, dict(opts, acknowledge=True), topic,
                          [wire_binary(publisher.serializer, PAYLOAD)]])
    ack = await expect(publisher, wampraw.PUBLISHED, what="publisher")
    for c in (subscriber, other):
        ev = await expect(c, wampraw.EVENT, what="subscriber")
        assert ev[1] == sid and ev[2] == ack[2], ev
        assert ppt_part(ev[3]) == opts, ev
        assert_payload(ev, 4, c)


async def test_caller_without_the_feature_is_aborted(wamp, combo, unique):
    proc = unique()
    callee, caller = await pair(wamp, combo, caller_roles=ALL_CLIENT_FEATURES)
    reg = await raw_register(callee, proc)
    await caller.send([wampraw.CALL, caller.request_id(), dict(FULL), proc,
                       [wire_binary(caller.serializer, PAYLOAD)]])
    msgs = await caller.recv_until_closed()
    assert msgs and msgs[0][0] == wampraw.ABORT, msgs
    assert msgs[0][2] == "wamp.error.protocol_violation", msgs
    # the callee got nothing
    other = await raw_on(wamp)
    await plain_call_reaches(other, callee, proc, reg, "after the abort")


async def test_publisher_without_the_feature_is_aborted(wamp, combo, unique):
    topic = unique()
    subscriber = await raw_on(wamp)
    await raw_subscribe(subscriber, topic)
    publisher = await raw_on(wamp, combo=other_combo(combo), roles=ALL_CLIENT_FEATURES)
    await publisher.send([wampraw.PUBLISH, publisher.request_id(), dict(FULL, acknowledge=True), topic,
                          [wire_binary(publisher.serializer, PAYLOAD)]])
    msgs = await publisher.recv_until_closed()
    assert msgs and msgs[0][0] == wampraw.ABORT, msgs
    assert msgs[0][2] == "wamp.error.protocol_violation", msgs
    # the subscriber got nothing: its next event is a barrier
    barrier = await raw_on(wamp)
    await barrier.send([wampraw.PUBLISH, barrier.request_id(), {}, topic, ["barrier"]])
    ev = await expect(subscriber, wampraw.EVENT)
    assert ev[4] == ["barrier"], ev


async def test_callee_yield_without_the_feature_is_aborted(wamp, combo, unique):
    proc = unique()
    callee, caller = await pair(wamp, combo, callee_roles=ALL_CLIENT_FEATURES)
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {}, proc, ["plain"]])
    inv = await expect_invocation(callee, reg)
    await callee.send([wampraw.YIELD, inv[1], dict(FULL), [wire_binary(callee.serializer, PAYLOAD)]])
    msgs = await callee.recv_until_closed()
    assert msgs and msgs[0][0] == wampraw.ABORT, msgs
    assert msgs[0][2] == "wamp.error.protocol_violation", msgs
    # the caller never sees the ppt payload; its call ends with an error
    err = await caller.recv()
    assert err[0] == wampraw.ERROR and err[2] == rid, err


async def test_callee_without_the_feature(wamp, combo, unique):
    proc = unique()
    callee, caller = await pair(wamp, combo, callee_roles=ALL_CLIENT_FEATURES)
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, dict(FULL), proc, [wire_binary(caller.serializer, PAYLOAD)]])
    err = await expect(caller, wampraw.ERROR, what="caller")
    assert err[1:3] == [wampraw.CALL, rid], err
    assert err[4] == "wamp.error.feature_not_supported", err
    # the callee got no INVOCATION; the caller's session goes on
    await plain_call_reaches(caller, callee, proc, reg, "after the refusal")


async def test_empty_scheme_is_not_passthru(wamp, unique):
    """ppt mode is recognised by a non-empty ppt_scheme: an empty one from a
    peer without the feature is no protocol violation."""
    proc = unique()
    callee, caller = await pair(wamp, wamp.combo, callee_roles=ALL_CLIENT_FEATURES,
                                caller_roles=ALL_CLIENT_FEATURES)
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {"ppt_scheme": ""}, proc, ["x"]])
    inv = await expect_invocation(callee, reg)
    await callee.send([wampraw.YIELD, inv[1], {}, ["y"]])
    res = await expect(caller, wampraw.RESULT)
    assert res[1] == rid and res[3] == ["y"], res


async def test_ppt_yield_to_a_caller_without_the_feature(wamp, unique):
    """Spec: a ppt YIELD that must go to a Caller without the feature is an
    application error: the Dealer answers the Callee with
    wamp.error.feature_not_supported (and the Caller gets no ppt RESULT)."""
    proc = unique()
    callee, caller = await pair(wamp, wamp.combo, caller_roles=ALL_CLIENT_FEATURES)
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {}, proc, ["plain"]])
    inv = await expect_invocation(callee, reg)
    await callee.send([wampraw.YIELD, inv[1], dict(FULL), [wire_binary(callee.serializer, PAYLOAD)]])
    # barrier on the caller side: a second call answered plainly
    rid2 = caller.request_id()
    await caller.send([wampraw.CALL, rid2, {}, proc, ["second"]])
    first = await caller.recv()
    assert not (first[0] == wampraw.RESULT and first[1] == rid and ppt_part(first[2])), (
        f"a caller without payload_passthru_mode got a ppt RESULT, Details {first[2]!r}")
    # The second CALL comes from another connection, so its INVOCATION may reach the
    # callee before or after the ERROR for the YIELD; anything else may not.
    reply = await callee.recv()
    if reply[0] == wampraw.INVOCATION and reply[4] == ["second"]:
        reply = await callee.recv()
    assert reply[0] == wampraw.ERROR and reply[4] == "wamp.error.feature_not_supported", (
        f"callee: expected ERROR wamp.error.feature_not_supported for its ppt YIELD, got {reply!r}")
