# Minimal raw WAMP client used by the interop tests to send messages that
# Autobahn|Python would refuse to send (bogus registration/subscription ids,
# malformed URIs) and to look at router replies exactly as they are on the
# wire (e.g. WELCOME.Details.agent, which Autobahn does not keep).
#
# Supports WebSocket (subprotocols wamp.2.json / wamp.2.msgpack / wamp.2.cbor,
# via Autobahn's plain asyncio WebSocket client) and RawSocket over TCP (the
# handshake and 4-byte frame headers implemented here), each with JSON,
# MessagePack or CBOR.
import asyncio
import json
import struct

import cbor2
import msgpack
from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

# WAMP message type codes (basic profile)
HELLO = 1
WELCOME = 2
ABORT = 3
GOODBYE = 6
ERROR = 8
PUBLISH = 16
PUBLISHED = 17
SUBSCRIBE = 32
SUBSCRIBED = 33
UNSUBSCRIBE = 34
UNSUBSCRIBED = 35
EVENT = 36
CALL = 48
RESULT = 50
REGISTER = 64
REGISTERED = 65
UNREGISTER = 66
UNREGISTERED = 67
INVOCATION = 68
YIELD = 70

RAWSOCKET_SERIALIZER_IDS = {"json": 1, "msgpack": 2, "cbor": 3}

CLIENT_ROLES = {
    "publisher": {},
    "subscriber": {},
    "caller": {},
    "callee": {},
}


class ConnectionClosed(Exception):
    """The router closed the transport."""


def encode(serializer, msg):
    if serializer == "json":
        return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if serializer == "msgpack":
        return msgpack.packb(msg, use_bin_type=True)
    if serializer == "cbor":
        return cbor2.dumps(msg)
    raise ValueError(serializer)


def decode(serializer, payload):
    if serializer == "json":
        return json.loads(payload.decode("utf-8"))
    if serializer == "msgpack":
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    if serializer == "cbor":
        return cbor2.loads(payload)
    raise ValueError(serializer)


class RawClient:
    """Common API: send(msg_list), recv(timeout) -> msg_list, wait_closed(timeout)."""

    serializer = None

    def __init__(self, serializer):
        self.serializer = serializer
        self._queue = asyncio.Queue()
        self._closed = asyncio.get_running_loop().create_future()
        self._next_request = 1

    def request_id(self):
        rid = self._next_request
        self._next_request += 1
        return rid

    def _deliver(self, payload):
        self._queue.put_nowait(decode(self.serializer, payload))

    def _mark_closed(self):
        if not self._closed.done():
            self._closed.set_result(True)
        self._queue.put_nowait(None)

    @property
    def closed(self):
        return self._closed.done()

    async def send(self, msg):
        self.send_bytes(encode(self.serializer, msg))

    async def recv(self, timeout=10.0):
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is None:
            # keep the sentinel so that later recv() calls also see the close
            self._queue.put_nowait(None)
            raise ConnectionClosed()
        return item

    async def recv_until_closed(self, timeout=10.0):
        """Collect every message until the router closes the transport."""
        msgs = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise asyncio.TimeoutError("transport not closed by the router")
            try:
                msgs.append(await self.recv(remaining))
            except ConnectionClosed:
                return msgs

    async def wait_closed(self, timeout=10.0):
        await asyncio.wait_for(asyncio.shield(self._closed), timeout)

    async def hello(self, realm="realm1", details=None):
        """Send HELLO, return the router's first reply (WELCOME or ABORT)."""
        d = {"roles": CLIENT_ROLES, "agent": "junction-interop-raw"}
        if details:
            d.update(details)
        await self.send([HELLO, realm, d])
        return await self.recv()

    async def join(self, realm="realm1"):
        reply = await self.hello(realm)
        assert reply[0] == WELCOME, f"expected WELCOME, got {reply!r}"
        return reply

    async def request(self, msg, timeout=10.0):
        """Send a request message (request id at index 1) and return the reply
        carrying the same request id, skipping unrelated messages."""
        await self.send(msg)
        rid = msg[1]
        while True:
            reply = await self.recv(timeout)
            if reply[0] == ERROR and reply[2] == rid:
                return reply
            if reply[0] in (PUBLISHED, SUBSCRIBED, UNSUBSCRIBED, RESULT, REGISTERED, UNREGISTERED) and reply[1] == rid:
                return reply
            if reply[0] in (ABORT, GOODBYE):
                return reply


class _WsProtocol(WebSocketClientProtocol):
    client = None  # set by the factory wrapper

    def onConnect(self, response):
        self.client.subprotocol = response.protocol

    def onOpen(self):
        if not self.client._opened.done():
            self.client._opened.set_result(True)

    def onMessage(self, payload, isBinary):
        self.client._deliver(payload)

    def onClose(self, wasClean, code, reason):
        self.client.close_code = code
        if not self.client._opened.done():
            self.client._opened.set_exception(ConnectionClosed(f"websocket handshake failed: {code} {reason}"))
        self.client._mark_closed()


class RawWebSocketClient(RawClient):
    def __init__(self, serializer):
        super().__init__(serializer)
        self._opened = asyncio.get_running_loop().create_future()
        self.subprotocol = None
        self.proto = None
        self.close_code = None  # the WebSocket close code, once closed

    @classmethod
    async def connect(cls, url, host, port, serializer, protocols=None, timeout=10.0, local_addr=None):
        client = cls(serializer)
        if protocols is None:
            protocols = [f"wamp.2.{serializer}"]
        factory = WebSocketClientFactory(url=url, protocols=protocols)

        def make():
            proto = _WsProtocol()
            proto.factory = factory
            proto.client = client
            client.proto = proto
            return proto

        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.create_connection(make, host, port, local_addr=local_addr), timeout)
        await asyncio.wait_for(asyncio.shield(client._opened), timeout)
        return client

    def send_bytes(self, data):
        self.proto.sendMessage(data, isBinary=(self.serializer != "json"))

    async def close(self):
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.abort()

    def abort(self):
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.abort()


class RawSocketClient(RawClient):
    """WAMP over RawSocket (TCP), framing done by hand."""

    def __init__(self, serializer):
        super().__init__(serializer)
        self.reader = None
        self.writer = None
        self.router_max_len_exp = None
        self._reader_task = None
        self.pongs = asyncio.Queue()

    @classmethod
    async def connect(cls, host, port, serializer, max_len_exp=15, timeout=10.0, local_addr=None):
        client = cls(serializer)
        conn = asyncio.open_connection(host, port, local_addr=local_addr)
        client.reader, client.writer = await asyncio.wait_for(conn, timeout)
        ser_id = RAWSOCKET_SERIALIZER_IDS[serializer]
        client.writer.write(bytes([0x7F, (max_len_exp << 4) | ser_id, 0, 0]))
        await client.writer.drain()
        reply = await asyncio.wait_for(client.reader.readexactly(4), timeout)
        assert reply[0] == 0x7F, f"bad handshake reply {reply!r}"
        assert reply[1] & 0x0F == ser_id, f"router answered handshake with {reply!r}"
        assert reply[2] == 0 and reply[3] == 0, f"reserved handshake bytes set: {reply!r}"
        client.router_max_len_exp = reply[1] >> 4
        client._reader_task = asyncio.get_running_loop().create_task(client._read_loop())
        return client

    async def _read_loop(self):
        try:
            while True:
                header = await self.reader.readexactly(4)
                ftype = header[0] & 0x07
                length = struct.unpack(">I", b"\x00" + header[1:4])[0]
                payload = await self.reader.readexactly(length)
                if ftype == 0:
                    self._deliver(payload)
                elif ftype == 1:
                    # PING from the router: answer with PONG, same payload
                    self.writer.write(bytes([2]) + header[1:4] + payload)
                elif ftype == 2:
                    self.pongs.put_nowait(payload)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._mark_closed()

    def send_bytes(self, data, frame_type=0):
        n = len(data)
        self.writer.write(bytes([frame_type]) + n.to_bytes(3, "big") + data)

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 5)
            except Exception:
                pass
        if self._reader_task is not None:
            self._reader_task.cancel()

    def abort(self):
        if self.writer is not None:
            self.writer.transport.abort()
