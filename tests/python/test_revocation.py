# Advanced Profile, registration_revocation and subscription_revocation
# (rfc/text/advanced/rpc_registration_revocation.md,
# pubsub_subscription_revocation.md), triggered through Crossbar.io's meta
# procedures wamp.registration.remove_callee(registration, session, reason=) and
# wamp.subscription.remove_subscriber(subscription, session, reason=):
# - a peer that announced the feature gets [UNREGISTERED, 0, {registration, reason}]
#   / [UNSUBSCRIBED, 0, {subscription, reason}] (raw client, exact messages);
# - a peer that did not announce it gets nothing (the spec forbids sending it),
#   but loses the registration / subscription all the same;
# - the meta events on_unregister/on_delete and on_unsubscribe/on_delete are
#   published either way; unknown ids give the meta API's errors.
import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions

import wampraw
from autobahn_helpers import call, subscribe_log
from raw_clients import ALL_CLIENT_FEATURES, raw_on, with_features

pytestmark = pytest.mark.timeout(20)

REVOKING = with_features(ALL_CLIENT_FEATURES, registration_revocation=True, subscription_revocation=True)


async def raw_callee(wamp, proc, roles, invoke="single"):
    c = await raw_on(wamp, roles=roles)
    reply = await c.request([wampraw.REGISTER, c.request_id(), {"invoke": invoke}, proc])
    assert reply[0] == wampraw.REGISTERED, reply
    return c, reply[2]


async def raw_subscriber(wamp, topic, roles):
    c = await raw_on(wamp, roles=roles)
    reply = await c.request([wampraw.SUBSCRIBE, c.request_id(), {}, topic])
    assert reply[0] == wampraw.SUBSCRIBED, reply
    return c, reply[2]


async def test_callee_announcing_the_feature_is_told(wamp, combo, unique):
    proc = unique()
    admin = await wamp.session()
    events = await subscribe_log(admin, "wamp.registration.", match="prefix")
    callee, reg = await raw_callee(wamp, proc, REVOKING)
    await call(admin, "wamp.registration.remove_callee", reg, callee.session_id, reason="moving endpoint")
    msg = await callee.recv()
    assert msg == [wampraw.UNREGISTERED, 0, {"registration": reg, "reason": "moving endpoint"}], msg
    # the procedure is gone
    with pytest.raises(ApplicationError) as e:
        await call(admin, proc)
    assert e.value.error == "wamp.error.no_such_procedure"
    seen = set()
    while not {"wamp.registration.on_unregister", "wamp.registration.on_delete"} <= seen:
        args, _, details = await events.get()
        if args[:2] == [callee.session_id, reg]:
            seen.add(details.topic)
    # the callee knows it is no longer registered: UNREGISTER is an error now
    reply = await callee.request([wampraw.UNREGISTER, callee.request_id(), reg])
    assert reply[0] == wampraw.ERROR and reply[4] == "wamp.error.no_such_registration", reply


async def test_callee_without_the_feature_is_not_told(wamp, combo, unique):
    proc = unique()
    admin = await wamp.session()
    callee, reg = await raw_callee(wamp, proc, ALL_CLIENT_FEATURES)
    await call(admin, "wamp.registration.remove_callee", reg, callee.session_id)
    with pytest.raises(ApplicationError):
        await call(admin, proc)
    # nothing arrives at the callee: a PUBLISH it subscribed to is the next message
    reply = await callee.request([wampraw.SUBSCRIBE, callee.request_id(), {}, proc + ".ping"])
    assert reply[0] == wampraw.SUBSCRIBED, reply
    await admin.publish(proc + ".ping", options=PublishOptions(acknowledge=True))
    msg = await callee.recv()
    assert msg[0] == wampraw.EVENT, f"expected the EVENT, got {msg!r}"


async def test_shared_registration_keeps_the_other_callees(wamp, combo, unique):
    proc = unique()
    admin = await wamp.session()
    first, reg = await raw_callee(wamp, proc, REVOKING, invoke="first")
    second = await wamp.session()
    await second.register(lambda: "second", proc, options=RegisterOptions(invoke="first"))
    await call(admin, "wamp.registration.remove_callee", reg, first.session_id)
    assert (await first.recv())[0] == wampraw.UNREGISTERED
    assert await call(admin, proc) == "second"
    assert await call(admin, "wamp.registration.list_callees", reg) == [second.session_id]


async def test_remove_callee_errors(wamp, unique):
    admin = await wamp.session()
    callee = await wamp.session()
    reg = await callee.register(lambda: None, unique())
    for args, error in [((reg.id + 999_999, callee.session_id), "wamp.error.no_such_registration"),
                        ((reg.id, admin.session_id), "wamp.error.no_such_registration"),
                        ((reg.id,), "wamp.error.invalid_argument")]:
        with pytest.raises(ApplicationError) as e:
            await call(admin, "wamp.registration.remove_callee", *args)
        assert e.value.error == error, (args, e.value)


async def test_subscriber_announcing_the_feature_is_told(wamp, combo, unique):
    topic = unique()
    admin = await wamp.session()
    events = await subscribe_log(admin, "wamp.subscription.", match="prefix")
    sub, sid = await raw_subscriber(wamp, topic, REVOKING)
    other = await subscribe_log(await wamp.session(), topic)
    await call(admin, "wamp.subscription.remove_subscriber", sid, sub.session_id, reason="no longer authorized")
    msg = await sub.recv()
    assert msg == [wampraw.UNSUBSCRIBED, 0, {"subscription": sid, "reason": "no longer authorized"}], msg
    # the revoked subscriber gets no more events; the other one does
    await admin.publish(topic, 1, options=PublishOptions(acknowledge=True))
    assert (await other.get())[0] == [1]
    reply = await sub.request([wampraw.CALL, sub.request_id(), {}, "wamp.session.count"])
    assert reply[0] == wampraw.RESULT, f"expected the RESULT first, got {reply!r}"
    assert await call(admin, "wamp.subscription.count_subscribers", sid) == 1
    while True:
        args, _, details = await events.get()
        if details.topic == "wamp.subscription.on_unsubscribe" and args == [sub.session_id, sid]:
            break


async def test_subscriber_without_the_feature_is_not_told(wamp, combo, unique):
    topic = unique()
    admin = await wamp.session()
    sub, sid = await raw_subscriber(wamp, topic, ALL_CLIENT_FEATURES)
    await call(admin, "wamp.subscription.remove_subscriber", sid, sub.session_id)
    await admin.publish(topic, 1, options=PublishOptions(acknowledge=True))
    reply = await sub.request([wampraw.CALL, sub.request_id(), {}, "wamp.session.count"])
    assert reply[0] == wampraw.RESULT, f"nothing may come before the RESULT, got {reply!r}"
    # the last subscriber left: the subscription is deleted
    with pytest.raises(ApplicationError) as e:
        await call(admin, "wamp.subscription.get", sid)
    assert e.value.error == "wamp.error.no_such_subscription"


async def test_remove_subscriber_errors(wamp, unique):
    admin = await wamp.session()
    s = await wamp.session()
    sub = await s.subscribe(lambda *a: None, unique())
    with pytest.raises(ApplicationError) as e:
        await call(admin, "wamp.subscription.remove_subscriber", sub.id, admin.session_id)
    assert e.value.error == "wamp.error.no_such_subscription"
    with pytest.raises(ApplicationError) as e:
        await call(admin, "wamp.subscription.remove_subscriber", sub.id, 12345)
    assert e.value.error == "wamp.error.no_such_session"
