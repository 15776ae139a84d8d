// Autobahn|JS (Node) publish & subscribe interop with Junction over
// WebSocket, JSON and MessagePack: acknowledged publications, exclude_me
// (default true, false delivers to the publisher), shared subscription ids,
// unsubscribe, and events crossing serializers.
'use strict';

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startRouter, connect, uniqueUri, Sink, closeAll } = require('./helpers');

let router;
let conns = [];

before(async () => {
  router = await startRouter();
});

after(async () => {
  const wasAlive = router.alive();
  await router.stop();
  assert.ok(wasAlive, `router died during the tests; stderr:\n${router.stderr()}`);
});

afterEach(async () => {
  await closeAll(conns);
  conns = [];
});

async function open(serializer) {
  const c = await connect(router, serializer);
  conns.push(c);
  return c;
}

for (const ser of ['json', 'msgpack']) {
  describe(`pubsub over websocket/${ser}`, () => {
    it('acknowledged publish returns a publication id and delivers the event', async () => {
      const sub = (await open(ser)).session;
      const pub = (await open(ser)).session;
      const topic = uniqueUri();
      const sink = new Sink();
      const subscription = await sub.subscribe(topic, sink.handler);
      const publication = await pub.publish(topic, ['hello', 1, { x: [true, null] }], { k: 'v', n: 2 ** 53 },
        { acknowledge: true });
      assert.equal(typeof publication.id, 'number');
      const ev = await sink.next();
      assert.deepStrictEqual(ev.args, ['hello', 1, { x: [true, null] }]);
      assert.deepStrictEqual(ev.kwargs, { k: 'v', n: 2 ** 53 });
      assert.equal(ev.details.publication, publication.id);
      assert.equal(ev.details.topic, topic);
      assert.equal(typeof subscription.id, 'number');
    });

    it('excludes the publisher by default, includes it with exclude_me: false', async () => {
      const me = (await open(ser)).session;
      const other = (await open(ser)).session;
      const topic = uniqueUri();
      const mine = new Sink();
      const theirs = new Sink();
      await me.subscribe(topic, mine.handler);
      await other.subscribe(topic, theirs.handler);
      await me.publish(topic, ['not for me'], {}, { acknowledge: true });
      await me.publish(topic, ['for me too'], {}, { acknowledge: true, exclude_me: false });
      assert.deepStrictEqual((await theirs.next()).args, ['not for me']);
      assert.deepStrictEqual((await theirs.next()).args, ['for me too']);
      // events from one publisher arrive in order, so the first one the
      // publisher sees must be the exclude_me=false one
      assert.deepStrictEqual((await mine.next()).args, ['for me too']);
      assert.equal(mine.items.length, 0);
    });

    it('gives every subscriber of a topic the same subscription id', async () => {
      const a = (await open(ser)).session;
      const b = (await open(ser === 'json' ? 'msgpack' : 'json')).session;
      const topic = uniqueUri();
      const sa = await a.subscribe(topic, () => {});
      const sb = await b.subscribe(topic, () => {});
      assert.equal(sa.id, sb.id);
    });

    it('stops delivering after unsubscribe', async () => {
      const sub = (await open(ser)).session;
      const pub = (await open(ser)).session;
      const topic = uniqueUri();
      const barrier = uniqueUri();
      const sink = new Sink();
      const barrierSink = new Sink();
      const subscription = await sub.subscribe(topic, sink.handler);
      await sub.subscribe(barrier, barrierSink.handler);
      await pub.publish(topic, [1], {}, { acknowledge: true });
      assert.deepStrictEqual((await sink.next()).args, [1]);
      await sub.unsubscribe(subscription);
      await pub.publish(topic, [2], {}, { acknowledge: true });
      await pub.publish(barrier, ['barrier'], {}, { acknowledge: true });
      assert.deepStrictEqual((await barrierSink.next()).args, ['barrier']);
      assert.equal(sink.items.length, 0, JSON.stringify(sink.items.map((i) => i.args)));
    });
  });
}

describe('pubsub across serializers', () => {
  it('json publisher reaches msgpack subscriber and vice versa', async () => {
    const j = (await open('json')).session;
    const m = (await open('msgpack')).session;
    const topic = uniqueUri();
    const js = new Sink();
    const ms = new Sink();
    await j.subscribe(topic, js.handler);
    await m.subscribe(topic, ms.handler);
    const payload = [{ unicode: 'ünï ✓', big: 2 ** 53, f: 0.5, list: [null, true, false] }];
    await j.publish(topic, payload, { from: 'json' }, { acknowledge: true });
    await m.publish(topic, payload, { from: 'msgpack' }, { acknowledge: true });
    assert.deepStrictEqual(await ms.next().then((e) => [e.args, e.kwargs]), [payload, { from: 'json' }]);
    assert.deepStrictEqual(await js.next().then((e) => [e.args, e.kwargs]), [payload, { from: 'msgpack' }]);
  });
});
