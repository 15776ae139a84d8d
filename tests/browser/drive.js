// Drives headless Chromium (Debian's, through playwright-core) for the browser
// test (tests/python/test_browser.py): ADMIN_TOKEN=... node drive.js PAGE_URL CONSOLE_URL.
// 1. the plain Autobahn|JS page: waits until it joined, subscribed and got the call's
//    result, prints {"ready": true} so the test publishes, then waits for the events;
// 2. the console (CONSOLE_URL): logs in by typing ADMIN_TOKEN into its form (the
//    token is never in a URL), shows the cluster after two refreshes; then a
//    session joins the same node from the page and the console must show it
//    without a reload;
// 3. the console without query parameters (it asks /api/console-config) refuses a
//    wrong token, then joins with the right one.
// Prints one JSON line with what the pages showed; exits non-zero when a step did
// not happen in time.
"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");

const STEP_MS = 15000;
const TOKEN = process.env.ADMIN_TOKEN || "";

// Types the token into the console's login form and submits it.
async function login(page, token) {
  await page.waitForSelector("#login:not([hidden])", { timeout: STEP_MS });
  await page.fill("#token", token);
  await page.click("#login-submit");
}

// What a console page shows about its login, and whether the token leaked into its URL.
function loginState(page) {
  return page.evaluate(token => ({
    loginShown: !document.getElementById("login").hidden,
    error: document.getElementById("login-error").textContent,
    tokenInUrl: location.href.includes(token),
  }), TOKEN);
}

function readConsole(page) {
  return page.evaluate(() => {
    const table = id => [...document.querySelectorAll(`#${id} tbody tr`)].map(r => [...r.cells].map(c => c.textContent));
    const text = id => document.getElementById(id).textContent;
    return {
      state: text("state"), node: text("node"), leader: text("leader"), term: text("term"),
      sessions: Number(text("sessions")), rates: text("rates"), events: text("events"),
      members: table("members"), sessionList: table("session-list"),
      registrations: table("registrations"), subscriptions: table("subscriptions"),
      refreshed: Number(document.body.dataset.refreshed || 0),
    };
  });
}

async function main() {
  const [pageUrl, consoleUrl] = process.argv.slice(2);
  // a fresh profile directory (playwright passes it as --user-data-dir; headless adds --headless)
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "junction-chromium-"));
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const out = {};
  try {
    const page = await browser.newPage();
    page.on("console", m => process.stderr.write(`page: ${m.text()}\n`));
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.results && (window.results.error || (window.results.sum !== null && window.results.subscribed)),
                               null, { timeout: STEP_MS });
    out.page = await page.evaluate(() => window.results);
    process.stdout.write(JSON.stringify({ ready: true, session: out.page.session }) + "\n");
    await page.waitForFunction(() => window.results.events.length >= 3, null, { timeout: STEP_MS });
    out.page = await page.evaluate(() => window.results);

    const console_ = await browser.newPage();
    console_.on("console", m => process.stderr.write(`console: ${m.text()}\n`));
    const opened = await console_.goto(consoleUrl);
    out.consoleStatus = opened.status();  // 401: the page is the login form until the token is given
    await login(console_, TOKEN);
    await console_.waitForFunction(() => Number(document.body.dataset.refreshed || 0) >= 2, null, { timeout: STEP_MS });
    out.console = await readConsole(console_);
    out.consoleLogin = await loginState(console_);

    // a session joins the console's node: the console shows it without a reload
    const wsUrl = new URL(consoleUrl).searchParams.get("url");
    const joined = await page.evaluate(url => new Promise((resolve, reject) => {
      window.extra = new autobahn.Connection({ url, realm: "realm1", max_retries: 0 });
      window.extra.onopen = s => resolve(s.id);
      window.extra.onclose = reason => reject(new Error(`extra session closed: ${reason}`));
      window.extra.open();
    }), wsUrl);
    await console_.waitForFunction(
      id => [...document.querySelectorAll("#session-list tbody tr")].some(r => r.cells[0].textContent === String(id)),
      joined, { timeout: STEP_MS });
    out.joined = joined;
    out.consoleAfterJoin = await readConsole(console_);

    // without query parameters the console asks /api/console-config where to connect
    const bare = await browser.newPage();
    await bare.goto(new URL("/console", consoleUrl).toString());
    await login(bare, "not-the-token");
    await bare.waitForFunction(() => document.getElementById("login-error").textContent !== "", null, { timeout: STEP_MS });
    out.bareWrongToken = await loginState(bare);
    await login(bare, TOKEN);
    await bare.waitForFunction(() => Number(document.body.dataset.refreshed || 0) >= 1, null, { timeout: STEP_MS });
    out.bareConsole = await readConsole(bare);
    out.bareLogin = await loginState(bare);
  } finally {
    await browser.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch(e => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
