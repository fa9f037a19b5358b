// The browser half of the bench: served same-origin by sfemu --www, driven by run.mjs through
// Playwright (window.runBench(cfg) -> result). One page load per measurement.
import { latencyProbe, startCometd } from "./shared.mjs";

const API_VERSION = "62.0";

async function loadScript(src) {
  await new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(s);
  });
}

const adapters = {
  sfstream: {
    async load() {
      const mod = await import("/sfstream/dist/browser.bundle.mjs"); // an esbuild bundle of dist/browser.js (run.mjs)
      return {
        async start({ token, channel, replayId, onMessage }) {
          const client = new mod.Client(new mod.AccessTokenAuthenticator({ accessToken: token, instanceUrl: location.origin }), {
            apiVersion: API_VERSION,
            replay: replayId === -2 ? mod.ReplayOption.ALL_EVENTS : mod.ReplayOption.NEW_EVENTS,
          });
          await client.open();
          await client.subscribe(channel);
          (async () => {
            for await (const m of client) onMessage(m);
          })().catch((e) => console.error(e));
          return { close: () => client.close() };
        },
      };
    },
  },
  ceiling: {
    async load() {
      const { ceilingClient } = await import("./ceiling.mjs");
      const c = ceilingClient();
      return { start: (o) => c.start({ ...o, url: location.origin }) };
    },
  },
  cometd: {
    async load() {
      const { CometD, CometdReplayExtension } = await import("./cometd.bundle.mjs");
      return {
        async start({ token, channel, replayId, onMessage }) {
          return startCometd({ CometD, ReplayExtension: CometdReplayExtension, url: `${location.origin}/cometd/${API_VERSION}`, token, channel, replayId, onMessage });
        },
      };
    },
  },
  faye: {
    dataOnly: true,
    async load() {
      await loadScript("./faye-browser-min.js");
      const { FayeReplayExtension } = await import("./replay-ext.mjs");
      const Faye = window.Faye;
      return {
        async start({ token, channel, replayId, onMessage }) {
          const client = new Faye.Client(`${location.origin}/cometd/${API_VERSION}`, { timeout: 120 });
          client.disable("websocket");
          client.disable("callback-polling");
          client.setHeader("Authorization", `Bearer ${token}`);
          client.addExtension(new FayeReplayExtension(channel, replayId));
          await client.subscribe(channel, onMessage);
          return { close: () => client.disconnect() };
        },
      };
    },
  },
};

async function publish(channel, count) {
  const res = await fetch("/_sfemu/publish", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ channel, count, payloadSize: 200 }),
  });
  if (!res.ok) throw new Error(`publish: HTTP ${res.status}`);
  return res.json();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

window.runBench = async function runBench(cfg) {
  const adapter = adapters[cfg.client];
  const t0 = performance.now();
  const lib = await adapter.load();
  const tImported = performance.now();
  const idOf = adapter.dataOnly ? (m) => m.event.replayId : (m) => m.data.event.replayId;
  const out = { ok: true, client: cfg.client, scenario: cfg.scenario, n: cfg.n };
  let last = -Infinity;
  let outOfOrder = 0;
  let count = 0;
  if (cfg.scenario === "catchup") {
    let tFirst = 0;
    let tLast = 0;
    let done;
    const finished = new Promise((r) => (done = r));
    const onMessage = (m) => {
      const id = idOf(m);
      if (!(id > last)) outOfOrder++;
      last = id;
      if (count === 0) tFirst = performance.now();
      if (++count === cfg.n) {
        tLast = performance.now();
        done();
      }
    };
    const tOpen = performance.now();
    const sub = await lib.start({ token: cfg.token, channel: cfg.channel, replayId: -2, onMessage });
    await Promise.race([finished, sleep(60_000)]);
    out.totalMs = tLast - tOpen;
    out.drainMs = tLast - tFirst;
    await sleep(150);
    await sub.close();
  } else if (cfg.scenario === "latency") {
    const probe = latencyProbe(idOf);
    const sub = await lib.start({ token: cfg.token, channel: cfg.channel, replayId: -1, onMessage: probe.onMessage });
    const tSubscribed = performance.now();
    out.importMs = tImported - t0;
    out.subscribeMs = tSubscribed - tImported;
    out.startupMs = tSubscribed - t0;
    await fetch("/_sfemu/clock", { method: "POST", body: "{}" });
    await sleep(100);
    Object.assign(out, await probe.run(cfg.n, cfg.gapMs ?? 10, () => publish(cfg.channel, 1)));
    await sub.close();
    count = probe.received;
    outOfOrder = probe.outOfOrder;
  }
  out.received = count;
  out.outOfOrder = outOfOrder;
  return out;
};
window.benchReady = true;
