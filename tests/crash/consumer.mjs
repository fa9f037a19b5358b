// A consumer process for the crash test (run.mjs kills it with SIGKILL at random points).
//   node consumer.mjs <dir> <sfemuUrl> <channel> [for-await|batches-manual]
// Replay markers live in <dir>/markers.json, written atomically (temp file, fsync, rename): a kill
// in the middle of a write leaves the previous file intact. Each event is "processed" by appending
// its replay id to <dir>/processed.log before asking for the next message (under the automatic
// policy that request is what lets the event's marker advance); some take 450 ms first. Every
// storage write is counted in <dir>/writes.log. `batches-manual`: `batches()` of at most 20 with
// `ackPolicy: "manual"` and a prefetch of 10, each batch acknowledged once all of it is logged.
import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { SalesforceStreamingClient, ReplayMarker, ReplayMarkerStorage, ReplayOption } from "sfstream";

const [dir, url, channel, mode = "for-await"] = process.argv.slice(2);
if (!dir || !url || !channel) {
  console.error("usage: node consumer.mjs <dir> <sfemuUrl> <channel>");
  process.exit(2);
}
/** Events whose replay id is a multiple of this are processed slowly, for SLOW_MS. */
const SLOW_EVERY = 41;
const SLOW_MS = 450;
const CREDENTIALS = { consumerKey: "sfemu-consumer-key", consumerSecret: "sfemu-consumer-secret", username: "user@example.com", password: "password" };

/** The application's file-backed storage: the whole map in one JSON file, replaced atomically. */
class FileStorage extends ReplayMarkerStorage {
  #file = join(dir, "markers.json");
  #read() {
    try {
      return JSON.parse(readFileSync(this.#file, "utf8"));
    } catch (e) {
      if (e.code === "ENOENT") return {};
      throw e; // a torn file would be a bug of this storage: let it show
    }
  }
  async getReplayMarker(subscription) {
    return ReplayMarker.from(this.#read()[subscription] ?? null);
  }
  async getReplayStart(subscription) {
    const m = await this.getReplayMarker(subscription);
    return m === null ? { replayId: ReplayOption.ALL_EVENTS, date: null } : { replayId: m.replayId, date: m.date };
  }
  async setReplayMarker(subscription, marker) {
    const all = this.#read();
    all[subscription] = marker.toJSON();
    const tmp = `${this.#file}.${process.pid}.tmp`;
    const fd = openSync(tmp, "w");
    try {
      writeSync(fd, JSON.stringify(all));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.#file);
    appendFileSync(join(dir, "writes.log"), `${marker.replayId}\n`);
  }
}

const client = new SalesforceStreamingClient({
  ...CREDENTIALS,
  loginUrl: url,
  replay: new FileStorage(),
  replayFallback: ReplayOption.ALL_EVENTS,
  connectionTimeout: null,
  ...(mode === "batches-manual" ? { ackPolicy: "manual", maxPendingCount: 10 } : {}),
  onStatus: (s) => {
    if (s.type === "storageError" || s.type === "replayFallback" || s.type === "failed") console.error(`status ${JSON.stringify(s)}`);
  },
});
await client.open();
await client.subscribe(channel);
console.log("subscribed");
const log = join(dir, "processed.log");
/** Process one event. */
async function processOne(m) {
  const id = m.data.event.replayId;
  // Some events take longer to process than the wrapper's periodic consumption report and a
  // marker flush together (~300 ms): a kill in the middle must bring them back, since the
  // application never finished them.
  if (id % SLOW_EVERY === 0) await new Promise((r) => setTimeout(r, SLOW_MS));
  appendFileSync(log, `${id}\n`);
}
if (mode === "batches-manual") {
  for await (const batch of client.batches({ maxSize: 20 })) {
    for (const m of batch) await processOne(m);
    client.acknowledge(batch[batch.length - 1]);
  }
} else {
  for await (const m of client) await processOne(m);
}
