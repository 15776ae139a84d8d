// Shared helpers for the Autobahn|JS interop tests: start a Junction router
// on port 0 (addresses read from its stdout until "ready"), open Autobahn|JS
// sessions over WebSocket with the JSON or MessagePack serializer, and close
// everything again. Not a test file itself.
'use strict';

const { spawn } = require('node:child_process');
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
async function startRouter(extraArgs = []) {
  const args = ['--ws', '127.0.0.1:0', '--rawsocket', '127.0.0.1:0', ...extraArgs];
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

module.exports = { autobahn, startRouter, connect, uniqueUri, Sink, closeAll, withTimeout };
