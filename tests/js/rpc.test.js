// Autobahn|JS (Node) RPC interop with Junction over WebSocket, JSON and
// MessagePack: args/kwargs pass through untouched, application errors with a
// custom URI, wamp.error.no_such_procedure, and JSON <-> MessagePack calls.
'use strict';

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { autobahn, startRouter, connect, uniqueUri, closeAll } = require('./helpers');

const ARGS = [0, 1, -1, 2 ** 31, 2 ** 53, -(2 ** 53), 1.5, -0.25, true, false, null, '', 'héllo ☃ 𝄞 中文',
  [], {}, [1, [2, [3, []]]], { a: { b: { c: [1, 'x', null, true, 2.5] } } }];
const KWARGS = { int: 42, big: 2 ** 53, float: 0.1, t: true, f: false, none: null, str: 'ünïcödé',
  'ключ': 'значение', nested: { deep: { deeper: ['a', { b: null }] } }, empty: [], emptyObj: {} };

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
  describe(`rpc over websocket/${ser}`, () => {
    it('joins with broker and dealer roles', async () => {
      const { session, details } = await open(ser);
      assert.ok(session.isOpen);
      assert.equal(typeof session.id, 'number');
      assert.ok(details.roles.broker, JSON.stringify(details));
      assert.ok(details.roles.dealer, JSON.stringify(details));
    });

    it('passes args and kwargs through untouched', async () => {
      const callee = (await open(ser)).session;
      const caller = (await open(ser)).session;
      const proc = uniqueUri();
      const seen = [];
      await callee.register(proc, (args, kwargs) => {
        seen.push({ args, kwargs });
        return new autobahn.Result(args, kwargs);
      });
      const res = await caller.call(proc, ARGS, KWARGS);
      assert.ok(res instanceof autobahn.Result, `expected a Result, got ${JSON.stringify(res)}`);
      assert.deepStrictEqual(res.args, ARGS);
      assert.deepStrictEqual(res.kwargs, KWARGS);
      assert.equal(seen.length, 1);
      assert.deepStrictEqual(seen[0].args, ARGS);
      assert.deepStrictEqual(seen[0].kwargs, KWARGS);
    });

    it('returns a single value', async () => {
      const callee = (await open(ser)).session;
      const caller = (await open(ser)).session;
      const proc = uniqueUri();
      await callee.register(proc, (args) => args[0] + args[1]);
      assert.equal(await caller.call(proc, [40, 2]), 42);
    });

    it('delivers an application error with custom URI, args and kwargs', async () => {
      const callee = (await open(ser)).session;
      const caller = (await open(ser)).session;
      const proc = uniqueUri();
      await callee.register(proc, () => {
        throw new autobahn.Error('com.example.error.js_failure', ['first', 2, { n: [null] }], { reason: 'bad', count: 3 });
      });
      await assert.rejects(caller.call(proc, [1]), (err) => {
        assert.equal(err.error, 'com.example.error.js_failure');
        assert.deepStrictEqual(err.args, ['first', 2, { n: [null] }]);
        assert.deepStrictEqual(err.kwargs, { reason: 'bad', count: 3 });
        return true;
      });
    });

    it('fails a call to an unregistered procedure with no_such_procedure', async () => {
      const caller = (await open(ser)).session;
      await assert.rejects(caller.call(uniqueUri('com.example.nothing'), [1]), (err) => {
        assert.equal(err.error, 'wamp.error.no_such_procedure');
        return true;
      });
    });

    it('rejects a second registration with procedure_already_exists', async () => {
      const a = (await open(ser)).session;
      const b = (await open(ser)).session;
      const proc = uniqueUri();
      await a.register(proc, () => 'a');
      await assert.rejects(b.register(proc, () => 'b'), (err) => {
        assert.equal(err.error, 'wamp.error.procedure_already_exists');
        return true;
      });
      assert.equal(await b.call(proc), 'a');
    });

    it('unregister makes the procedure disappear', async () => {
      const callee = (await open(ser)).session;
      const caller = (await open(ser)).session;
      const proc = uniqueUri();
      const reg = await callee.register(proc, () => 'here');
      assert.equal(await caller.call(proc), 'here');
      await callee.unregister(reg);
      await assert.rejects(caller.call(proc), (err) => err.error === 'wamp.error.no_such_procedure');
    });

    it('handles 200 concurrent calls', async () => {
      const callee = (await open(ser)).session;
      const caller = (await open(ser)).session;
      const proc = uniqueUri();
      await callee.register(proc, (args) => args[0] * 3);
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => caller.call(proc, [i])));
      assert.deepStrictEqual(results, Array.from({ length: 200 }, (_, i) => i * 3));
    });
  });
}

describe('rpc across serializers', () => {
  for (const [calleeSer, callerSer] of [['json', 'msgpack'], ['msgpack', 'json']]) {
    it(`${callerSer} caller -> ${calleeSer} callee`, async () => {
      const callee = (await open(calleeSer)).session;
      const caller = (await open(callerSer)).session;
      const proc = uniqueUri();
      await callee.register(proc, (args, kwargs) => new autobahn.Result(args, kwargs));
      const res = await caller.call(proc, ARGS, KWARGS);
      assert.deepStrictEqual(res.args, ARGS);
      assert.deepStrictEqual(res.kwargs, KWARGS);
    });
  }
});
