// Core scenarios of the real client in a real browser page, served by sfemu on the same origin as
// /cometd. Each scenario throws on failure; run.mjs runs them through page.evaluate.
import {
  SalesforceStreamingClient,
  Client,
  AccessTokenAuthenticator,
  ReplayOption,
  ReplayMarker,
  ServerError,
  SfstreamError,
  AuthenticationError,
} from "./sfstream/dist/browser.js";
import { check, control } from "./helpers.js";

async function take(client, n, timeout = 15000, what = "events") {
  const signal = AbortSignal.timeout(timeout);
  const out = [];
  try {
    for (let i = 0; i < n; i++) out.push(await client.receive({ signal }));
  } catch (e) {
    throw new Error(`${what}: got ${out.length} of ${n} (${e?.name}: ${e?.message})`, { cause: e });
  }
  return out;
}

const replayIdOf = (m) => m.data.event.replayId;

/** n distinct ids, increasing, all inside the range sfemu reported for the publish. */
function checkPublished(got, published, what) {
  const ids = got.map(replayIdOf);
  check(ids.length === published.published, `${what}: ${ids.length} of ${published.published} events`);
  check(new Set(ids).size === ids.length, `${what}: no duplicates (${ids})`);
  check(ids.every((id, i) => i === 0 || id > ids[i - 1]), `${what}: in order (${ids})`);
  check(ids[0] === published.firstReplayId && ids[ids.length - 1] === published.lastReplayId,
    `${what}: ids ${ids} span ${published.firstReplayId}..${published.lastReplayId}`);
}

export const scenarios = {
  async "password login against the same origin, subscribe, receive published events"(creds) {
    const statuses = [];
    const client = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, onStatus: (s) => statuses.push(s.type) });
    check(client.closed === true, "closed before open");
    await client.open();
    check(client.closed === false, "open");
    check(client.connectionType === "long-polling", "long-polling");
    await client.subscribe("/topic/BrowserOne");
    await client.subscribe("/event/Browser_Two__e");
    const p1 = await control("publish", { channel: "/topic/BrowserOne", count: 3 });
    const p2 = await control("publish", { channel: "/event/Browser_Two__e", count: 2 });
    const seen = [];
    for await (const m of client) {
      seen.push(m);
      if (seen.length === 5) break;
    }
    checkPublished(seen.filter((m) => m.channel === "/topic/BrowserOne"), p1, "topic");
    checkPublished(seen.filter((m) => m.channel === "/event/Browser_Two__e"), p2, "platform event");
    check(typeof seen[0].data.sobject === "object" || typeof seen[0].data.payload === "object", "event body");
    check(client.closed === false, "break leaves the client open");
    await client.close();
    check(client.closed === true, "closed");
    check(statuses.includes("connected") && statuses.includes("closed"), `statuses ${statuses}`);
  },

  // fetch would follow a 307 with the request's headers; the client asks for redirect: "manual",
  // which a page sees as an opaque redirect with no status: it must fail naming the redirect.
  async "a redirect is never followed: open() fails at once, naming it"(creds) {
    const client = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, connectionTimeout: 5000 });
    await control("fail", { status: 307, count: 1, location: "/elsewhere/cometd/62.0" });
    const t0 = performance.now();
    const err = await client.open().then(() => null, (e) => e);
    check(err instanceof SfstreamError && err.name === "TransportError", `error: ${err?.name}: ${err?.message}`);
    check(/redirect, which is not followed/.test(err.message), `message: ${err.message}`);
    check(performance.now() - t0 < 4000, `failed after ${performance.now() - t0} ms: not at once`);
  },

  // Mid-session, a redirect is retried like any failed long-poll; the page cannot see its status,
  // and the reconnecting status names it a redirect (it said "http0").
  async "a redirect mid-session: reconnecting names it, and the client goes on"(creds) {
    const ch = "/topic/BrowserRedirect";
    const statuses = [];
    const client = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, onStatus: (s) => statuses.push(s) });
    await client.open();
    await client.subscribe(ch);
    // The fault must meet the long-poll after the held one, which the event below answers.
    for (let i = 0; ; i++) {
      const stats = await control("stats");
      if (stats.sessions.some((s) => s.subscriptions.includes(ch) && s.held)) break;
      check(i < 250, "the long-poll held");
      await new Promise((r) => setTimeout(r, 20));
    }
    await control("fail", { status: 302, count: 1 });
    const p1 = await control("publish", { channel: ch, count: 1 });
    checkPublished(await take(client, 1, 10000, "the event before the redirect"), p1, "before");
    const reasons = () => statuses.filter((s) => s.type === "reconnecting" || s.type === "rehandshake").map((s) => s.reason);
    for (let i = 0; !reasons().includes("redirect"); i++) {
      check(i < 250, `reasons: ${reasons()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const p2 = await control("publish", { channel: ch, count: 1 });
    checkPublished(await take(client, 1, 10000, "the event after the redirect"), p2, "after");
    await client.close();
  },

  async "publish on a generic channel and receive it, UTF-8 intact"(creds) {
    const client = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin });
    await client.open();
    await client.subscribe("/u/BrowserGreetings");
    const text = "héllo — 世界 🌍 ".repeat(200);
    await client.publish("/u/BrowserGreetings", text);
    const [m] = await take(client, 1);
    check(m.channel === "/u/BrowserGreetings" && m.data.payload === text, "payload round trip");
    await client.close();
  },

  async "ALL_EVENTS replays the retained events"(creds) {
    const ch = "/event/Browser_Replay__e";
    const published = await control("publish", { channel: ch, count: 4 });
    const client = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, replay: ReplayOption.ALL_EVENTS });
    await client.open();
    await client.subscribe(ch);
    checkPublished(await take(client, 4), published, "replayed");
    await client.close();
  },

  async "recovery after expire-sessions and drop-connections loses no event"(creds) {
    const ch = "/topic/BrowserRecovery";
    const store = new Map();
    const statuses = [];
    const client = new SalesforceStreamingClient({
      ...creds,
      loginUrl: location.origin,
      replay: store,
      onStatus: (s) => statuses.push(s),
    });
    await client.open();
    await client.subscribe(ch);
    const first = await control("publish", { channel: ch, count: 2 });
    checkPublished(await take(client, 2), first, "before");

    const expired = await control("expire-sessions", {});
    check(expired.expired >= 1, "a session was expired");
    // Published while the client has no session: the stored marker must bring them back.
    const during = await control("publish", { channel: ch, count: 3 });
    const duringGot = await take(client, 3, 15000, `after expire-sessions [${statuses.map((s) => s.type + (s.reason ? ":" + s.reason : ""))}]`);
    checkPublished(duringGot, during, "after expire-sessions");
    check(statuses.some((s) => s.type === "rehandshake"), `rehandshake status (${statuses.map((s) => s.type)})`);

    const before = client.stats.reconnects;
    const dropped = await control("drop-connections", {});
    check(dropped.dropped >= 1, "a connection was dropped");
    const afterDrop = await control("publish", { channel: ch, count: 3 });
    const afterDropGot = await take(client, 3, 15000, `after drop-connections [${statuses.map((s) => s.type + (s.reason ? ":" + s.reason : ""))}]`);
    checkPublished(afterDropGot, afterDrop, "after drop-connections");
    check(client.stats.reconnects + client.stats.rehandshakes > before || statuses.some((s) => s.type === "reconnecting"),
      `reconnected after the drop (${statuses.map((s) => s.type)})`);
    await client.close();
    const marker = ReplayMarker.from(store.get(ch));
    check(marker && marker.replayId === afterDrop.lastReplayId, "marker stored on close");
  },

  async "ServerError for an unknown channel and for a rejected replay id"(creds) {
    const client = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin });
    await client.open();
    let err = null;
    try {
      await client.subscribe("/nothing/here");
    } catch (e) {
      err = e;
    }
    check(err instanceof ServerError && err instanceof SfstreamError, `ServerError, got ${err}`);
    check(err.errorCode === 400, `errorCode ${err.errorCode}`);
    await client.close();

    const ch = "/topic/BrowserRejected";
    const bad = new SalesforceStreamingClient({
      ...creds,
      loginUrl: location.origin,
      replay: new Map([[ch, { replayId: 999999999, date: new Date().toISOString() }]]),
    });
    await bad.open();
    err = null;
    try {
      await bad.subscribe(ch);
    } catch (e) {
      err = e;
    }
    check(err instanceof ServerError, `ServerError, got ${err}`);
    check(/The replayId \{999999999\} you provided was invalid/.test(err.errorMessage), `errorMessage ${err.errorMessage}`);
    await bad.close();
  },

  async "a wrong password is an AuthenticationError without the secret"(creds) {
    const client = new SalesforceStreamingClient({ ...creds, password: "wrong-pass-xyz", loginUrl: location.origin });
    let err = null;
    try {
      await client.open();
    } catch (e) {
      err = e;
    }
    check(err instanceof AuthenticationError, `AuthenticationError, got ${err}`);
    check(err.error === "invalid_grant", `error ${err.error}`);
    check(!err.message.includes("wrong-pass-xyz") && !err.message.includes(creds.consumerSecret), "no secret in message");
  },

  async "AbortSignal rejects receive with its reason and loses nothing"(creds) {
    const ch = "/topic/BrowserAbort";
    const client = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin });
    await client.open();
    await client.subscribe(ch);
    const ac = new AbortController();
    const pending = client.receive({ signal: ac.signal });
    ac.abort(new Error("stop waiting"));
    let reason = null;
    try {
      await pending;
    } catch (e) {
      reason = e;
    }
    check(reason && reason.message === "stop waiting", `rejected with the reason, got ${reason}`);
    const published = await control("publish", { channel: ch, count: 1 });
    checkPublished(await take(client, 1), published, "after abort");

    const ac2 = new AbortController();
    setTimeout(() => ac2.abort(), 100);
    let n = 0;
    for await (const _ of client.messages({ signal: ac2.signal })) n++;
    check(n === 0, "aborted iteration ends quietly");
    await client.close();
  },

  async "AccessTokenAuthenticator and await using"(creds) {
    const grant = await control("token", { username: creds.username });
    const ch = "/event/Browser_Token__e";
    let outer;
    {
      await using client = new Client(new AccessTokenAuthenticator({ accessToken: grant.access_token, instanceUrl: location.origin }));
      outer = client;
      await client.open();
      await client.subscribe(ch);
      const published = await control("publish", { channel: ch, count: 2 });
      checkPublished(await take(client, 2), published, "token client");
    }
    check(outer.closed === true, "await using closed the client");
  },
};
