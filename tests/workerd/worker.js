// A Worker run by workerd (through Miniflare) that imports "sfstream": the module named "sfstream"
// re-exports the packed package's `exports["."].workerd` entry, which imports the .wasm as a
// CompiledWasm module. Each route runs one scenario against sfemu (env.SFEMU_URL) and answers JSON;
// run.mjs checks the answers against what sfemu reports.
import {
  AccessTokenAuthenticator,
  Client,
  ReplayOption,
  SalesforceStreamingClient,
  ServerError,
  SfstreamError,
} from "sfstream";

const CREDS = {
  consumerKey: "sfemu-consumer-key",
  consumerSecret: "sfemu-consumer-secret",
  username: "user@example.com",
  password: "password",
};

async function control(base, path, body = {}) {
  const res = await fetch(`${base}/_sfemu/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`control ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

async function take(client, n, timeout = 15000) {
  const signal = AbortSignal.timeout(timeout);
  const out = [];
  for (let i = 0; i < n; i++) out.push(await client.receive({ signal }));
  return out;
}

/** The client of crossOpen/crossClose, which outlives the request that opened it. */
let crossClient = null;

const summary = (ms) => ms.map((m) => ({ channel: m.channel, replayId: m.data.event.replayId }));

const routes = {
  // A token minted by sfemu, subscribe, events published through the control API.
  async token(base) {
    const grant = await control(base, "token", {});
    const client = new Client(new AccessTokenAuthenticator({ accessToken: grant.access_token, instanceUrl: grant.instance_url }));
    await client.open();
    const connectionType = client.connectionType;
    await client.subscribe("/event/Workerd_Token__e");
    const published = await control(base, "publish", { channel: "/event/Workerd_Token__e", count: 3 });
    const events = summary(await take(client, 3));
    await client.close();
    return { connectionType, published, events, closed: client.closed };
  },
  // The OAuth password flow, then a publish on a generic channel through the client itself.
  async password(base) {
    const client = new SalesforceStreamingClient({ ...CREDS, loginUrl: base });
    await client.open();
    await client.subscribe("/u/WorkerdGreetings");
    await client.publish("/u/WorkerdGreetings", "héllo from workerd 🌍");
    const [m] = await take(client, 1);
    await client.close();
    return { channel: m.channel, payload: m.data.payload };
  },
  async replayAll(base, params) {
    const ch = `/topic/WorkerdReplay${params.get("n") ?? ""}`;
    const published = await control(base, "publish", { channel: ch, count: 4 });
    const client = new SalesforceStreamingClient({ ...CREDS, loginUrl: base, replay: ReplayOption.ALL_EVENTS });
    await client.open();
    await client.subscribe(ch);
    const events = summary(await take(client, 4));
    await client.close();
    return { published, events };
  },
  // Every CometD request of this instance is redirected to another origin: the client must not
  // follow (workerd would send the Authorization and Cookie headers on) and must say why it failed.
  async redirect(_base, params) {
    const client = new Client(new AccessTokenAuthenticator({ accessToken: params.get("token"), instanceUrl: params.get("instance") }), { connectionTimeout: 5000 });
    const started = Date.now();
    try {
      await client.open();
      await client.close();
      return { thrown: false };
    } catch (e) {
      return { thrown: true, name: e?.name, message: e?.message, sfstreamError: e instanceof SfstreamError, ms: Date.now() - started };
    }
  },
  // A client opened in one request (kept at module level) and closed from a later one: workerd
  // cancels the first request's long-poll when it ends and refuses to abort its requests from
  // another request. close() must still settle, twice, and end the session on the server.
  async crossOpen(base) {
    const grant = await control(base, "token", {});
    crossClient = new Client(new AccessTokenAuthenticator({ accessToken: grant.access_token, instanceUrl: grant.instance_url }));
    await crossClient.open();
    await crossClient.subscribe("/topic/WorkerdCross");
    return { open: !crossClient.closed };
  },
  async crossClose() {
    const outcome = async () => {
      try {
        await crossClient.close();
        return "closed";
      } catch (e) {
        return `${e?.name}: ${e?.message}`;
      }
    };
    const first = await outcome();
    const second = await outcome();
    return { first, second, closed: crossClient.closed };
  },
  async serverError(base) {
    const client = new SalesforceStreamingClient({ ...CREDS, loginUrl: base });
    await client.open();
    try {
      await client.subscribe("/nothing/here");
      return { thrown: false };
    } catch (e) {
      return { thrown: true, serverError: e instanceof ServerError, sfstreamError: e instanceof SfstreamError, errorCode: e.errorCode };
    } finally {
      await client.close();
    }
  },
};

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const name = url.pathname.slice(1);
    const route = routes[name];
    if (!route) return new Response("no such scenario", { status: 404 });
    try {
      return Response.json(await route(env.SFEMU_URL, url.searchParams));
    } catch (e) {
      return Response.json({ error: `${e?.name}: ${e?.message}` }, { status: 500 });
    }
  },
};
