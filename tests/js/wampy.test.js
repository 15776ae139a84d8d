// wampy.js (npm `wampy` 8) against a real Junction router, over WebSocket
// with each of wampy's own serializers: JSON, MessagePack (msgpackr) and CBOR
// (cbor-x). Issue #15, "Every popular client".
//
// What wampy does on the wire, and what these tests rely on:
// - In Node it needs a WebSocket class (`ws` option): the `ws` package here.
// - subscribe() always sends {match, get_retained}; left unset they are
//   `undefined`, which msgpackr encodes as ext type 0 (d4 00 00) and cbor-x as
//   CBOR undefined (f7); JSON.stringify drops them.
// - It announces neither callee.progressive_call_invocations nor
//   callee.call_canceling (nor caller.progressive_call_invocations, though
//   progressiveCall() sends progressive CALLs). The router serves the
//   progressive CALLs; a progressive invocation reaches a wampy callee only
//   when the callee announces the feature (patched in here, as an application
//   can), and CANCEL of any mode towards a wampy callee is 'skip' (no
//   INTERRUPT, which wampy would answer with a protocol-violation ABORT).
//   A wampy callee runs its handler once per INVOCATION of a progressive call
//   and YIELDs what it returns, so it must answer each intermediate chunk with
//   a progressive result ({options: {progress: true}}) or end the call early.
// - publish() drops its `retain` option (wampy 8.0.2), and the package maps
//   require('wampy/wampcra.js') to an ES module Node 20's require() cannot
//   load: worked around below.
// - It runs no timer of its own for CALL.Options.timeout: the dealer does.
// - Ids above 2^32 (session and subscription ids; registration ids count
//   from 1): msgpackr decodes them as BigInt and encodes them back as uint64,
//   so they round-trip (wampy's typeof-'number' check on a scalar publish
//   `exclude`/`eligible` then refuses them: pass a list). cbor-x decodes them
//   as numbers and encodes numbers above 2^32 as float64, which the router
//   reads as the integer (an integral float up to 2^53).
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const nacl = require('tweetnacl');
const WebSocket = require('ws');
const { Wampy } = require('wampy');
const { JsonSerializer } = require('wampy/JsonSerializer.js');
const { MsgpackSerializer } = require('wampy/MsgpackSerializer.js');
const { CborSerializer } = require('wampy/CborSerializer.js');
const { startRouter, startCluster, uniqueUri, withTimeout } = require('./helpers');

const SERIALIZERS = ['json', 'msgpack', 'cbor'];
const REALM = 'realm1';
const WAIT_MS = 10000;

function makeSerializer(name) {
  if (name === 'json') return new JsonSerializer();
  if (name === 'msgpack') return new MsgpackSerializer();
  if (name === 'cbor') return new CborSerializer();
  throw new Error(`unknown serializer ${name}`);
}

// A serializer that records every message it encodes (decoded and raw).
class RecordingSerializer {
  constructor(inner) {
    this.inner = inner;
    this.protocol = inner.protocol;
    this.isBinary = inner.isBinary;
    this.sent = [];
  }

  encode(msg) {
    const bytes = this.inner.encode(msg);
    this.sent.push({ msg, bytes });
    return bytes;
  }

  decode(data) {
    return this.inner.decode(data);
  }
}

// Open a wampy session; `features` adds role features to its HELLO
// ({callee: {progressive_call_invocations: true}}).
async function open(url, serializer, { features, recordingSerializer, realm = REALM, auth = {} } = {}) {
  const ser = recordingSerializer || makeSerializer(serializer);
  const w = new Wampy(url, { realm, ws: WebSocket, serializer: ser, autoReconnect: false, ...auth });
  if (features) {
    for (const [role, f] of Object.entries(features)) Object.assign(w._wamp_features.roles[role].features, f);
  }
  w.welcome = await withTimeout(w.connect(), WAIT_MS, `wampy ${serializer} connect`);
  return w;
}

async function closeAll(sessions) {
  for (const w of sessions) {
    try {
      if (w.getSessionId()) await withTimeout(w.disconnect(), 5000, 'wampy disconnect');
    } catch (e) {
      // best effort
    }
  }
}

// A promise with its resolve function outside.
function deferred() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

// A queue of values pushed by callbacks, awaited one by one.
class Queue {
  constructor() {
    this.items = [];
    this.waiters = [];
    this.push = (item) => {
      const w = this.waiters.shift();
      if (w) w(item);
      else this.items.push(item);
    };
  }

  next(ms = WAIT_MS) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    let waiter;
    const item = new Promise((resolve) => {
      waiter = resolve;
      this.waiters.push(resolve);
    });
    // a wait that timed out gives up its place (no item is lost to it)
    return withTimeout(item, ms, 'queued item').catch((e) => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      throw e;
    });
  }
}

// Settles with {ok, value} / {ok: false, error} instead of throwing.
function settle(promise) {
  return promise.then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));
}

// wampy.call() sends the CALL synchronously; its request id is in the op status.
function callWithId(w, uri, payload, options) {
  const promise = w.call(uri, payload, options);
  return { promise, reqId: w.getOpStatus().reqId };
}

async function expectCallError(promise, uri, what) {
  const r = await withTimeout(settle(promise), WAIT_MS, what);
  assert.equal(r.ok, false, `${what}: expected ERROR ${uri}, got RESULT ${JSON.stringify(r.value)}`);
  assert.equal(r.error.errorUri, uri, `${what}: ${r.error}`);
  return r.error;
}

// Round-trip a call through `callee` (a registered "ping") to prove that
// session still works after something was discarded or refused.
async function assertCalleeAlive(caller, uri) {
  const res = await withTimeout(caller.call(uri, ['ping']), WAIT_MS, 'ping call');
  assert.deepEqual(res.argsList, ['pong']);
}

// Call until the caller's node knows the registration (a cluster node answers
// REGISTERED once it applied the registration itself; the other nodes apply it
// within the replication lag). Resolves the first RESULT.
async function callWhenRoutable(caller, uri, payload, options) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const r = await settle(caller.call(uri, payload, options));
    if (r.ok) return r.value;
    assert.equal(r.error.errorUri, 'wamp.error.no_such_procedure', String(r.error));
    assert.ok(Date.now() < deadline, `the caller's node never learned of ${uri}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

// --- a raw JSON peer --------------------------------------------------------
// A callee announcing call_canceling: neither wampy nor Autobahn|JS announces
// callee.call_canceling, so 'kill' and 'killnowait' (INTERRUPT to the callee)
// are tested against this one. Also a publisher of retained events, which
// wampy 8.0.2's publish() cannot send (it drops the `retain` option).
class RawPeer {
  constructor(url) {
    this.url = url;
    this.inbox = new Queue();
    this.nextId = 1;
  }

  async open() {
    this.ws = new WebSocket(this.url, ['wamp.2.json']);
    this.ws.on('message', (data) => this.inbox.push(JSON.parse(data.toString())));
    await withTimeout(new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    }), WAIT_MS, 'raw callee open');
    this.send([1, REALM, { roles: { callee: { features: { call_canceling: true } }, publisher: {} } }]);
    const welcome = await this.inbox.next();
    assert.equal(welcome[0], 2, `expected WELCOME, got ${JSON.stringify(welcome)}`);
    return this;
  }

  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }

  async register(uri) {
    const id = this.nextId++;
    this.send([64, id, {}, uri]);
    const reg = await this.inbox.next();
    assert.deepEqual(reg.slice(0, 2), [65, id], `expected REGISTERED, got ${JSON.stringify(reg)}`);
    return reg[2];
  }

  async publish(topic, args, options) {
    const id = this.nextId++;
    this.send([16, id, { acknowledge: true, ...options }, topic, args]);
    const ack = await this.inbox.next();
    assert.deepEqual(ack.slice(0, 2), [17, id], `expected PUBLISHED, got ${JSON.stringify(ack)}`);
  }

  async expect(type, what) {
    const msg = await this.inbox.next();
    assert.equal(msg[0], type, `${what}: got ${JSON.stringify(msg)}`);
    return msg;
  }

  close() {
    this.ws.close();
  }
}

// ---------------------------------------------------------------------------

describe('wampy.js against one router', () => {
  let router;
  const sessions = [];
  const rawPeers = [];
  const session = async (ser, opts) => {
    const w = await open(router.wsUrl, ser, opts);
    sessions.push(w);
    return w;
  };

  before(async () => {
    router = await startRouter();
  });

  after(async () => {
    rawPeers.forEach((p) => p.close());
    await closeAll(sessions);
    const alive = router.alive();
    await router.stop();
    assert.ok(alive, `router died during the tests; stderr:\n${router.stderr()}`);
  });

  for (const ser of SERIALIZERS) {
    describe(ser, () => {
      it('RPC with args and kwargs', async () => {
        const callee = await session(ser);
        const caller = await session(ser);
        const uri = uniqueUri('com.example.wampy.rpc');
        const seen = [];
        await callee.register(uri, ({ argsList, argsDict, details }) => {
          seen.push({ argsList, argsDict, details });
          return { argsList: [argsList.length, ...argsList].reverse(), argsDict: { echo: argsDict, n: 42 } };
        });
        const kwargs = { name: 'Zoë ✓', nested: { list: [1, 2.5, -3], flag: false, none: null } };
        const res = await caller.call(uri, { argsList: ['a', 7, true], argsDict: kwargs });
        assert.deepEqual(res.argsList, [true, 7, 'a', 3]);
        assert.deepEqual(res.argsDict, { echo: kwargs, n: 42 });
        assert.equal(seen.length, 1);
        assert.deepEqual(seen[0].argsList, ['a', 7, true]);
        assert.deepEqual(seen[0].argsDict, kwargs);
        // kwargs only, and no payload at all
        const onlyKw = await caller.call(uri, { k: 1 });
        assert.deepEqual(onlyKw.argsList, [0]);
        assert.deepEqual(onlyKw.argsDict, { echo: { k: 1 }, n: 42 });
        // an application error with args and kwargs comes back as such
        const failing = uniqueUri('com.example.wampy.fail');
        await callee.register(failing, () => {
          const err = new Error('nope');
          Object.assign(err, { error: 'com.example.error.custom', argsList: ['why'], argsDict: { code: 7 } });
          throw err;
        });
        const e = await expectCallError(caller.call(failing, ['x']), 'com.example.error.custom', 'failing call');
        assert.deepEqual(e.argsList, ['why']);
        assert.deepEqual(e.argsDict, { code: 7 });
      });

      it('progressive call results', async () => {
        const callee = await session(ser);
        const caller = await session(ser);
        const uri = uniqueUri('com.example.wampy.progres');
        let receiveProgress;
        await callee.register(uri, ({ argsList, details, result_handler: send }) => {
          receiveProgress = details.receive_progress;
          const n = argsList[0];
          for (let i = 1; i < n; i += 1) send({ argsList: [i], options: { progress: true } });
          return { argsList: [n], argsDict: { last: true } };
        });
        const progress = [];
        const res = await caller.call(uri, [4], {
          progress_callback: ({ argsList, details }) => progress.push({ argsList, progress: details.progress }),
        });
        assert.equal(receiveProgress, true, 'INVOCATION.Details.receive_progress');
        assert.deepEqual(progress, [
          { argsList: [1], progress: true },
          { argsList: [2], progress: true },
          { argsList: [3], progress: true },
        ]);
        assert.deepEqual(res.argsList, [4]);
        assert.deepEqual(res.argsDict, { last: true });
        assert.ok(!res.details.progress, 'final RESULT has no progress flag');
      });

      it('progressive call invocations (callee announcing the feature)', async () => {
        const callee = await session(ser, { features: { callee: { progressive_call_invocations: true } } });
        const caller = await session(ser);
        const uri = uniqueUri('com.example.wampy.progcall');
        const chunks = [];
        let sum = 0;
        await callee.register(uri, ({ argsList, details }) => {
          chunks.push({ argsList, progress: Boolean(details.progress) });
          sum += argsList[0];
          // each input chunk answered: a progressive result, the last one final
          return details.progress ? { argsList: [sum], options: { progress: true } } : { argsList: [sum, 'done'] };
        });
        const partial = new Queue();
        const pc = caller.progressiveCall(uri, [1], { progress_callback: ({ argsList }) => partial.push(argsList) });
        assert.deepEqual(await partial.next(), [1]);
        pc.sendData([2]);
        assert.deepEqual(await partial.next(), [3]);
        pc.sendData([3], { progress: false });
        const res = await withTimeout(pc.result, WAIT_MS, 'progressive call result');
        assert.deepEqual(res.argsList, [6, 'done']);
        assert.deepEqual(chunks, [
          { argsList: [1], progress: true },
          { argsList: [2], progress: true },
          { argsList: [3], progress: false },
        ]);
      });

      it('progressive call to a wampy callee as shipped: feature_not_supported', async () => {
        // wampy 8 does not announce callee.progressive_call_invocations, so the
        // router refuses to start a progressive invocation on it.
        const callee = await session(ser);
        const caller = await session(ser);
        const uri = uniqueUri('com.example.wampy.progplain');
        let invoked = 0;
        await callee.register(uri, ({ argsList }) => {
          invoked += 1;
          return argsList;
        });
        const pc = caller.progressiveCall(uri, [1]);
        await expectCallError(pc.result, 'wamp.error.feature_not_supported', 'progressive call');
        assert.equal(invoked, 0, 'the callee was invoked');
        const res = await caller.call(uri, ['plain']);
        assert.deepEqual(res.argsList, ['plain']);
        assert.equal(invoked, 1);
      });

      it('call timeout: the dealer answers wamp.error.timeout, the late YIELD is dropped', async () => {
        const callee = await session(ser);
        const caller = await session(ser);
        const uri = uniqueUri('com.example.wampy.slow');
        const ping = `${uri}.ping`;
        const started = deferred();
        const release = deferred();
        await callee.register(uri, async ({ argsList }) => {
          started.resolve(argsList);
          await release.promise;
          return ['late'];
        });
        await callee.register(ping, () => ['pong']);
        const t0 = Date.now();
        const call = caller.call(uri, ['slow'], { timeout: 300 });
        assert.deepEqual(await withTimeout(started.promise, WAIT_MS, 'invocation'), ['slow']);
        await expectCallError(call, 'wamp.error.timeout', 'timed-out call');
        const elapsed = Date.now() - t0;
        assert.ok(elapsed >= 250, `timeout answered after ${elapsed} ms, before the 300 ms deadline`);
        // the callee (no call_canceling: not interrupted) answers late; the
        // YIELD is discarded and the callee's session goes on
        release.resolve();
        await assertCalleeAlive(caller, ping);
        // a call answered in time with a timeout set succeeds
        const quick = uniqueUri('com.example.wampy.quick');
        await callee.register(quick, ({ argsList }) => argsList);
        const res = await caller.call(quick, [1, 2], { timeout: 5000 });
        assert.deepEqual(res.argsList, [1, 2]);
      });

      for (const mode of ['skip', 'kill', 'killnowait']) {
        it(`cancel mode ${mode} to a wampy callee (no call_canceling: skip)`, async () => {
          const callee = await session(ser);
          const caller = await session(ser);
          const uri = uniqueUri('com.example.wampy.cancel');
          const ping = `${uri}.ping`;
          const started = deferred();
          const release = deferred();
          await callee.register(uri, async () => {
            started.resolve();
            await release.promise;
            return ['late'];
          });
          await callee.register(ping, () => ['pong']);
          let closed = false;
          callee.setOptions({ onClose: () => { closed = true; } });
          const { promise, reqId } = callWithId(caller, uri, ['c']);
          await withTimeout(started.promise, WAIT_MS, 'invocation');
          assert.equal(caller.cancel(reqId, { mode }), true);
          // answered at once, while the callee still holds the invocation
          await expectCallError(promise, 'wamp.error.canceled', `cancel ${mode}`);
          release.resolve();
          await assertCalleeAlive(caller, ping);
          assert.equal(closed, false, 'the wampy callee was closed (INTERRUPT sent to it?)');
        });
      }

      it('cancel mode kill: INTERRUPT to a callee with call_canceling, the caller gets its answer', async () => {
        const raw = await new RawPeer(router.wsUrl).open();
        rawPeers.push(raw);
        const caller = await session(ser);
        const uri = uniqueUri('com.example.wampy.kill');
        await raw.register(uri);
        const { promise, reqId } = callWithId(caller, uri, ['k']);
        const inv = await raw.expect(68, 'INVOCATION');
        assert.deepEqual(inv[4], ['k']);
        let settled = false;
        const outcome = settle(promise).then((r) => {
          settled = true;
          return r;
        });
        caller.cancel(reqId, { mode: 'kill' });
        const intr = await raw.expect(69, 'INTERRUPT');
        assert.equal(intr[1], inv[1], 'INTERRUPT names the invocation');
        assert.equal(intr[2].mode, 'kill');
        assert.equal(settled, false, 'kill answered the caller before the callee did');
        raw.send([8, 68, inv[1], {}, 'com.example.error.interrupted', ['stopped']]);
        const r = await withTimeout(outcome, WAIT_MS, 'killed call');
        assert.equal(r.ok, false);
        assert.equal(r.error.errorUri, 'com.example.error.interrupted');
        assert.deepEqual(r.error.argsList, ['stopped']);
      });

      it('cancel mode killnowait: canceled at once, INTERRUPT to the callee', async () => {
        const raw = await new RawPeer(router.wsUrl).open();
        rawPeers.push(raw);
        const caller = await session(ser);
        const uri = uniqueUri('com.example.wampy.killnowait');
        await raw.register(uri);
        const { promise, reqId } = callWithId(caller, uri, ['k']);
        const inv = await raw.expect(68, 'INVOCATION');
        caller.cancel(reqId, { mode: 'killnowait' });
        await expectCallError(promise, 'wamp.error.canceled', 'killnowait');
        const intr = await raw.expect(69, 'INTERRUPT');
        assert.equal(intr[1], inv[1]);
        assert.equal(intr[2].mode, 'killnowait');
      });

      it('pattern subscriptions: prefix and wildcard carry the concrete topic', async () => {
        const sub = await session(ser);
        const pub = await session(ser);
        const base = uniqueUri('com.example.wampy.pat');
        const prefixEvents = new Queue();
        const wildEvents = new Queue();
        await sub.subscribe(`${base}.pre`, prefixEvents.push, { match: 'prefix' });
        await sub.subscribe(`${base}..end`, wildEvents.push, { match: 'wildcard' });
        // non-matching publications first: the first event must be the match
        await pub.publish(`${base}.other.x`, ['no']);
        await pub.publish(`${base}.mid.end.more`, ['no']);
        await pub.publish(`${base}.pre.a.b`, ['p1'], { disclose_me: true });
        await pub.publish(`${base}.mid.end`, { argsList: ['w1'], argsDict: { k: 'v' } });
        const p = await prefixEvents.next();
        assert.deepEqual(p.argsList, ['p1']);
        assert.equal(p.details.topic, `${base}.pre.a.b`);
        assert.equal(String(p.details.publisher), String(pub.getSessionId()), 'disclosed publisher');
        const w = await wildEvents.next();
        assert.deepEqual(w.argsList, ['w1']);
        assert.deepEqual(w.argsDict, { k: 'v' });
        assert.equal(w.details.topic, `${base}.mid.end`);
        // an exact-match subscription gets no topic in its details
        const exact = new Queue();
        await sub.subscribe(`${base}.pre.a.b`, exact.push);
        await pub.publish(`${base}.pre.a.b`, ['p2']);
        const e = await exact.next();
        assert.deepEqual(e.argsList, ['p2']);
        assert.equal(e.details.topic, undefined);
        assert.deepEqual((await prefixEvents.next()).argsList, ['p2']);
      });

      it('retained event delivered on subscribe with get_retained', async () => {
        const raw = await new RawPeer(router.wsUrl).open();
        rawPeers.push(raw);
        const topic = uniqueUri('com.example.wampy.retained');
        await raw.publish(topic, ['kept', 1], { retain: true });
        const sub = await session(ser);
        const events = new Queue();
        await sub.subscribe(topic, events.push, { get_retained: true });
        const ev = await events.next();
        assert.deepEqual(ev.argsList, ['kept', 1]);
        assert.equal(ev.details.retained, true);
        // a subscriber that does not ask gets only what is published later
        const plain = await session(ser);
        const later = new Queue();
        await plain.subscribe(topic, later.push);
        await raw.publish(topic, ['new']);
        assert.deepEqual((await later.next()).argsList, ['new']);
        assert.deepEqual((await events.next()).argsList, ['new']);
      });

      it('pattern registration: the callee sees the concrete procedure, the caller is disclosed', async () => {
        const callee = await session(ser);
        const caller = await session(ser);
        const base = uniqueUri('com.example.wampy.patreg');
        await callee.register(`${base}.pre`, ({ details }) => [details.procedure, String(details.caller)], { match: 'prefix' });
        await callee.register(`${base}..end`, ({ details }) => [details.procedure], { match: 'wildcard' });
        const res = await caller.call(`${base}.pre.x.y`, [], { disclose_me: true });
        assert.deepEqual(res.argsList, [`${base}.pre.x.y`, String(caller.getSessionId())]);
        assert.deepEqual((await caller.call(`${base}.mid.end`)).argsList, [`${base}.mid.end`]);
        await expectCallError(caller.call(`${base}.mid.end.more`), 'wamp.error.no_such_procedure', 'no match');
      });

      it('binary payloads and large integers between serializers', async () => {
        const pub = await session(ser);
        const subs = {};
        const queues = {};
        const topic = uniqueUri('com.example.wampy.bin');
        for (const other of SERIALIZERS) {
          subs[other] = await session(other);
          queues[other] = new Queue();
          await subs[other].subscribe(topic, queues[other].push);
        }
        // JSON carries binary as "\0" + base64 (WAMP spec); wampy does not convert
        const bin = ser === 'json' ? '\u0000AAEC/w==' : Buffer.from([0, 1, 2, 255]);
        await pub.publish(topic, [bin, 2 ** 53 - 1, -(2 ** 40), 1.5, 'ü']);
        for (const other of SERIALIZERS) {
          const ev = await queues[other].next();
          const [b, ...rest] = ev.argsList;
          if (other === 'json') assert.equal(b, '\u0000AAEC/w==', `binary to ${other}`);
          else assert.deepEqual(Buffer.from(b), Buffer.from([0, 1, 2, 255]), `binary to ${other}`);
          // msgpackr reads 64-bit integers as BigInt
          assert.deepEqual(rest.map((v) => (typeof v === 'bigint' ? Number(v) : v)), [2 ** 53 - 1, -(2 ** 40), 1.5, 'ü'],
            `numbers to ${other}`);
        }
      });

      it('shared registration: roundrobin across two wampy callees, other policy refused', async () => {
        const a = await session(ser);
        const b = await session(ser);
        const c = await session(ser);
        const caller = await session(ser);
        const uri = uniqueUri('com.example.wampy.shared');
        await a.register(uri, () => ['a'], { invoke: 'roundrobin' });
        await b.register(uri, () => ['b'], { invoke: 'roundrobin' });
        const order = [];
        for (let i = 0; i < 6; i += 1) order.push((await caller.call(uri)).argsList[0]);
        assert.deepEqual(order.slice().sort(), ['a', 'a', 'a', 'b', 'b', 'b']);
        for (let i = 1; i < order.length; i += 1) assert.notEqual(order[i], order[i - 1], `not alternating: ${order}`);
        const r = await settle(c.register(uri, () => ['c'], { invoke: 'first' }));
        assert.equal(r.ok, false, 'REGISTER with another invoke policy was accepted');
        assert.equal(r.error.errorUri, 'wamp.error.procedure_exists_with_different_invocation_policy');
        const single = await settle(c.register(uri, () => ['c']));
        assert.equal(single.ok, false, 'REGISTER without a policy (single) was accepted');
        assert.equal(single.error.errorUri, 'wamp.error.procedure_exists_with_different_invocation_policy');
      });

      it('unsubscribe and unregister with the router\'s ids', async () => {
        const w = await session(ser);
        const pub = await session(ser);
        const topic = uniqueUri('com.example.wampy.unsub');
        const events = new Queue();
        const barrier = new Queue();
        const { subscriptionId } = await w.subscribe(topic, events.push);
        await w.subscribe(`${topic}.barrier`, barrier.push);
        await pub.publish(topic, ['before']);
        assert.deepEqual((await events.next()).argsList, ['before']);
        // UNSUBSCRIBE carries the subscription id the router issued
        const unsub = await withTimeout(w.unsubscribe(subscriptionId), WAIT_MS, 'UNSUBSCRIBED');
        assert.equal(unsub.topic, topic);
        await pub.publish(topic, ['after']);
        await pub.publish(`${topic}.barrier`, ['barrier']);
        assert.deepEqual((await barrier.next()).argsList, ['barrier']);
        assert.equal(events.items.length, 0, 'an event arrived after UNSUBSCRIBED');
        // UNREGISTER carries the registration id
        const uri = uniqueUri('com.example.wampy.unreg');
        await w.register(uri, () => ['here']);
        assert.deepEqual((await pub.call(uri)).argsList, ['here']);
        await withTimeout(w.unregister(uri), WAIT_MS, 'UNREGISTERED');
        await expectCallError(pub.call(uri), 'wamp.error.no_such_procedure', 'call after UNREGISTERED');
        assert.ok(w.getSessionId(), 'session still open');
      });

      it('publish with eligible and exclude session ids', async () => {
        // wampy checks a scalar `exclude`/`eligible` with typeof 'number', which
        // msgpackr's BigInt session ids fail; a list is passed through as is.
        const a = await session(ser);
        const b = await session(ser);
        const pub = await session(ser);
        const topic = uniqueUri('com.example.wampy.elig');
        const evA = new Queue();
        const evB = new Queue();
        await a.subscribe(topic, evA.push);
        await b.subscribe(topic, evB.push);
        await pub.publish(topic, ['only-b'], { eligible: [b.getSessionId()] });
        await pub.publish(topic, ['not-b'], { exclude: [b.getSessionId()] });
        await pub.publish(topic, ['all']);
        assert.deepEqual((await evB.next()).argsList, ['only-b']);
        assert.deepEqual((await evB.next()).argsList, ['all']);
        assert.deepEqual((await evA.next()).argsList, ['not-b']);
        assert.deepEqual((await evA.next()).argsList, ['all']);
      });

      it('call timeout: INTERRUPT to a callee with call_canceling', async () => {
        const raw = await new RawPeer(router.wsUrl).open();
        rawPeers.push(raw);
        const caller = await session(ser);
        const uri = uniqueUri('com.example.wampy.timeoutkill');
        await raw.register(uri);
        const call = caller.call(uri, ['t'], { timeout: 200 });
        const inv = await raw.expect(68, 'INVOCATION');
        assert.equal(inv[3].timeout, undefined, 'the dealer runs the timer, the callee gets no timeout');
        await expectCallError(call, 'wamp.error.timeout', 'timed-out call');
        const intr = await raw.expect(69, 'INTERRUPT');
        assert.equal(intr[1], inv[1], 'INTERRUPT names the invocation');
        assert.equal(intr[2].mode, 'killnowait');
      });

      it('SUBSCRIBE with options left undefined', async () => {
        // subscribe() sends {match: undefined, get_retained: undefined}
        const rec = new RecordingSerializer(makeSerializer(ser));
        const sub = await session(ser, { recordingSerializer: rec });
        const pub = await session(ser);
        const topic = uniqueUri('com.example.wampy.undef');
        const events = new Queue();
        const { subscriptionId } = await sub.subscribe(topic, events.push);
        assert.ok(subscriptionId, 'SUBSCRIBED');
        const sent = rec.sent.find(({ msg }) => msg[0] === 32);
        assert.ok(sent, 'a SUBSCRIBE was sent');
        assert.ok('match' in sent.msg[2] && sent.msg[2].match === undefined);
        const bytes = Buffer.from(sent.bytes);
        if (ser === 'msgpack') {
          // msgpackr: undefined is fixext 1, type 0, data 0
          assert.ok(bytes.includes(Buffer.from([0xa5, ...Buffer.from('match'), 0xd4, 0x00, 0x00])), bytes.toString('hex'));
        } else if (ser === 'cbor') {
          // cbor-x: undefined is simple value 23 (f7)
          assert.ok(bytes.includes(Buffer.from([0x65, ...Buffer.from('match'), 0xf7])), bytes.toString('hex'));
        } else {
          assert.equal(bytes.toString(), JSON.stringify(sent.msg));
          assert.ok(!bytes.toString().includes('match'));
        }
        // the subscription works; undefined inside a payload arrives as null
        await pub.publish(topic, { argsList: [1, undefined, 'x'], argsDict: { k: 'v' } });
        const ev = await events.next();
        assert.deepEqual(ev.argsList, [1, null, 'x']);
        assert.deepEqual(ev.argsDict, { k: 'v' });
      });
    });
  }
});

// Routing between the nodes of a two-node cluster, wampy on both ends.
describe('wampy.js across two cluster nodes', () => {
  let cluster;
  const sessions = [];
  const session = async (node, ser, features) => {
    const w = await open(cluster.nodes[node - 1].wsUrl, ser, { features });
    sessions.push(w);
    return w;
  };

  before(async () => {
    cluster = await startCluster(2);
  });

  after(async () => {
    await closeAll(sessions);
    if (!cluster) return;
    const dead = cluster.nodes.filter((n) => !n.alive());
    await cluster.stop();
    assert.deepEqual(dead.map((n) => n.stderr()), [], 'a node died during the tests');
  });

  for (const ser of SERIALIZERS) {
    describe(ser, () => {
      it('callee on node 2, caller on node 1', async () => {
        const callee = await session(2, ser);
        const caller = await session(1, ser);
        const uri = uniqueUri('com.example.wampy.cluster.rpc');
        await callee.register(uri, ({ argsList, argsDict, details }) => ({
          argsList: [...argsList, 'node2'],
          argsDict: { ...argsDict, progress: Boolean(details.receive_progress) },
        }));
        const res = await callWhenRoutable(caller, uri, { argsList: [1, 'a'], argsDict: { k: { n: [1] } } });
        assert.deepEqual(res.argsList, [1, 'a', 'node2']);
        assert.deepEqual(res.argsDict, { k: { n: [1] }, progress: false });
        // progressive results across the link
        const uri2 = `${uri}.prog`;
        await callee.register(uri2, ({ result_handler: send }) => {
          send({ argsList: ['p'], options: { progress: true } });
          return ['final'];
        });
        const progress = [];
        const final = await callWhenRoutable(caller, uri2, [], {
          progress_callback: ({ argsList }) => progress.push(argsList),
        });
        assert.deepEqual(final.argsList, ['final']);
        assert.deepEqual(progress, [['p']]);
      });

      it('progressive invocations, timeout and cancel: callee on node 2, caller on node 1', async () => {
        const callee = await session(2, ser, { callee: { progressive_call_invocations: true } });
        const caller = await session(1, ser);
        const base = uniqueUri('com.example.wampy.cluster.adv');
        const release = deferred();
        const started = new Queue();
        await callee.register(`${base}.sum`, ({ argsList, details }) => {
          const total = argsList.reduce((x, y) => x + y, 0);
          return details.progress ? { argsList: [total], options: { progress: true } } : { argsList: [total, 'end'] };
        });
        await callee.register(`${base}.slow`, async ({ argsList }) => {
          started.push(argsList[0]);
          await release.promise;
          return ['late'];
        });
        await callee.register(`${base}.ping`, () => ['pong']);
        await callWhenRoutable(caller, `${base}.ping`);
        // registrations are applied in order: the others are routable too
        const partial = new Queue();
        const pc = caller.progressiveCall(`${base}.sum`, [1, 2], {
          progress_callback: ({ argsList }) => partial.push(argsList),
        });
        assert.deepEqual(await partial.next(), [3]);
        pc.sendData([4], { progress: false });
        assert.deepEqual((await withTimeout(pc.result, WAIT_MS, 'progressive call')).argsList, [4, 'end']);
        // the dealer's timeout, with the callee on the other node
        const timed = caller.call(`${base}.slow`, ['t'], { timeout: 300 });
        assert.equal(await started.next(), 't');
        await expectCallError(timed, 'wamp.error.timeout', 'timed-out call across nodes');
        // cancel (skip: wampy callees do not announce call_canceling)
        const { promise, reqId } = callWithId(caller, `${base}.slow`, ['c']);
        assert.equal(await started.next(), 'c');
        caller.cancel(reqId, { mode: 'kill' });
        await expectCallError(promise, 'wamp.error.canceled', 'canceled call across nodes');
        release.resolve();
        await assertCalleeAlive(caller, `${base}.ping`);
      });

      it('shared registration roundrobin with callees on both nodes', async () => {
        const a = await session(1, ser);
        const b = await session(2, ser);
        const caller = await session(1, ser);
        const uri = uniqueUri('com.example.wampy.cluster.shared');
        await a.register(uri, () => ['node1'], { invoke: 'roundrobin' });
        await b.register(uri, () => ['node2'], { invoke: 'roundrobin' });
        // until node 1 has applied node 2's registration, only node 1's callee
        // is known there: call until node 2's answers
        const deadline = Date.now() + WAIT_MS;
        while ((await caller.call(uri)).argsList[0] !== 'node2') {
          assert.ok(Date.now() < deadline, "node 1 never routed to node 2's callee");
        }
        const order = [];
        for (let i = 0; i < 6; i += 1) order.push((await caller.call(uri)).argsList[0]);
        for (let i = 1; i < order.length; i += 1) assert.notEqual(order[i], order[i - 1], `not alternating: ${order}`);
        const c = await session(2, ser);
        const r = await settle(c.register(uri, () => ['c'], { invoke: 'last' }));
        assert.equal(r.ok, false, 'REGISTER with another invoke policy was accepted');
        assert.equal(r.error.errorUri, 'wamp.error.procedure_exists_with_different_invocation_policy');
      });

      it('subscriber on node 2, publisher on node 1', async () => {
        const sub = await session(2, ser);
        const pub = await session(1, ser);
        const base = uniqueUri('com.example.wampy.cluster.ps');
        const events = new Queue();
        await sub.subscribe(`${base}.t`, events.push);
        const prefixed = new Queue();
        await sub.subscribe(`${base}.p`, prefixed.push, { match: 'prefix' });
        // node 1 learns of node 2's subscriptions within the replication lag:
        // publish probes until one arrives, then the real events
        const deadline = Date.now() + WAIT_MS;
        let probes = 0;
        for (;;) {
          probes += 1;
          await pub.publish(`${base}.p.probe`, [probes]);
          const got = await settle(prefixed.next(100));
          if (got.ok) break;
          assert.ok(Date.now() < deadline, 'no probe arrived at node 2');
        }
        for (let i = 0; i < 5; i += 1) await pub.publish(`${base}.t`, { argsList: [i], argsDict: { ser } });
        for (let i = 0; i < 5; i += 1) {
          const ev = await events.next();
          assert.deepEqual(ev.argsList, [i], 'events in publication order');
          assert.deepEqual(ev.argsDict, { ser });
        }
        await pub.publish(`${base}.p.x.y`, ['last']);
        // probes that crossed after the first one came are still in the queue
        let ev;
        do ev = await prefixed.next(); while (ev.argsList[0] !== 'last');
        assert.equal(ev.details.topic, `${base}.p.x.y`);
      });
    });
  }
});

// Authentication with wampy's own helpers (wampy/wampcra, wampy/cryptosign)
// against static principals.
describe('wampy.js authentication', () => {
  let router;
  let dir;
  let cra;
  const cryptosign = require('wampy/cryptosign.js');
  const seed = 'a1'.repeat(32); // the Ed25519 private key (seed) of "device-01"
  const pubkey = Buffer.from(nacl.sign.keyPair.fromSeed(Buffer.from(seed, 'hex')).publicKey).toString('hex');
  const sessions = [];

  before(async () => {
    // wampy 8.0.2 maps require('wampy/wampcra.js') to an ES module (.mjs with
    // top-level await), which require() cannot load on Node 20: import it
    cra = await import(pathToFileURL(require.resolve('wampy/wampcra.js')).href);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'junction-js-auth-'));
    const config = path.join(dir, 'junction.toml');
    fs.writeFileSync(config, [
      '[[realms]]', 'name = "secure"',
      '[realms.auth.ticket.principals.joe]', 'role = "user"', 'ticket = "secret123"',
      '[realms.auth.wampcra.principals.peter]', 'role = "operator"', 'secret = "prq7+YkJ1/KlW1X0YczMHw=="',
      // PBKDF2-SHA256("secret", "salt123", 100 iterations, 32 bytes), base64
      '[realms.auth.wampcra.principals.salty]', 'role = "user"',
      'secret = "EX1Y3Q9BMM2oGLxsGqDgFeuqtPMf7Wz8Lh6PotZ62ho="', 'salt = "salt123"', 'iterations = 100', 'keylen = 32',
      '[realms.auth.cryptosign.principals."device-01"]', 'role = "device"', `authorized_keys = ["${pubkey}"]`, '',
    ].join('\n'));
    router = await startRouter(['--config', config]);
  });

  after(async () => {
    await closeAll(sessions);
    if (router) await router.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const join = async (ser, auth) => {
    const w = await open(router.wsUrl, ser, { realm: 'secure', auth });
    sessions.push(w);
    return w;
  };
  const refused = async (ser, auth) => {
    const w = new Wampy(router.wsUrl, { realm: 'secure', ws: WebSocket, serializer: makeSerializer(ser), autoReconnect: false, ...auth });
    const r = await withTimeout(settle(w.connect()), WAIT_MS, 'refused connect');
    assert.equal(r.ok, false, 'the session was welcomed');
    return r.error;
  };

  for (const ser of SERIALIZERS) {
    describe(ser, () => {
      it('ticket', async () => {
        const w = await join(ser, { authid: 'joe', authmethods: ['ticket'], onChallenge: () => 'secret123' });
        assert.equal(w.welcome.authid, 'joe');
        assert.equal(w.welcome.authrole, 'user');
        assert.equal(w.welcome.authmethod, 'ticket');
        const e = await refused(ser, { authid: 'joe', authmethods: ['ticket'], onChallenge: () => 'wrong' });
        assert.equal(e.errorUri, 'wamp.error.authentication_denied');
      });

      it('wampcra, plain and salted secrets', async () => {
        const peter = await join(ser, { authid: 'peter', authmethods: ['wampcra'], onChallenge: cra.sign('prq7+YkJ1/KlW1X0YczMHw==') });
        assert.equal(peter.welcome.authid, 'peter');
        assert.equal(peter.welcome.authrole, 'operator');
        assert.equal(peter.welcome.authmethod, 'wampcra');
        // the salt, iterations and keylen come in the CHALLENGE; sign() derives the key
        const salty = await join(ser, {
          authid: 'salty', authmethods: ['wampcra'], authMode: 'auto', authPlugins: { wampcra: cra.sign('secret') },
        });
        assert.equal(salty.welcome.authid, 'salty');
        assert.equal(salty.welcome.authrole, 'user');
        const e = await refused(ser, { authid: 'salty', authmethods: ['wampcra'], onChallenge: cra.sign('not-it') });
        assert.equal(e.errorUri, 'wamp.error.authentication_denied');
      });

      it('cryptosign', async () => {
        const w = await join(ser, {
          authid: 'device-01', authmethods: ['cryptosign'], authextra: { pubkey }, onChallenge: cryptosign.sign(seed),
        });
        assert.equal(w.welcome.authid, 'device-01');
        assert.equal(w.welcome.authrole, 'device');
        assert.equal(w.welcome.authmethod, 'cryptosign');
        // the session works: an RPC round trip in the authenticated realm
        const uri = uniqueUri('com.example.wampy.auth');
        await w.register(uri, ({ argsList }) => argsList);
        assert.deepEqual((await w.call(uri, ['signed'])).argsList, ['signed']);
        const other = nacl.sign.keyPair.fromSeed(Buffer.alloc(32, 7));
        const e = await refused(ser, {
          authid: 'device-01', authmethods: ['cryptosign'],
          authextra: { pubkey: Buffer.from(other.publicKey).toString('hex') },
          onChallenge: cryptosign.sign(Buffer.from(other.secretKey.slice(0, 32)).toString('hex')),
        });
        // a key the principal does not have is refused at HELLO
        assert.equal(e.errorUri, 'wamp.error.authentication_denied');
      });
    });
  }
});
