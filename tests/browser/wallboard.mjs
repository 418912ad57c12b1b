// Drives the real /wallboard page in Debian's chromium (playwright-core): signs in with the
// API token, waits until the queue and agent tables show, says READY on stdout, then waits
// for the waiting count of QUEUE to change without a reload (the test places a call when it
// reads READY), takes a screenshot and says CHANGED with what the page shows; then
// acknowledges the open escalation with its button and says ACKED once it is gone. Exit code 0 only if all of that held.
//
//   BASE=http://127.0.0.1:8080 TOKEN=... QUEUE=orders AGENT=oleg SHOT=out.png node wallboard.mjs
import { chromium } from "playwright-core";

const { BASE, TOKEN, QUEUE = "orders", AGENT = "oleg", SHOT = "wallboard.png" } = process.env;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const fail = (msg) => { console.log("FAIL " + msg); process.exit(1); };

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => console.log("PAGEERROR " + e.message));
  await page.goto(BASE + "/wallboard");
  await page.fill("#token", TOKEN);
  await page.click("button[type=submit]");
  const waiting = page.locator(`tr[data-queue="${QUEUE}"] td.waiting`);
  await waiting.waitFor({ timeout: 10000 });
  await page.locator(`tr[data-agent="${AGENT}"]`).waitFor({ timeout: 10000 });
  await page.locator("#status.live").waitFor({ timeout: 10000 });
  // A marker that a reload would erase.
  await page.evaluate(() => { window.__notReloaded = true; });
  const before = (await waiting.textContent()).trim();
  console.log("READY waiting=" + before);
  // Polled from here: the page's CSP forbids the eval that waitForFunction would need.
  const deadline = Date.now() + 20000;
  while ((await waiting.textContent()).trim() === before) {
    if (Date.now() > deadline) fail("the waiting count stayed " + before);
    await new Promise((r) => setTimeout(r, 100));
  }
  const after = (await waiting.textContent()).trim();
  if (!(await page.evaluate(() => window.__notReloaded === true))) fail("the page was reloaded");
  const agentState = (await page.locator(`tr[data-agent="${AGENT}"] .state`).textContent()).trim();
  const callsToday = (await page.locator(`tr[data-agent="${AGENT}"] td:last-child`).textContent()).trim();
  const escalations = await page.locator("[data-escalation]").count();
  const answeredToday = (await page.locator(`tr[data-queue="${QUEUE}"] td:nth-child(8)`).textContent()).trim();
  await page.screenshot({ path: SHOT, fullPage: true });
  const foreign = requests.filter((u) => !u.startsWith(BASE));
  if (foreign.length) fail("requests outside the server: " + foreign.join(" "));
  if (requests.some((u) => u.includes(TOKEN))) fail("the token appeared in a URL");
  console.log(`CHANGED waiting=${after} agent=${agentState} calls_today=${callsToday} answered_today=${answeredToday} escalations=${escalations}`);
  // A supervisor acknowledges the escalation from the page.
  if (escalations > 0) {
    await page.click("[data-ack]");
    await page.locator("[data-escalation]").waitFor({ state: "detached", timeout: 10000 });
    console.log("ACKED");
  }
} catch (e) {
  fail(e.message.split("\n")[0]);
} finally {
  await browser.close();
}
