// Drives headless Chromium (Debian's, through playwright-core) for the browser
// tests: node drive.js PAGE_URL CONSOLE_URL. Prints one JSON line with what the
// pages showed; exits non-zero when a step did not happen in time.
"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");

async function main() {
  const [pageUrl, consoleUrl] = process.argv.slice(2);
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "junction-chromium-"));
  // a fresh profile directory (playwright passes it as --user-data-dir)
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const out = {};
  try {
    const page = await browser.newPage();
    page.on("console", m => process.stderr.write(`page: ${m.text()}\n`));
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.results && window.results.sum !== null && window.results.subscribed,
                               null, { timeout: 15000 });
    out.page = await page.evaluate(() => window.results);
    // signal the test, then wait for the events it publishes
    process.stdout.write(JSON.stringify({ ready: true, session: out.page.session }) + "\n");
    await page.waitForFunction(() => window.results.events.length >= 3, null, { timeout: 15000 });
    out.page = await page.evaluate(() => window.results);

    const console_ = await browser.newPage();
    console_.on("console", m => process.stderr.write(`console: ${m.text()}\n`));
    await console_.goto(consoleUrl);
    await console_.waitForFunction(() => Number(document.body.dataset.refreshed || 0) >= 2, null, { timeout: 15000 });
    const read = () => console_.evaluate(() => ({
      state: document.getElementById("state").textContent,
      leader: document.getElementById("leader").textContent,
      members: [...document.querySelectorAll("#members tbody tr")].map(r => [...r.cells].map(c => c.textContent)),
      registrations: [...document.querySelectorAll("#registrations tbody tr")].map(r => r.cells[1].textContent),
      sessions: Number(document.getElementById("sessions").textContent),
      rates: document.getElementById("rates").textContent,
    }));
    out.console = await read();
    // the console is live: a session joining this node shows up without a reload
    const before = out.console.sessions;
    await page.evaluate(url => { window.extra = new autobahn.Connection({ url, realm: "realm1" }); window.extra.open(); },
                        new URL(pageUrl).searchParams.get("console_ws"));
    await console_.waitForFunction(n => Number(document.getElementById("sessions").textContent) > n, before,
                                   { timeout: 15000 });
    out.consoleAfterJoin = await read();
  } finally {
    await browser.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch(e => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
