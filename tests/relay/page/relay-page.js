// Steps the harness drives with page.evaluate: the real Client from the packed package's browser
// entry, pointed at the relay with the session token as its "access token".
import { Client, AccessTokenAuthenticator, ServerError } from "./sfstream/dist/browser.js";

const clients = new Map();
const describe = (e) => ({ name: e?.name ?? "Error", message: String(e?.message ?? e), error: e instanceof ServerError ? e.error : null });

export const relayTest = {
  async open(name, relayUrl, sessionToken, options = {}) {
    const statuses = [];
    const client = new Client(new AccessTokenAuthenticator({ accessToken: sessionToken, instanceUrl: relayUrl }), {
      connectionTimeout: 8000,
      onStatus: (s) => statuses.push(s.type),
      ...options,
    });
    clients.set(name, { client, statuses });
    try {
      await client.open();
      return { ok: true, connectionType: client.connectionType };
    } catch (e) {
      return { ok: false, ...describe(e) };
    }
  },
  async subscribe(name, channel) {
    try {
      await clients.get(name).client.subscribe(channel);
      return { ok: true };
    } catch (e) {
      return { ok: false, ...describe(e) };
    }
  },
  async publish(name, channel, data) {
    try {
      return { ok: true, reply: await clients.get(name).client.publish(channel, data) };
    } catch (e) {
      return { ok: false, ...describe(e) };
    }
  },
  async take(name, n, timeout = 15000) {
    const { client } = clients.get(name);
    const signal = AbortSignal.timeout(timeout);
    const got = [];
    try {
      for (let i = 0; i < n; i++) {
        const m = await client.receive({ signal });
        got.push({ channel: m.channel, replayId: m.data.event.replayId });
      }
      return { ok: true, got };
    } catch (e) {
      return { ok: false, got, ...describe(e) };
    }
  },
  statuses(name) {
    return clients.get(name).statuses;
  },
  async close(name) {
    const c = clients.get(name);
    if (!c) return;
    clients.delete(name);
    await c.client.close().catch(() => {});
  },
  async closeAll() {
    for (const name of [...clients.keys()]) await this.close(name);
  },
  async raw(url, init) {
    try {
      const r = await fetch(url, init);
      return { status: r.status, body: await r.text() };
    } catch (e) {
      return { status: 0, body: `${e.name}: ${e.message}` };
    }
  },
};
