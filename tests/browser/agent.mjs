// Drives the real /agent page in Debian's chromium (playwright-core) as a browser agent:
// logs in with agent id and password (agent token + SIP over WebSocket with digest), says
// READY once registered, waits for the incoming call's screen pop (says POP with the route
// shown), answers with the fake microphone, waits until WebRTC audio arrives (inbound-rtp
// bytes from getStats, says AUDIO bytes=N), then either hangs up from the page (HANGUP=page,
// says HUNGUP) or waits for the caller to hang up (says ENDED); on the call it escalates to a
// supervisor (says ESCALATED), after it saves a disposition (says DISPOSITION). With
// RENEGOTIATE=1 it first holds, resumes and restarts ICE from the browser (JsSIP re-INVITEs
// carrying Chromium's own offers) and says how many audio bytes arrived in each phase (HELD,
// RESUMED, ICE-RESTART with whether the server's ICE credentials changed). Exit code 0 only
// if all held.
//
//   BASE=http://127.0.0.1:8080 AGENT=petra PASSWORD=petra-secret HANGUP=page node agent.mjs
import { chromium } from "playwright-core";

const { BASE, AGENT, PASSWORD, HANGUP = "caller" } = process.env;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const fail = (msg) => { console.log("FAIL " + msg); process.exit(1); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Hold, resume and an ICE restart from the browser. `current` is the page's JsSIP session.
async function renegotiate(page) {
  const received = () => page.evaluate(() => window.switchboardAudioBytes());
  const step = (name) => page.evaluate((name) => new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error(name + " not answered in 5 s")), 5000);
    const ok = name === "restart"
      ? current.renegotiate({ rtcOfferConstraints: { iceRestart: true } }, resolve)
      : current[name]({}, resolve);
    if (!ok) reject(new Error(name + " refused by JsSIP"));
  }), name);
  // Bytes arriving over 1.5 s, once the change has settled for 0.7 s.
  const delta = async () => {
    await sleep(700);
    const before = await received();
    await sleep(1500);
    return (await received()) - before;
  };
  const ufrag = () => page.evaluate(
    () => (current.connection.remoteDescription.sdp.match(/a=ice-ufrag:(\S+)/) || [])[1]);
  await step("hold");
  console.log("HELD delta=" + await delta());
  await step("unhold");
  console.log("RESUMED delta=" + await delta());
  const before = await ufrag();
  await step("restart");
  const changed = before !== await ufrag();
  console.log("ICE-RESTART changed=" + changed + " delta=" + await delta());
}

async function until(what, ms, f) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) fail("timed out: " + what);
    await sleep(100);
  }
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required"],
});
try {
  const context = await browser.newContext();
  await context.grantPermissions(["microphone"], { origin: BASE });
  const page = await context.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => console.log("PAGEERROR " + e.message));
  await page.goto(BASE + "/agent");
  await page.fill("#agent", AGENT);
  await page.fill("#password", PASSWORD);
  await page.click("button[type=submit]");
  await until("SIP registration", 15000,
    async () => (await page.locator("#sip-status").textContent()).trim() === "registered");
  console.log("READY state=" + (await page.locator("#agent-state").textContent()).trim());
  await page.locator("#call").waitFor({ state: "visible", timeout: 30000 });
  await until("the screen pop's route", 5000,
    async () => (await page.locator("#pop-route").textContent()).trim());
  console.log("POP caller=" + (await page.locator("#pop-caller").textContent()).trim() +
    " type=" + (await page.locator("#pop-type").textContent()).trim() +
    " name=" + (await page.locator("#pop-name").textContent()).trim() +
    " route=" + (await page.locator("#pop-route").textContent()).trim());
  await page.click("#answer");
  await page.locator("#talking-actions").waitFor({ state: "visible", timeout: 10000 });
  const bytes = await until("WebRTC audio (inbound-rtp bytes)", 10000,
    async () => { const b = await page.evaluate(() => window.switchboardAudioBytes()); return b > 0 && b; });
  console.log("AUDIO bytes=" + bytes);
  if (process.env.RENEGOTIATE === "1") await renegotiate(page);
  // Rule 11: the agent escalates the call to a supervisor from the page.
  await page.fill("#escalate-note", "caller asks for a manager");
  await page.click("#escalate");
  await until("the escalation", 5000,
    async () => (await page.locator("#escalate-status").textContent()).trim() === "supervisor notified");
  console.log("ESCALATED");
  if (HANGUP === "page") {
    await sleep(1500);
    await page.click("#hangup");
    await page.locator("#call").waitFor({ state: "hidden", timeout: 10000 });
    console.log("HUNGUP");
  } else {
    await page.locator("#call").waitFor({ state: "hidden", timeout: 30000 });
    console.log("ENDED");
  }
  // Wrap-up: the disposition of the call, on its record.
  await page.locator("#wrap").waitFor({ state: "visible", timeout: 5000 });
  await page.selectOption("#disposition", "order");
  await page.fill("#disposition-note", "two pallets");
  await page.click("#save-disposition");
  await until("the disposition saved", 10000,
    async () => (await page.locator("#disposition-status").textContent()).trim() === "saved");
  console.log("DISPOSITION code=order");
  const foreign = requests.filter((u) => !u.startsWith(BASE));
  if (foreign.length) fail("requests outside the server: " + foreign.join(" "));
} catch (e) {
  fail(e.message.split("\n")[0]);
} finally {
  await browser.close();
}
