# Helpers for Autobahn|Python sessions in the interop tests.
#
# - `call` / `leave`: Autobahn call and leave with a bounded wait; `wait_for`
#   awaits any future with a bound.
# - `extra_options`: Autobahn|Python 26 has no API for some options the
#   Advanced Profile defines (CALL.Options.disclose_me, PUBLISH.Options.disclose_me,
#   REGISTER.Options.disclose_caller, CANCEL.Options.mode). This context manager
#   adds such options to the next messages of one type that an Autobahn session
#   sends, so the rest of the exchange still goes through Autobahn
#   (`call_with` / `publish_with` / `register_with` wrap it); `identity` is a
#   session's (id, authid, authrole).
# - `Sink`: an event / invocation handler that queues what it gets.
# - `EventLog` / `subscribe_log`: an event handler (details_arg='details') that
#   queues what it gets and can wait for the first event satisfying a predicate;
#   meta events of other tests sharing the module's router are skipped that way.
import asyncio
import contextlib

from autobahn.wamp import message

CALL_TIMEOUT = 10.0
EVENT_TIMEOUT = 10.0


async def call(session, procedure, *args, **kwargs):
    return await asyncio.wait_for(session.call(procedure, *args, **kwargs), CALL_TIMEOUT)


async def leave(session, timeout=10.0):
    """GOODBYE from an Autobahn session; returns the router's CloseDetails."""
    session.leave()
    return await asyncio.wait_for(asyncio.shield(session.left), timeout)


async def wait_for(fut, timeout=10.0):
    return await asyncio.wait_for(asyncio.shield(fut), timeout)


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


class EventLog:
    """Event handler (use with details_arg='details') queueing
    (args, kwargs, details). `wait_for` picks the first event satisfying a
    predicate; events it passes over stay queued for later calls, in order."""

    def __init__(self):
        self.queue = asyncio.Queue()
        self.received = []
        self.backlog = []  # passed over by wait_for, not consumed yet

    def __call__(self, *args, details=None, **kwargs):
        item = (list(args), kwargs, details)
        self.received.append(item)
        self.queue.put_nowait(item)

    async def get(self, timeout=EVENT_TIMEOUT):
        if self.backlog:
            return self.backlog.pop(0)
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def wait_for(self, pred, timeout=EVENT_TIMEOUT, what="an event"):
        """The first event (args, kwargs, details) with pred(args) true."""
        for i, item in enumerate(self.backlog):
            if pred(item[0]):
                return self.backlog.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            try:
                item = await asyncio.wait_for(self.queue.get(), max(remaining, 0.001))
            except asyncio.TimeoutError:
                seen = [b[0] for b in self.backlog]
                raise AssertionError(f"no {what} within {timeout}s; other events queued: {seen!r}") from None
            if pred(item[0]):
                return item
            self.backlog.append(item)

    def empty(self):
        return not self.backlog and self.queue.empty()


async def subscribe_log(session, topic, **options):
    """Subscribes an EventLog to `topic` (SubscribeOptions(**options), details_arg='details')."""
    from autobahn.wamp.types import SubscribeOptions

    log = EventLog()
    sub = await asyncio.wait_for(
        session.subscribe(log, topic, options=SubscribeOptions(details_arg="details", **options)), CALL_TIMEOUT)
    log.subscription = sub
    return log
