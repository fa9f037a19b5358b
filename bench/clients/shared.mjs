// Bench pieces that run both in Node (clients/node.mjs, worker.mjs) and in the Chromium page
// (browser/page.mjs; run.mjs copies this file next to it).

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * CometD with long-polling only, no message type in the URL and the replay extension; resolves
 * once subscribed, to `{ close() }`.
 */
export async function startCometd({ CometD, ReplayExtension, url, token, channel, replayId, onMessage }) {
  const cometd = new CometD();
  cometd.unregisterTransport("websocket");
  cometd.unregisterTransport("callback-polling");
  cometd.configure({
    url,
    appendMessageTypeToURL: false,
    requestHeaders: { Authorization: `Bearer ${token}` },
    logLevel: "warn",
  });
  cometd.registerExtension("replay", new ReplayExtension(channel, replayId));
  await new Promise((resolve, reject) => {
    cometd.handshake((hs) => {
      if (!hs.successful) return reject(new Error(`cometd handshake: ${JSON.stringify(hs)}`));
      cometd.subscribe(channel, onMessage, (sub) => {
        if (sub.successful) resolve();
        else reject(new Error(`cometd subscribe: ${JSON.stringify(sub)}`));
      });
    });
  });
  return { close: () => new Promise((resolve) => cometd.disconnect(() => resolve())) };
}

/**
 * The latency scenario's consumer: `onMessage` counts events, checks their order (by `idOf`) and
 * timestamps the one `run()` waits for.
 */
export function latencyProbe(idOf) {
  let waiting = null;
  const probe = {
    received: 0,
    outOfOrder: 0,
    last: -Infinity,
    onMessage(m) {
      const id = idOf(m);
      if (!(id > probe.last)) probe.outOfOrder++;
      probe.last = id;
      probe.received++;
      const w = waiting;
      waiting = null;
      if (w) w(performance.now());
    },
    /** `n` publishes of one event (`publishOne()`), `gapMs` apart: p50 and p99 of publish → seen (ms). */
    async run(n, gapMs, publishOne) {
      const lat = [];
      for (let i = 0; i < n; i++) {
        const arrived = new Promise((resolve) => (waiting = resolve));
        const tSend = performance.now();
        await publishOne();
        const tRecv = await Promise.race([arrived, sleep(10_000).then(() => NaN)]);
        if (Number.isNaN(tRecv)) throw new Error(`event ${i} not delivered within 10 s`);
        lat.push(tRecv - tSend);
        await sleep(gapMs);
      }
      lat.sort((a, b) => a - b);
      const q = (p) => lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)];
      return { p50Ms: q(0.5), p99Ms: q(0.99) };
    },
  };
  return probe;
}
