// Shared helpers for the Node interop tests: start a Junction router on port 0
// (addresses read from its stdout until "ready") or a small cluster, open
// Autobahn|JS sessions over WebSocket with the JSON or MessagePack serializer,
// and close everything again. Not a test file itself.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const autobahn = require('autobahn');

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const READY_TIMEOUT_MS = 20000;
const OPEN_TIMEOUT_MS = 20000;

function junctionBin() {
  const bin = process.env.JUNCTION_BIN || 'target/debug/junction';
  return path.isAbsolute(bin) ? bin : path.join(REPO_ROOT, bin);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Start `junction --ws 127.0.0.1:0 --rawsocket 127.0.0.1:0 [...extraArgs]`.
function startRouter(extraArgs = []) {
  return spawnRouter(['--ws', '127.0.0.1:0', '--rawsocket', '127.0.0.1:0', ...extraArgs]);
}

// Spawn `junction ...args`, read its `listening KIND ADDR` lines until `ready`.
// Resolves {proc, wsUrl, listeners, stderr(), alive(), stop()}.
async function spawnRouter(args) {
  const proc = spawn(junctionBin(), args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  const listeners = {};
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: proc.stdout });
    rl.on('line', (line) => {
      const parts = line.trim().split(/\s+/);
      if (parts[0] === 'listening' && parts.length >= 3) {
        listeners[parts[1]] = parts[2];
      } else if (line.trim() === 'ready') {
        resolve();
      }
    });
    proc.on('error', reject);
    exited.then(({ code, signal }) =>
      reject(new Error(`router exited (${code}/${signal}) before ready; stderr:\n${stderr}`)));
  });
  try {
    await withTimeout(ready, READY_TIMEOUT_MS, 'router ready');
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  return {
    proc,
    wsUrl: listeners.websocket,
    listeners,
    stderr: () => stderr,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      try {
        return await withTimeout(exited, 10000, 'router exit after SIGTERM');
      } catch (e) {
        proc.kill('SIGKILL');
        return exited;
      }
    },
  };
}

// A free TCP port on 127.0.0.1 (bound to port 0, then released).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// GET url; resolves the HTTP status (0 when the request failed).
function httpStatus(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

// Poll the node's admin /readyz until it answers 200 (joined the cluster,
// caught up, serving clients).
async function waitReady(node, ms = READY_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  let last = 0;
  while (Date.now() < deadline) {
    last = await httpStatus(`${node.listeners.admin}/readyz`);
    if (last === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`node not ready within ${ms} ms (/readyz ${last}); stderr:\n${node.stderr()}`);
}

// An n-node cluster on 127.0.0.1 with in-memory Raft state (`ephemeral =
// true`), as tests/python/cluster_helpers.py configures one: node 1
// bootstraps, the others join through it (started once node 1 is ready).
// Client and admin listeners use port 0; the gRPC ports are picked free here.
// Resolves when every node's /readyz is 200: {nodes: [node1, ...], stop()}.
async function startCluster(n = 2) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'junction-js-cluster-'));
  const grpc = [];
  for (let i = 0; i < n; i += 1) grpc.push(`127.0.0.1:${await freePort()}`);
  const config = (i) => {
    const peers = grpc.filter((_, j) => j !== i).map((a) => `"${a}"`).join(', ');
    return [
      '[websocket]', 'listen = "127.0.0.1:0"',
      '[rawsocket]', 'listen = "127.0.0.1:0"',
      '[admin]', 'listen = "127.0.0.1:0"',
      '[cluster]', `node_id = ${i + 1}`, `listen = "${grpc[i]}"`, `peers = [${peers}]`,
      `bootstrap = ${i === 0}`, 'ephemeral = true', '',
    ].join('\n');
  };
  const start = (i) => {
    const file = path.join(dir, `node${i + 1}.toml`);
    fs.writeFileSync(file, config(i));
    return spawnRouter(['--config', file]);
  };
  const nodes = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    nodes.push(await start(0));
    await waitReady(nodes[0]);
    const rest = await Promise.allSettled(Array.from({ length: n - 1 }, (_, k) => start(k + 1)));
    for (const r of rest) if (r.status === 'fulfilled') nodes.push(r.value);
    const failed = rest.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    await Promise.all(nodes.map((node) => waitReady(node)));
  } catch (e) {
    await stop();
    throw e;
  }
  return { nodes, stop };
}

function makeSerializer(name) {
  if (name === 'json') return new autobahn.serializer.JSONSerializer();
  if (name === 'msgpack') {
    if (!autobahn.serializer.MsgpackSerializer) throw new Error('msgpack serializer not available (msgpack5 missing?)');
    return new autobahn.serializer.MsgpackSerializer();
  }
  throw new Error(`unknown serializer ${name}`);
}

// Open a session; resolves {session, connection, details, closed} where
// `closed` resolves with {reason, details} when the connection closes.
function connect(router, serializer, realm = 'realm1') {
  const connection = new autobahn.Connection({
    transports: [{ type: 'websocket', url: router.wsUrl, serializers: [makeSerializer(serializer)] }],
    realm,
    max_retries: 0,
    retry_if_unreachable: false,
  });
  let onClosed;
  const closed = new Promise((resolve) => {
    onClosed = resolve;
  });
  const opened = new Promise((resolve, reject) => {
    connection.onopen = (session, details) => resolve({ session, connection, details, closed, serializer });
    connection.onclose = (reason, details) => {
      onClosed({ reason, details });
      reject(new Error(`connection closed before open: ${reason} ${JSON.stringify(details)}`));
      return true; // never retry
    };
  });
  connection.open();
  return withTimeout(opened, OPEN_TIMEOUT_MS, `open ${serializer} session`);
}

let counter = 0;
function uniqueUri(prefix = 'com.example.js') {
  counter += 1;
  return `${prefix}.t${process.pid}_${counter}_${Math.floor(Math.random() * 1e9)}`;
}

// A queue of events for a subscription handler.
class Sink {
  constructor() {
    this.items = [];
    this.waiters = [];
    this.handler = (args, kwargs, details) => {
      const item = { args, kwargs, details };
      const w = this.waiters.shift();
      if (w) w(item);
      else this.items.push(item);
    };
  }

  next(ms = 10000) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), ms, 'event');
  }
}

async function closeAll(conns) {
  for (const c of conns) {
    try {
      if (c.connection.isOpen) {
        c.connection.close();
        await withTimeout(c.closed, 5000, 'close');
      }
    } catch (e) {
      // best effort
    }
  }
}

module.exports = { autobahn, startRouter, startCluster, spawnRouter, connect, uniqueUri, Sink, closeAll, withTimeout };
