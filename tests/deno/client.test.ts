// The client in Deno, imported as "sfstream" from a node_modules directory holding the PACKED
// package, so Deno resolves it through the package's exports map ("deno" condition → dist/deno.js).
// run.mjs starts sfemu and passes its URL in SFEMU_URL.
import {
  AccessTokenAuthenticator,
  Client,
  ReplayMarker,
  ReplayOption,
  SalesforceStreamingClient,
  ServerError,
  SfstreamError,
  type Message,
  type StatusEvent,
} from "sfstream";

const URL_ = Deno.env.get("SFEMU_URL");
if (!URL_) throw new Error("SFEMU_URL is not set: run tests/deno/run.mjs");
const CREDS = {
  consumerKey: "sfemu-consumer-key",
  consumerSecret: "sfemu-consumer-secret",
  username: "user@example.com",
  password: "password",
  loginUrl: URL_,
};

function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

interface Published {
  published: number;
  firstReplayId: number;
  lastReplayId: number;
}

async function control<T>(path: string, body: unknown = {}): Promise<T> {
  const res = await fetch(`${URL_}/_sfemu/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`control ${path}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

async function take(client: Client, n: number, timeout = 15000): Promise<Message[]> {
  const signal = AbortSignal.timeout(timeout);
  const out: Message[] = [];
  for (let i = 0; i < n; i++) out.push(await client.receive({ signal }));
  return out;
}

const replayIdOf = (m: Message) => (m.data as { event: { replayId: number } }).event.replayId;

function checkPublished(got: Message[], p: Published, what: string) {
  const ids = got.map(replayIdOf);
  assert(ids.length === p.published, `${what}: ${ids.length} of ${p.published}`);
  assert(new Set(ids).size === ids.length, `${what}: duplicates in ${ids}`);
  assert(ids.every((id, i) => i === 0 || id > ids[i - 1]), `${what}: order ${ids}`);
  assert(ids[0] === p.firstReplayId && ids.at(-1) === p.lastReplayId, `${what}: ${ids} vs ${p.firstReplayId}..${p.lastReplayId}`);
}

Deno.test("the deno entry point is the one resolved", () => {
  const resolved = import.meta.resolve("sfstream");
  assert(resolved.endsWith("/sfstream/dist/deno.js"), `resolved ${resolved}`);
});

Deno.test("open, subscribe, receive, close", async () => {
  const statuses: StatusEvent["type"][] = [];
  const client = new SalesforceStreamingClient({ ...CREDS, onStatus: (s) => statuses.push(s.type) });
  await client.open();
  assert(client.connectionType === "long-polling", "long-polling");
  await client.subscribe("/topic/DenoOne");
  const p = await control<Published>("publish", { channel: "/topic/DenoOne", count: 3 });
  const seen: Message[] = [];
  for await (const m of client) {
    seen.push(m);
    if (seen.length === 3) break;
  }
  checkPublished(seen, p, "live");
  await client.close();
  assert(client.closed, "closed");
  assert(statuses.includes("connected") && statuses.includes("closed"), `statuses ${statuses}`);
});

Deno.test("replay from a Map storage resumes with no loss", async () => {
  const ch = "/event/Deno_Resume__e";
  const store = new Map<string, unknown>();
  const c1 = new SalesforceStreamingClient({ ...CREDS, replay: store });
  await c1.open();
  await c1.subscribe(ch);
  const first = await control<Published>("publish", { channel: ch, count: 3 });
  checkPublished(await take(c1, 3), first, "first consumer");
  await c1.close();
  const marker = ReplayMarker.from(store.get(ch));
  assert(marker && marker.replayId === first.lastReplayId, `marker ${JSON.stringify(store.get(ch))}`);

  const missed = await control<Published>("publish", { channel: ch, count: 4 });
  const c2 = new SalesforceStreamingClient({ ...CREDS, replay: store });
  await c2.open();
  await c2.subscribe(ch);
  checkPublished(await take(c2, 4), missed, "second consumer");
  await c2.close();
  assert(ReplayMarker.from(store.get(ch))?.replayId === missed.lastReplayId, "marker advanced");
});

Deno.test("ALL_EVENTS with a minted token, await using, ServerError", async () => {
  const ch = "/topic/DenoAll";
  const p = await control<Published>("publish", { channel: ch, count: 2 });
  const grant = await control<{ access_token: string; instance_url: string }>("token", {});
  let outer: Client | undefined;
  {
    await using client = new Client(new AccessTokenAuthenticator({ accessToken: grant.access_token, instanceUrl: grant.instance_url }), {
      replay: ReplayOption.ALL_EVENTS,
    });
    outer = client;
    await client.open();
    await client.subscribe(ch);
    checkPublished(await take(client, 2), p, "replayed");
    let err: unknown = null;
    try {
      await client.subscribe("/nothing/here");
    } catch (e) {
      err = e;
    }
    assert(err instanceof ServerError && err.errorCode === 400, `ServerError, got ${err}`);
  }
  assert(outer?.closed === true, "await using closed the client");
});

Deno.test("a reply that declares more than 64 MiB is refused from its header; the client recovers", async () => {
  const url = Deno.env.get("BIG_REPLY_URL");
  assert(url, "BIG_REPLY_URL is set by run.mjs");
  const statuses: StatusEvent[] = [];
  // A long network allowance: a client that waited for the stalled body would time out only
  // after it, and miss the event below.
  await using client = new Client(new AccessTokenAuthenticator({ accessToken: "big-reply-token", instanceUrl: url }), {
    networkAllowance: 60000,
    onStatus: (s) => statuses.push(s),
  });
  await client.open();
  await client.subscribe("/topic/Big");
  const [m] = await take(client, 1, 10000);
  assert(replayIdOf(m) === 7, `the event after the refused reply, got ${JSON.stringify(m)}`);
  // A refused reply may have carried events: the client starts a new session that replays them.
  assert(statuses.some((s) => s.type === "rehandshake"), "the refused reply counted as a failed poll");
});

Deno.test("a long-poll or a publish whose connection is reset after the server took it is sent once", async () => {
  const url = Deno.env.get("LOSSY_URL");
  assert(url, "LOSSY_URL is set by run.mjs");
  const statuses: string[] = [];
  await using client = new Client(new AccessTokenAuthenticator({ accessToken: "lossy-token", instanceUrl: url }), {
    onStatus: (s) => statuses.push(s.type === "reconnecting" || s.type === "rehandshake" ? `${s.type}:${s.reason}` : s.type),
  });
  await client.open();
  await client.subscribe("/topic/Lossy");
  // The third long-poll is reset after the server took it: the client must see the failure and
  // start a new session (which replays what the lost reply may have carried), not have the
  // runtime send the long-poll again on the same session.
  const [m] = await take(client, 1, 10000);
  assert(replayIdOf(m) === 9, `the event of the new session, got ${JSON.stringify(m)}`);
  assert(statuses.includes("rehandshake:networkError"), `the lost long-poll was reported: ${statuses}`);
  // A publish reset the same way fails; the server made it once.
  const err = await client.publish("/u/Lossy", { n: 1 }).then(() => null, (e: unknown) => e);
  assert(err instanceof SfstreamError && err.name === "TransportError", `TransportError, got ${err}`);
  const seen = (await (await fetch(`${url}/seen`)).json()) as { again: string[]; publishes: number };
  assert(seen.again.length === 0, `Bayeux messages the server received twice: ${seen.again}`);
  assert(seen.publishes === 1, `the publish reached the server ${seen.publishes} times`);
});
