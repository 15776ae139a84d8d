// Drives the web console in headless Chromium (Debian's, through playwright-core)
// for tests/python/test_console.py:
//   ADMIN_TOKEN=... node console.js CONSOLE_URL NODES PROCEDURE VICTIM SCREENSHOT [SAMPLES]
// CONSOLE_URL is /console on one node's admin port, without query parameters (the
// page asks /api/console-config where to connect). NODES is the number of nodes.
// It talks with the test over stdin/stdout, one JSON line per step:
// 1. logs in (types ADMIN_TOKEN into the form), waits until every node has a point
//    in the call-rate chart, prints {"stage": "ready", ...};
// 2. waits for "go" on stdin (the test made calls through every node), then until
//    every node's message and call series grew and shows calls, every node has a
//    p99 latency, and the link table has every ordered pair of nodes up; expands
//    PROCEDURE's callees; waits for SAMPLES (default 1) more samples to be drawn
//    (more make a fuller picture while the test keeps a load running); takes a
//    screenshot to SCREENSHOT; prints {"stage": "shown", ...};
// 3. kills session VICTIM with its row's button and the confirmation dialog, waits
//    for the page to say it was killed and the row to go; prints {"stage": "killed", ...}.
// Exits non-zero when a step did not happen in time (the stack goes to stderr).
"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");

const STEP_MS = 30000;
const TOKEN = process.env.ADMIN_TOKEN || "";

const say = obj => process.stdout.write(JSON.stringify(obj) + "\n");
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function expect(word) {
  const { value, done } = await lines.next();
  if (done || value.trim() !== word) throw new Error(`expected ${word} on stdin, got ${done ? "EOF" : value}`);
}

// What the page shows: the tables as text, and the chart paths' data attributes.
function read(page) {
  return page.evaluate(() => {
    const table = id => [...document.querySelectorAll(`#${id} > tbody > tr:not(.callee-row)`)]
      .map(r => [...r.cells].map(c => c.textContent));
    const charts = {};
    for (const p of document.querySelectorAll("svg.chart path.series")) {
      const chart = p.closest("svg").id;
      (charts[chart] ||= {})[`${p.dataset.node}:${p.dataset.key}`] =
        { points: Number(p.dataset.points), last: p.dataset.last, max: Number(p.dataset.max) };
    }
    const callees = {};
    for (const r of document.querySelectorAll("#registrations tr.callee-row")) {
      callees[r.dataset.registration] = [...r.querySelectorAll(":scope table.callees > tbody > tr")].map(t => [...t.cells].map(c => c.textContent));
    }
    return {
      state: document.getElementById("state").textContent, node: document.getElementById("node").textContent,
      url: document.getElementById("url").textContent, charts, callees,
      nodeStats: table("node-stats"), links: table("links"), sessionList: table("session-list"),
      registrations: table("registrations"), killResult: document.getElementById("kill-result").textContent,
    };
  });
}

// page.waitForFunction, with what the page showed in the error when it times out.
async function until(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: STEP_MS });
  } catch (e) {
    throw new Error(`${what}: ${e.message}\npage: ${JSON.stringify(await read(page))}`);
  }
}

async function main() {
  const [consoleUrl, nodesArg, procedure, victim, screenshot, samplesArg] = process.argv.slice(2);
  const samples = Math.max(1, Number(samplesArg || 1));
  const nodes = Array.from({ length: Number(nodesArg) }, (_, i) => String(i + 1));
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "junction-chromium-"));
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage();
    page.on("console", m => process.stderr.write(`console: ${m.text()}\n`));
    await page.goto(consoleUrl);
    await page.waitForSelector("#login:not([hidden])", { timeout: STEP_MS });
    await page.fill("#token", TOKEN);
    await page.click("#login-submit");

    // 1. every node has a point in the call-rate chart (two samples)
    await page.waitForFunction(nodes => nodes.every(n => {
      const p = document.querySelector(`#chart-calls path[data-node="${n}"]`);
      return p && Number(p.dataset.points) >= 1;
    }), nodes, { timeout: STEP_MS });
    await page.waitForFunction(() => Number(document.body.dataset.refreshed || 0) >= 1, null, { timeout: STEP_MS });
    const before = await read(page);
    say({ stage: "ready", ...before });

    // 2. after the calls: growing series with calls, latency, links both ways
    await expect("go");
    const points = Object.fromEntries(nodes.map(n => [n, before.charts["chart-calls"][`${n}:calls`].points + 1]));
    await until(page, ([nodes, min]) => nodes.every(n => {
      const calls = document.querySelector(`#chart-calls path[data-node="${n}"]`);
      const msgs = document.querySelector(`#chart-messages path[data-node="${n}"]`);
      const row = [...document.querySelectorAll("#node-stats tbody tr")].find(r => r.cells[0].textContent === n);
      return Number(calls.dataset.points) >= min[n] && Number(calls.dataset.max) > 0
        && Number(msgs.dataset.points) >= min[n] && Number(msgs.dataset.max) > 0
        && row && row.cells[11].textContent !== "-";
    }), [nodes, points], "every node's series growing, with calls and a p99 latency");
    await until(page, nodes => {
      const up = new Set([...document.querySelectorAll("#links tbody tr")]
        .filter(r => r.cells[3].textContent === "up").map(r => `${r.cells[0].textContent}>${r.cells[1].textContent}`));
      return nodes.every(a => nodes.every(b => a === b || up.has(`${a}>${b}`)));
    }, nodes, "every link up both ways");
    const reg = page.locator("#registrations > tbody > tr:not(.callee-row)", { hasText: procedure });
    await reg.locator("button.callees").click({ timeout: STEP_MS });
    await until(page, n => [...document.querySelectorAll("#registrations tr.callee-row table.callees > tbody > tr")].length >= n,
                2, "the procedure's callees");
    // the chart has another sample drawn with the callees open (for the screenshot)
    const sampled = await page.evaluate(() => Number(document.body.dataset.sampled || 0));
    await page.waitForFunction(s => Number(document.body.dataset.sampled || 0) >= s, sampled + samples,
                               { timeout: STEP_MS + samples * 2000 });
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    say({ stage: "shown", ...(await read(page)) });

    // 3. kill the victim through its row's button and the confirmation dialog
    const row = page.locator("#session-list > tbody > tr", { has: page.locator(`td:first-child:text-is("${victim}")`) });
    await row.locator("button.kill").click({ timeout: STEP_MS });
    await page.waitForSelector("#kill-dialog[open]", { timeout: STEP_MS });
    const dialogText = await page.textContent("#kill-text");
    await page.click("#kill-confirm");
    await page.waitForFunction(() => /killed/.test(document.getElementById("kill-result").textContent)
                               && !/killing/.test(document.getElementById("kill-result").textContent),
                               null, { timeout: STEP_MS });
    await page.waitForFunction(id => ![...document.querySelectorAll("#session-list tbody tr")]
      .some(r => r.cells[0].textContent === id), victim, { timeout: STEP_MS });
    say({ stage: "killed", dialogText, ...(await read(page)) });
  } finally {
    await browser.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), e => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
