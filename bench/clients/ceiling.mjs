// The ceiling: the least work any JS client can do. A bare Bayeux long-polling loop of `fetch` +
// `JSON.parse`: handshake, subscribe (with the replay extension), connect loop, nothing else. No
// retries, no advice handling, no re-handshake. Runs unchanged in Node and in a browser (where the
// browser keeps the cookies; in Node they are carried by hand). `post` swaps the transport: the
// "ceiling-http" client runs the same loop on node:http (clients/node-http-post.mjs).

export function ceilingClient({ post: transport = (url, init) => fetch(url, init), name = "ceiling" } = {}) {
  return {
    name,
    async start({ url, token, channel, replayId, apiVersion = "62.0", onMessage }) {
      const endpoint = `${url}/cometd/${apiVersion}`;
      const cookies = new Map();
      let seq = 0;
      let stopped = false;
      const ac = new AbortController();
      async function post(messages, signal) {
        const headers = { "content-type": "application/json", authorization: `Bearer ${token}` };
        if (cookies.size > 0) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
        const res = await transport(endpoint, { method: "POST", headers, body: JSON.stringify(messages), signal, credentials: "same-origin" });
        const set = typeof res.headers.getSetCookie === "function" ? res.headers.getSetCookie() : [];
        for (const c of set) {
          const pair = c.split(";", 1)[0];
          const eq = pair.indexOf("=");
          if (eq > 0) cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
        }
        if (res.status !== 200) throw new Error(`ceiling: HTTP ${res.status}`);
        return JSON.parse(await res.text());
      }
      const [hs] = await post([
        { channel: "/meta/handshake", version: "1.0", supportedConnectionTypes: ["long-polling"], ext: { replay: true }, id: String(++seq) },
      ]);
      if (!hs || hs.successful !== true) throw new Error(`ceiling: handshake failed: ${JSON.stringify(hs)}`);
      const clientId = hs.clientId;
      const [sub] = await post([
        { channel: "/meta/subscribe", clientId, subscription: channel, ext: { replay: { [channel]: replayId } }, id: String(++seq) },
      ]);
      if (!sub || sub.successful !== true) throw new Error(`ceiling: subscribe failed: ${JSON.stringify(sub)}`);
      const loop = (async () => {
        while (!stopped) {
          let batch;
          try {
            batch = await post([{ channel: "/meta/connect", clientId, connectionType: "long-polling", id: String(++seq) }], ac.signal);
          } catch (e) {
            if (stopped) return;
            throw e;
          }
          for (let i = 0; i < batch.length; i++) {
            const m = batch[i];
            if (m.channel === channel) onMessage(m);
            else if (m.channel === "/meta/connect" && m.successful !== true) throw new Error(`ceiling: connect failed: ${JSON.stringify(m)}`);
          }
        }
      })();
      loop.catch((e) => {
        if (!stopped) console.error(e);
      });
      return {
        async close() {
          stopped = true;
          ac.abort();
          try {
            await post([{ channel: "/meta/disconnect", clientId, id: String(++seq) }]);
          } catch {
            // best effort
          }
        },
      };
    },
  };
}
