#!/usr/bin/env node
// End-to-end: the dashboard (www/) in real Chromium, served by sfemu running as its own process
// (same origin as /cometd, as a page served by Salesforce would be), with the packed package
// (tests/node_modules/sfstream, extracted by scripts/test.mjs) as its client. Events are published
// through sfemu's control API for determinism; every fault is injected by clicking the page's own
// buttons; the counts shown must equal what sfemu published. Screenshots: artifacts/ and docs/.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CREDENTIALS, ROOT, startSfemu, until } from "../helpers/sfemu.mjs";
import { CHROMIUM_ARGS } from "../helpers/layer.mjs";

const CHANNELS = ["/topic/OpportunityUpdates", "/topic/CaseUpdates", "/event/Order_Placed__e", "/data/ChangeEvents"];
/** Where to publish so that an event lands on each subscribed channel (CDC fans out to /data/ChangeEvents). */
const SOURCE = { "/data/ChangeEvents": "/data/AccountChangeEvent" };

let passed = 0;
let failed = 0;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e?.stack ?? e).split("\n").join("\n  ")}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// ---------------------------------------------------------------- the served directory

const pkg = join(ROOT, "tests", "node_modules", "sfstream", "dist");
if (!existsSync(join(pkg, "browser.js"))) {
  console.error("tests/node_modules/sfstream is missing: run `node scripts/test.mjs e2e` (it packs the package first)");
  console.log("0 passed, 1 failed");
  process.exit(1);
}
const served = mkdtempSync(join(tmpdir(), "sfstream-e2e-"));
cpSync(join(ROOT, "www"), served, { recursive: true, filter: (src) => !src.includes(join("www", "vendor")) });
cpSync(pkg, join(served, "vendor", "sfstream"), { recursive: true });
const artifacts = join(ROOT, "artifacts");
mkdirSync(artifacts, { recursive: true });

const emu = await startSfemu(["--www", served, "--hold-timeout", "10000"]);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
const page = await browser.newPage({ viewport: { width: 1400, height: 1050 } });
const pageErrors = [];
const foreign = [];
page.on("pageerror", (e) => pageErrors.push(e.message));
page.on("console", (m) => {
  if (m.type() === "error" && !/Failed to load resource|ERR_CONNECTION|ERR_EMPTY_RESPONSE|net::/.test(m.text())) pageErrors.push(m.text());
});
page.on("request", (r) => {
  if (!r.url().startsWith(emu.url) && !r.url().startsWith("data:")) foreign.push(r.url());
});

// ---------------------------------------------------------------- helpers

/** Per channel: what the page shows (its table row). */
async function shown() {
  return page.evaluate(() => {
    const out = {};
    for (const tr of document.querySelectorAll("#channels tbody tr")) {
      out[tr.dataset.channel] = {
        received: Number(tr.querySelector(".received").textContent),
        duplicates: Number(tr.querySelector(".order").textContent),
        sub: tr.dataset.sub,
        marker: tr.querySelector(".marker").textContent,
        replay: tr.querySelector(".replay").textContent,
      };
    }
    return out;
  });
}
const state = () => page.locator("#conn-state").getAttribute("data-state");
/** Timeline entries, oldest first. */
const timeline = () =>
  page.evaluate(() => [...document.querySelectorAll("#timeline li")].reverse().map((li) => ({ type: li.dataset.type, detail: li.querySelector(".detail").textContent })));

let publishedByUs = 0;
async function publish(channel, count = 1) {
  const r = await emu.control("publish", { channel: SOURCE[channel] ?? channel, count });
  publishedByUs += r.published;
}
/** A steady publisher on every test channel (round robin), until stopped. */
function startPublisher(everyMs = 40) {
  let stop = false;
  let i = 0;
  const done = (async () => {
    while (!stop) {
      await publish(CHANNELS[i++ % CHANNELS.length]);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return async () => {
    stop = true;
    await done;
  };
}
async function sfemuPublished() {
  const st = await emu.control("stats");
  return Object.fromEntries(CHANNELS.map((c) => [c, st.channels[c]?.published ?? 0]));
}
/** Wait until the page shows, for every channel, exactly what sfemu published on it. */
async function countsMatch(what, timeout = 30000) {
  let last = "";
  try {
    await until(
      async () => {
        const [pub, s] = [await sfemuPublished(), await shown()];
        last = CHANNELS.map((c) => `${c}: shown ${s[c].received} / published ${pub[c]}`).join("; ");
        return CHANNELS.every((c) => s[c].received === pub[c]);
      },
      { timeout, every: 200, what },
    );
  } catch (e) {
    throw new Error(`${e.message}: ${last}`);
  }
}
const total = () => page.evaluate(() => Number(document.querySelector("#total-received").textContent));

// ---------------------------------------------------------------- the story

try {
  await step("the page loads from sfemu, connects (password login, replay all) and subscribes the four channels", async () => {
    await page.goto(`${emu.url}/?replay=all`);
    await until(async () => (await state()) === "connected", { timeout: 20000, what: "connected" });
    await until(
      async () => {
        const st = await emu.control("stats");
        return st.sessions.length === 1 && CHANNELS.every((c) => st.sessions[0].subscriptions.includes(c));
      },
      { timeout: 10000, what: "four subscriptions on sfemu" },
    );
    const s = await shown();
    for (const c of CHANNELS) assert(s[c].sub === "yes", `${c} shown as ${s[c].sub}`);
    assert(await page.locator("body[data-sfemu=true]").count(), "page detected sfemu");
  });

  await step("events arrive in every feed, newest first, each expandable to its JSON", async () => {
    for (const c of CHANNELS) await publish(c, 3);
    await countsMatch("first events");
    for (const c of CHANNELS) {
      const items = page.locator(`.feed[data-channel="${c}"] li details`);
      assert((await items.count()) === 3, `${c}: ${await items.count()} feed items`);
      const ids = await page.locator(`.feed[data-channel="${c}"] .rid`).allTextContents();
      const nums = ids.map((x) => Number(x.slice(1)));
      assert(nums[0] > nums[1] && nums[1] > nums[2], `${c}: not newest first: ${ids}`);
    }
    const first = page.locator(`.feed[data-channel="/event/Order_Placed__e"] li details`).first();
    await first.locator("summary").click();
    const json = JSON.parse(await first.locator("pre").textContent());
    assert(json.channel === "/event/Order_Placed__e" && typeof json.data.event.replayId === "number", "expanded JSON is the message");
    const latency = await page.locator(`#channels tr[data-channel="/topic/CaseUpdates"] .latency`).textContent();
    assert(/\d+ ms \/ \d+ ms/.test(latency), `latency shown: ${latency}`);
  });

  // Each fault, injected with the page's own button while events keep flowing; the timeline must
  // show the fault, the client's reaction, and a new `connected`; then events flow again.
  const FAULTS = [
    // Chromium resends a request whose reused keep-alive connection was reset before any answer
    // (even a POST), so the held long-poll usually survives this fault at the network layer: no
    // status change, same session. Either way events must keep flowing, none lost (checked below).
    // When it does not, the failed long-poll may have carried events: a new session.
    { fault: "drop-connections", expect: (t) => t.length === 0 || t.some((e) => e.type === "rehandshake" || e.type === "reconnecting"), recovered: (t) => t.length === 0 || t.some((e) => e.type === "connected") },
    { fault: "expire-sessions", expect: (t) => t.some((e) => e.type === "rehandshake" && /unknownClient/.test(e.detail)) },
    { fault: "revoke-tokens", expect: (t) => t.some((e) => e.type === "reauthenticated") },
    { fault: "restart", expect: (t) => t.some((e) => e.type === "rehandshake" || e.type === "reconnecting") },
    { fault: "fail", expect: (t) => t.some((e) => e.type === "reconnecting" && /http503/.test(e.detail)) },
    { fault: "disconnect", expect: (t) => t.some((e) => e.type === "rehandshake" && /serverDisconnect/.test(e.detail)) },
    // A reply with events lost on its way: the new session replays them (no loss, checked below).
    { fault: "cut-responses", expect: (t) => t.some((e) => e.type === "rehandshake" && /networkError/.test(e.detail)) },
  ];
  for (const { fault, expect, recovered = (t) => t.some((e) => e.type === "connected") } of FAULTS) {
    await step(`fault ${fault}: the timeline shows it and the recovery, and events flow again`, async () => {
      const stopPublisher = startPublisher();
      try {
        await new Promise((r) => setTimeout(r, 300));
        await page.locator(`[data-fault="${fault}"]`).click();
        let after = [];
        await until(
          async () => {
            const t = await timeline();
            const at = t.map((e) => e.type).lastIndexOf("fault");
            after = t.slice(at + 1);
            return at >= 0 && expect(after) && recovered(after);
          },
          { timeout: 30000, every: 100, what: `recovery from ${fault}` },
        ).catch((e) => {
          throw new Error(`${e.message}; after the fault: ${JSON.stringify(after)}`);
        });
        await until(async () => /"(dropped|expired|revoked|sessions|status|disconnected|count)"/.test(await page.locator("#fault-result").textContent()), { timeout: 5000, what: "the control API answered" });
        const result = await page.locator("#fault-result").textContent();
        assert(result.startsWith(`${fault}:`), `fault result: ${result}`);
        if (fault === "drop-connections") assert(/"dropped":[1-9]/.test(result), `nothing dropped: ${result}`);
        const before = await total();
        await until(async () => (await total()) > before + 3, { timeout: 15000, what: "events after recovery" });
        assert((await state()) === "connected", `state ${await state()}`);
      } finally {
        await stopPublisher();
      }
    });
  }

  await step("no event lost or duplicated: the counts shown equal what sfemu published", async () => {
    await countsMatch("counts after the faults");
    const s = await shown();
    const pub = await sfemuPublished();
    const sum = CHANNELS.reduce((n, c) => n + pub[c], 0);
    assert(sum === publishedByUs, `sfemu published ${sum} on the channels, the test ${publishedByUs}`);
    for (const c of CHANNELS) assert(s[c].duplicates === 0, `${c}: ${s[c].duplicates} duplicates`);
    const st = await emu.control("stats");
    assert(st.handshakes >= 5, `only ${st.handshakes} handshakes: the faults did not bite`);
  });

  await step("keyboard: every control is labelled and reachable with Tab; a fault fires with Enter", async () => {
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll("input, select, button, canvas, meter")]
        .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || (el.tagName === "BUTTON" && el.textContent.trim())))
        .map((el) => el.outerHTML.slice(0, 80)),
    );
    assert(unlabelled.length === 0, `unlabelled: ${unlabelled.join(", ")}`);
    await page.locator("#new-channel").focus();
    const reached = new Set();
    for (let i = 0; i < 60; i++) {
      await page.keyboard.press("Shift+Tab");
      const id = await page.evaluate(() => document.activeElement?.dataset.fault ?? document.activeElement?.id ?? "");
      reached.add(id);
      if (id === "drop-connections") break;
    }
    for (const f of ["drop-connections", "expire-sessions", "revoke-tokens", "restart", "fail", "disconnect", "cut-responses", "burst"]) assert(reached.has(f), `Tab never reached ${f}`);
    const stopPublisher = startPublisher();
    try {
      await page.locator('[data-fault="expire-sessions"]').focus();
      const n = (await timeline()).length;
      await page.keyboard.press("Enter");
      await until(async () => (await timeline()).slice(n).some((e) => e.type === "rehandshake"), { timeout: 15000, what: "keyboard fault" });
      await until(async () => (await timeline()).slice(n).some((e) => e.type === "connected"), { timeout: 15000, what: "recovery" });
    } finally {
      await stopPublisher();
    }
    await countsMatch("counts after the keyboard fault");
  });

  await step("the prefetch buffer fills while the page pauses consuming, and drains without loss", async () => {
    const max = Number(await page.locator("#pending-max").textContent());
    await page.locator("#pause").check();
    const before = await shown();
    await publish("/topic/CaseUpdates", max + 50);
    let pending = 0;
    await until(async () => (pending = Number(await page.locator("#pending").textContent())) >= max, { timeout: 15000, what: `buffer at ${max}` }).catch((e) => {
      throw new Error(`${e.message} (pending ${pending})`);
    });
    assert((await shown())["/topic/CaseUpdates"].received === before["/topic/CaseUpdates"].received, "nothing consumed while paused");
    await until(async () => (await state()) === "paused", { timeout: 5000, what: "state paused (buffer full)" });
    await page.locator("#pause").uncheck();
    await countsMatch("counts after the pause");
    await until(async () => (await state()) === "connected", { timeout: 5000, what: "state connected after the buffer drained" });
  });

  await step("unsubscribe and subscribe from the table; replay resume from localStorage across reconnects", async () => {
    await page.locator("#disconnect").click();
    await until(async () => (await state()) === "disconnected", { timeout: 10000, what: "disconnected" });
    await page.selectOption("#replay", "resume");
    await page.locator("#connect").click();
    await until(async () => (await state()) === "connected", { timeout: 15000, what: "connected (resume)" });
    await until(async () => Object.values(await shown()).filter((x) => x.sub === "yes").length === 4, { timeout: 10000, what: "subscribed" });
    // Resume with no marker yet starts from all retained events (the storage's default), counted
    // afresh: Shown = Published, before and after more events.
    const base = await sfemuPublished();
    await countsMatch("resume without a marker: the retained window");
    for (const c of CHANNELS) await publish(c, 2);
    await countsMatch("events in resume mode");
    // The marker of a message is written once the page asks for the next one (automatic ack).
    const st = await emu.control("stats");
    let markers = {};
    await until(
      async () => {
        markers = await page.evaluate(() => Object.fromEntries(Object.entries(localStorage).filter(([k]) => k.startsWith("sfstream-dashboard.replay."))));
        return CHANNELS.every((c) => JSON.parse(markers[`sfstream-dashboard.replay.${c}`] ?? "null")?.replayId === st.channels[c].lastReplayId);
      },
      { timeout: 5000, what: "markers in localStorage" },
    ).catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(markers)} vs ${CHANNELS.map((c) => st.channels[c].lastReplayId)}`);
    });
    const cell = await page.locator(`#channels tr[data-channel="/topic/CaseUpdates"] .marker`).textContent();
    assert(cell.includes("localStorage"), `marker cell: ${cell}`);
    // Unsubscribe one channel; events published meanwhile arrive when it subscribes again (from its marker).
    await page.locator(`#channels tr[data-channel="/topic/CaseUpdates"] button`).click();
    await until(async () => (await emu.control("stats")).sessions[0]?.subscriptions.includes("/topic/CaseUpdates") === false, { timeout: 10000, what: "unsubscribed on sfemu" });
    const beforeUnsub = (await shown())["/topic/CaseUpdates"].received;
    await publish("/topic/CaseUpdates", 4);
    await new Promise((r) => setTimeout(r, 500));
    assert((await shown())["/topic/CaseUpdates"].received === beforeUnsub, "no events while unsubscribed");
    await page.locator(`#channels tr[data-channel="/topic/CaseUpdates"] button`).click();
    await until(async () => (await shown())["/topic/CaseUpdates"].received === beforeUnsub + 4, { timeout: 10000, what: "missed events replayed on resubscribe" });
    // Disconnect, publish while away, reconnect with resume: everything published arrives.
    await page.locator("#disconnect").click();
    await until(async () => (await state()) === "disconnected", { timeout: 10000, what: "disconnected" });
    const away = await shown();
    for (const c of CHANNELS) await publish(c, 5);
    await page.locator("#connect").click();
    await until(async () => {
      const s = await shown();
      return CHANNELS.every((c) => s[c].received === away[c].received + 5);
    }, { timeout: 15000, what: "events published while disconnected, resumed from localStorage" });
    const pub = await sfemuPublished();
    for (const c of CHANNELS) assert(pub[c] - base[c] >= 7, `${c}: published ${pub[c] - base[c]}`);
  });

  await step("a stored marker the server rejects shows a replay fallback in the timeline, and streaming goes on", async () => {
    await page.locator("#disconnect").click();
    await until(async () => (await state()) === "disconnected", { timeout: 10000, what: "disconnected" });
    await page.evaluate(() => localStorage.setItem("sfstream-dashboard.replay./topic/CaseUpdates", JSON.stringify({ replayId: 99999999, date: null })));
    const before = (await shown())["/topic/CaseUpdates"].received;
    const published = (await sfemuPublished())["/topic/CaseUpdates"];
    await page.locator("#connect").click();
    await until(async () => (await timeline()).some((e) => e.type === "replayFallback" && e.detail.includes("/topic/CaseUpdates") && e.detail.includes("99999999")), {
      timeout: 15000,
      what: "replayFallback in the timeline",
    });
    // The fallback is "all retained events": the channel's whole history arrives again.
    await until(async () => (await shown())["/topic/CaseUpdates"].received === before + published, { timeout: 15000, what: "retained events replayed" });
    assert((await state()) === "connected", `state ${await state()}: ${JSON.stringify((await timeline()).slice(-8))}`);
  });

  await step("no request left the machine (same origin only), no page errors", async () => {
    assert(foreign.length === 0, `foreign requests: ${foreign.join(", ")}`);
    assert(pageErrors.length === 0, `page errors: ${pageErrors.join(" | ")}`);
  });

  await step("screenshot saved (artifacts/dashboard-e2e.png)", async () => {
    const stopPublisher = startPublisher(60);
    try {
      await new Promise((r) => setTimeout(r, 4000));
    } finally {
      await stopPublisher();
    }
    await page.locator(`.feed[data-channel="/topic/OpportunityUpdates"] li details summary`).first().click();
    await new Promise((r) => setTimeout(r, 1100));
    await page.screenshot({ path: join(artifacts, "dashboard-e2e.png"), fullPage: true });
    assert(existsSync(join(artifacts, "dashboard-e2e.png")), "screenshot written");
  });
} finally {
  await browser.close().catch(() => {});
  await emu.stop();
}

// ---------------------------------------------------------------- npm start's script

await step("scripts/start.mjs serves the dashboard with sfemu --demo; live events; a fault; screenshot; SIGINT stops everything", async () => {
  const proc = spawn(process.execPath, [join(ROOT, "scripts", "start.mjs")], { cwd: ROOT, env: { ...process.env, PORT: "0" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.setEncoding("utf8").on("data", (c) => (out += c));
  proc.stderr.setEncoding("utf8").on("data", (c) => (out += c));
  const exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
  let b;
  try {
    const url = await until(() => /sfstream dashboard: (http:\/\/\S+)/.exec(out)?.[1], { timeout: 300000, every: 100, what: `start.mjs URL (output: ${out})` });
    b = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
    const p = await b.newPage({ viewport: { width: 1400, height: 1050 } });
    await p.goto(url);
    await until(async () => (await p.locator("#conn-state").getAttribute("data-state")) === "connected", { timeout: 20000, what: "connected" });
    await until(async () => Number(await p.locator("#total-received").textContent()) >= 4, { timeout: 20000, what: "demo events" });
    const kinds = await p.evaluate(() => [...document.querySelectorAll("#channels tbody tr")].filter((tr) => Number(tr.querySelector(".received").textContent) > 0).map((tr) => tr.dataset.channel));
    assert(kinds.length >= 2, `demo events on ${kinds}`);
    // The README's screenshot: the demo stream, one recovery in the timeline, one event opened.
    await new Promise((r) => setTimeout(r, 5000));
    await p.locator('[data-fault="expire-sessions"]').click();
    await until(async () => (await p.locator("#timeline li").first().getAttribute("data-type")) === "connected", { timeout: 15000, what: "recovery (demo)" });
    await new Promise((r) => setTimeout(r, 5000));
    await p.locator('.feed[data-channel="/topic/OpportunityUpdates"] li details summary').first().click();
    await new Promise((r) => setTimeout(r, 1100));
    await p.screenshot({ path: join(artifacts, "dashboard-demo.png"), fullPage: true });
    // The README's screenshot is refreshed on request only, so a test run leaves the tree clean.
    if (process.env.SFSTREAM_UPDATE_SCREENSHOT === "1") {
      mkdirSync(join(ROOT, "docs"), { recursive: true });
      cpSync(join(artifacts, "dashboard-demo.png"), join(ROOT, "docs", "dashboard.png"));
    }
    await b.close();
    b = undefined;
    proc.kill("SIGINT");
    const { code } = await Promise.race([exited, new Promise((_, rej) => setTimeout(() => rej(new Error("start.mjs did not exit")), 10000))]);
    assert(code === 0, `start.mjs exit ${code}: ${out}`);
    let refused = false;
    try {
      await fetch(`${url}_sfemu/stats`, { signal: AbortSignal.timeout(2000) });
    } catch {
      refused = true;
    }
    assert(refused, "sfemu still answers after SIGINT");
  } finally {
    await b?.close().catch(() => {});
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
  }
});

await step("scripts/start.mjs --org: the page streams from an org (sfemu standing in) through the relay, with the instance URL + token form", async () => {
  const org = await startSfemu(["--hold-timeout", "10000"]);
  const proc = spawn(process.execPath, [join(ROOT, "scripts", "start.mjs"), "--org"], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: "0",
      SF_LOGIN_URL: org.url,
      SF_CONSUMER_KEY: CREDENTIALS.consumerKey,
      SF_CONSUMER_SECRET: CREDENTIALS.consumerSecret,
      SF_USERNAME: CREDENTIALS.username,
      SF_PASSWORD: CREDENTIALS.password,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout.setEncoding("utf8").on("data", (c) => (out += c));
  proc.stderr.setEncoding("utf8").on("data", (c) => (out += c));
  const exited = new Promise((r) => proc.once("exit", (code) => r(code)));
  let b;
  try {
    const url = await until(() => /through the relay\): (http:\/\/\S+)/.exec(out)?.[1], { timeout: 60000, every: 100, what: `relay URL (output: ${out})` });
    const token = /relay session token into "Access token": (\S+)/.exec(out)?.[1];
    assert(token, "session token printed");
    b = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
    const p = await b.newPage();
    const foreignHere = [];
    const origin = new URL(url).origin;
    p.on("request", (r) => {
      if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) foreignHere.push(r.url());
    });
    await p.goto(url);
    await p.locator("body[data-ready=true]").waitFor({ timeout: 10000 });
    assert(await p.locator("#token-fields").isVisible(), "token form shown");
    assert((await p.locator("body").getAttribute("data-sfemu")) === "false", "the relay is not sfemu");
    assert(await p.locator('[data-fault="restart"]').isDisabled(), "fault buttons disabled against an org");
    assert((await p.locator("#instance-url").inputValue()) === origin, "instance URL prefilled with the page origin");
    await p.locator("#access-token").fill(token);
    await p.selectOption("#replay", "all");
    await p.locator("#connect").click();
    await until(async () => (await p.locator("#conn-state").getAttribute("data-state")) === "connected", { timeout: 20000, what: "connected through the relay" });
    await until(
      async () => {
        const st = await org.control("stats");
        return st.sessions.length === 1 && CHANNELS.every((c) => st.sessions[0].subscriptions.includes(c));
      },
      { timeout: 10000, what: "subscriptions reached the org" },
    );
    for (const c of CHANNELS) await org.control("publish", { channel: SOURCE[c] ?? c, count: 4 });
    // The org expires every session: the client re-handshakes through the relay and loses nothing.
    await org.control("expire-sessions", {});
    for (const c of CHANNELS) await org.control("publish", { channel: SOURCE[c] ?? c, count: 3 });
    await until(
      async () => {
        const st = await org.control("stats");
        const s = await p.evaluate(() => Object.fromEntries([...document.querySelectorAll("#channels tbody tr")].map((tr) => [tr.dataset.channel, Number(tr.querySelector(".received").textContent)])));
        return CHANNELS.every((c) => s[c] === st.channels[c].published);
      },
      { timeout: 20000, what: "shown = published through the relay" },
    );
    assert(foreignHere.length === 0, `requests to another origin: ${foreignHere}`);
    const html = await p.content();
    assert(!html.includes(token), "the session token is not rendered in the page");
    await b.close();
    b = undefined;
    proc.kill("SIGINT");
    const code = await Promise.race([exited, new Promise((_, rej) => setTimeout(() => rej(new Error("start.mjs --org did not exit")), 10000))]);
    assert(code === 0, `exit ${code}: ${out}`);
  } finally {
    await b?.close().catch(() => {});
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await org.stop();
  }
});

rmSync(served, { recursive: true, force: true });
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
