// A Cloudflare Worker that, on a cron trigger, drains the Salesforce events published since its
// last run into Workers KV, then returns. The run is bounded: it stops when no event arrives for
// IDLE_MS (the backlog is drained), after MAX_EVENTS events, or at the deadline, whichever comes
// first; it never waits for the next event forever.
//
// Replay markers live in the same KV namespace (`WorkersKvReplayStorage`, keys
// `marker:<orgId>/<userId>/<channel>`; it writes a key at most once a second, as KV allows), so each
// run resumes where the previous one stopped; the first run takes every event still retained
// (ALL_EVENTS).
// Events are stored under `event:<channel>:<replayId, zero-padded>`: a re-delivered event
// overwrites its own key, so at-least-once delivery never leaves duplicates.
import { Client, WorkersKvReplayStorage, PasswordAuthenticator, AccessTokenAuthenticator, ReplayOption } from "sfstream";

// MAX_EVENTS: one KV write per event, and Workers allow 1,000 KV operations per invocation (the
// markers' reads and writes count too): a run stops well below.
const DEFAULTS = { IDLE_MS: 2000, MAX_EVENTS: 500, DEADLINE_MS: 25000 };

function authenticator(env) {
  if (env.SF_ACCESS_TOKEN) return new AccessTokenAuthenticator({ accessToken: env.SF_ACCESS_TOKEN, instanceUrl: env.SF_INSTANCE_URL });
  return new PasswordAuthenticator({
    consumerKey: env.SF_CONSUMER_KEY,
    consumerSecret: env.SF_CONSUMER_SECRET,
    username: env.SF_USERNAME,
    password: env.SF_PASSWORD,
    loginUrl: env.SF_LOGIN_URL,
  });
}

const num = (v, d) => (v === undefined || v === "" ? d : Number(v));

/** One bounded drain. Returns what it stored. */
export async function drain(env) {
  const idleMs = num(env.IDLE_MS, DEFAULTS.IDLE_MS);
  const maxEvents = num(env.MAX_EVENTS, DEFAULTS.MAX_EVENTS);
  const deadline = AbortSignal.timeout(num(env.DEADLINE_MS, DEFAULTS.DEADLINE_MS));
  const channels = String(env.CHANNELS ?? "").split(",").map((c) => c.trim()).filter(Boolean);
  if (channels.length === 0) throw new Error("CHANNELS is empty");

  const client = new Client(authenticator(env), {
    replay: new WorkersKvReplayStorage(env.EVENTS, { prefix: "marker:", defaultReplay: ReplayOption.ALL_EVENTS }),
    // An event counts as consumed once it is in KV (acknowledge below): if storing it fails, the
    // next run gets it again.
    ackPolicy: "manual",
  });
  const stored = {};
  let count = 0;
  let reason = "maxEvents";
  try {
    await client.open();
    for (const ch of channels) await client.subscribe(ch);
    while (count < maxEvents) {
      const signal = AbortSignal.any([deadline, AbortSignal.timeout(idleMs)]);
      let message;
      try {
        message = await client.receive({ signal });
      } catch (e) {
        if (signal.aborted) {
          reason = deadline.aborted ? "deadline" : "idle";
          break;
        }
        throw e;
      }
      const replayId = message.data.event.replayId;
      await env.EVENTS.put(`event:${message.channel}:${String(replayId).padStart(12, "0")}`, JSON.stringify(message.data));
      client.acknowledge(message);
      stored[message.channel] = (stored[message.channel] ?? 0) + 1;
      count++;
    }
  } finally {
    // Closing stores the replay marker of every message acknowledged (into KV).
    await client.close();
  }
  return { count, stored, reason };
}

export default {
  async scheduled(controller, env, ctx) {
    const result = await drain(env);
    console.log(JSON.stringify({ cron: controller.cron, ...result }));
  },
  // GET /: what has been stored so far (a convenience for looking at the result).
  async fetch(request, env) {
    if (new URL(request.url).pathname !== "/") return new Response("not found", { status: 404 });
    // list() returns at most 1,000 keys a call: page through them.
    let events = 0;
    let cursor;
    do {
      const page = await env.EVENTS.list({ prefix: "event:", cursor });
      events += page.keys.length;
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor !== undefined);
    const markers = await env.EVENTS.list({ prefix: "marker:" });
    const out = { events, markers: {} };
    // Keyed `<orgId>/<userId>/<channel>`.
    for (const k of markers.keys) out.markers[k.name.slice("marker:".length)] = await env.EVENTS.get(k.name, "json");
    return Response.json(out);
  },
};
