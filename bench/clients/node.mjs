// Node adapters: one per client under test, all with the same shape.
//   load()  -> imports the library (timed by the caller as part of start-up)
//   start({url, token, channel, replayId, onMessage}) -> resolves once subscribed, to {close()}
// `pull: true` means the client delivers through `for await` and honours backpressure: the
// consumer's promise is awaited before the next message. `dataOnly: true` means the callback gets
// `message.data` (Faye's API), not the whole Bayeux message.
import { createRequire } from "node:module";
import { join } from "node:path";
import { ceilingClient } from "./ceiling.mjs";
import { CometdReplayExtension, FayeReplayExtension } from "./replay-ext.mjs";
import { startCometd } from "./shared.mjs";

const API_VERSION = "62.0";

/**
 * sfstream: `Client` + `AccessTokenAuthenticator`. `batches: false` consumes with `for await` over
 * the client (one message per step); `true` with `for await` over `client.batches()` (every
 * buffered message per step, handled in a plain loop).
 */
function sfstreamAdapter(batches) {
  return {
    pull: true,
    async load({ pkgEntry }) {
      const mod = await import(pkgEntry);
      return {
        version: mod.VERSION,
        async start({ url, token, channel, replayId, onMessage, clientOptions = {} }) {
          const { Client, AccessTokenAuthenticator, ReplayOption } = mod;
          const client = new Client(new AccessTokenAuthenticator({ accessToken: token, instanceUrl: url }), {
            apiVersion: API_VERSION,
            replay: replayId === -2 ? ReplayOption.ALL_EVENTS : ReplayOption.NEW_EVENTS,
            ...clientOptions,
          });
          await client.open();
          await client.subscribe(channel);
          let inBatch = 0; // taken in the current batch, not yet handled
          const loop = batches
            ? (async () => {
                for await (const batch of client.batches()) {
                  inBatch = batch.length;
                  for (const m of batch) {
                    inBatch--;
                    const r = onMessage(m);
                    if (r !== undefined) await r;
                  }
                }
              })()
            : (async () => {
                for await (const m of client) {
                  const r = onMessage(m);
                  if (r !== undefined) await r;
                }
              })();
          loop.catch((e) => console.error("sfstream loop:", e));
          return {
            pending: () => client.pendingCount + inBatch,
            async close() {
              await client.close();
            },
          };
        },
      };
    },
  };
}

export const adapters = {
  sfstream: sfstreamAdapter(false),
  "sfstream-batches": sfstreamAdapter(true),

  cometd: {
    async load() {
      const { adapt } = await import("cometd-nodejs-client");
      const { CometD } = await import("cometd");
      adapt();
      return {
        async start({ url, token, channel, replayId, onMessage }) {
          return startCometd({ CometD, ReplayExtension: CometdReplayExtension, url: `${url}/cometd/${API_VERSION}`, token, channel, replayId, onMessage });
        },
      };
    },
  },

  faye: {
    dataOnly: true,
    async load() {
      const faye = (await import("faye")).default;
      return {
        async start({ url, token, channel, replayId, onMessage }) {
          const client = new faye.Client(`${url}/cometd/${API_VERSION}`, { timeout: 120 });
          client.disable("websocket");
          client.setHeader("Authorization", `Bearer ${token}`);
          client.addExtension(new FayeReplayExtension(channel, replayId));
          const sub = client.subscribe(channel, onMessage);
          await sub;
          return {
            async close() {
              await client.disconnect();
            },
          };
        },
      };
    },
  },

  jsforce: {
    dataOnly: true,
    async load() {
      // jsforce >= 3.10 needs Node 22 (undici 8); on Node 20 run.mjs points BENCH_JSFORCE_DIR at a
      // directory whose node_modules holds a Node-20-compatible jsforce (see BENCHMARKS.md).
      const req = createRequire(process.env.BENCH_JSFORCE_DIR ? join(process.env.BENCH_JSFORCE_DIR, "x.js") : import.meta.url);
      const jsforce = req("jsforce");
      const { StreamingExtension } = req("jsforce/lib/api/streaming.js");
      return {
        async start({ url, token, channel, replayId, onMessage }) {
          const conn = new jsforce.Connection({ instanceUrl: url, accessToken: token, version: API_VERSION });
          const client = conn.streaming.createClient([new StreamingExtension.Replay(channel, replayId)]);
          const sub = client.subscribe(channel, onMessage);
          await sub;
          return {
            async close() {
              await client.disconnect();
            },
          };
        },
      };
    },
  },

  ceiling: {
    async load() {
      return ceilingClient();
    },
  },

  // The same bare loop on node:http (keep-alive), the fastest transport Node has: the floor for
  // any Node client (Node only).
  "ceiling-http": {
    async load() {
      const { httpPost } = await import("./node-http-post.mjs");
      return ceilingClient({ post: httpPost, name: "ceiling-http" });
    },
  },
};
