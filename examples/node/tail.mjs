#!/usr/bin/env node
// Tail Salesforce streaming channels to stdout as NDJSON (one JSON object per event).
//
//   SF_CONSUMER_KEY=... SF_CONSUMER_SECRET=... SF_USERNAME=... SF_PASSWORD=... \
//     node tail.mjs [--login-url URL] [--replay new|all] [--storage markers.json] [--max N] CHANNEL...
//
// Credentials come from the environment (never from flags: flags end up in shell history and ps).
// --storage keeps the last replay marker of each channel in a JSON file, so the next run resumes
// where this one stopped (events published in between are replayed); channels without a stored
// marker start from --replay. --max stops after N events. Ctrl-C (SIGINT) or SIGTERM closes the
// client cleanly, which writes the markers of every event printed.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DefaultMappingStorage, ReplayOption, SalesforceStreamingClient } from "sfstream";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "login-url": { type: "string", default: process.env.SF_LOGIN_URL ?? "https://login.salesforce.com" },
    replay: { type: "string", default: "new" },
    storage: { type: "string" },
    max: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
const usage = "usage: node tail.mjs [--login-url URL] [--replay new|all] [--storage FILE] [--max N] CHANNEL...";
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const fail = (msg) => {
  console.error(`${msg}\n${usage}`);
  process.exit(2);
};
if (positionals.length === 0) fail("no channel given");
if (!["new", "all"].includes(values.replay)) fail("--replay must be new or all");
const max = values.max === undefined ? Infinity : Number(values.max);
if (!(max > 0)) fail("--max must be a positive number");
const env = (name) => process.env[name] || fail(`${name} is not set`);
const defaultReplay = values.replay === "all" ? ReplayOption.ALL_EVENTS : ReplayOption.NEW_EVENTS;

/** Replay markers in a JSON file `{ "<channel>": { "replayId": n, "date": "..." } }`, written atomically. */
function fileStorage(path) {
  let markers = {};
  try {
    markers = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    if (e.code !== "ENOENT") throw new Error(`cannot read ${path}: ${e.message}`);
  }
  return {
    get: (channel) => markers[channel],
    set: (channel, marker) => {
      markers[channel] = marker;
      writeFileSync(`${path}.tmp`, `${JSON.stringify(markers, null, 2)}\n`);
      renameSync(`${path}.tmp`, path);
    },
  };
}

const client = new SalesforceStreamingClient({
  consumerKey: env("SF_CONSUMER_KEY"),
  consumerSecret: env("SF_CONSUMER_SECRET"),
  username: env("SF_USERNAME"),
  password: env("SF_PASSWORD"),
  loginUrl: values["login-url"],
  replay: values.storage ? new DefaultMappingStorage(fileStorage(values.storage), defaultReplay) : defaultReplay,
  // An event counts as consumed once it is printed (acknowledge below), whether the loop then
  // goes on, stops at --max, or fails: a restart resumes right after the last event printed.
  ackPolicy: "manual",
  onStatus: (s) => {
    if (s.type === "reconnecting" || s.type === "rehandshake" || s.type === "failed") console.error(`[sfstream] ${s.type}${"reason" in s ? ` (${s.reason})` : ""}`);
  },
});

const stop = new AbortController();
for (const sig of ["SIGINT", "SIGTERM"]) process.once(sig, () => stop.abort());

let count = 0;
try {
  await client.open();
  for (const channel of positionals) await client.subscribe(channel);
  console.error(`[sfstream] tailing ${positionals.join(", ")}`);
  for await (const message of client.messages({ signal: stop.signal })) {
    process.stdout.write(`${JSON.stringify({ channel: message.channel, replayId: message.data?.event?.replayId ?? null, data: message.data })}\n`);
    client.acknowledge(message);
    if (++count >= max) break;
  }
} catch (e) {
  console.error(`[sfstream] ${e.name}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await client.close(); // stores the replay marker of every event printed (acknowledged)
}
