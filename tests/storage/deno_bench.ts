// Measurement (tests/storage/bench.mjs): consume N retained events with and without Deno KV.
import { DenoKvReplayStorage, ReplayOption, SalesforceStreamingClient } from "sfstream";

const BASE = Deno.env.get("SFEMU_URL")!;
const KV_PATH = Deno.env.get("KV_PATH")!;
const CH = Deno.env.get("CHANNEL")!;
const N = Number(Deno.env.get("EVENTS"));
const REPS = Number(Deno.env.get("REPS") ?? 3);
const CREDS = { consumerKey: "sfemu-consumer-key", consumerSecret: "sfemu-consumer-secret", username: "user@example.com", password: "password", loginUrl: BASE };

const kv = await Deno.openKv(KV_PATH);
const PACED = Deno.env.get("PACED") === "1";
let writes = 0;
let writeMs = 0;
const counting = {
  get: (k: readonly (string | number)[]) => kv.get(k as Deno.KvKey),
  set: async (k: readonly (string | number)[], v: unknown) => {
    writes++;
    const t = performance.now();
    try {
      return await kv.set(k as Deno.KvKey, v);
    } finally {
      writeMs += performance.now() - t;
    }
  },
};
const out: Record<string, { ms: number; writes: number; writeMs: number }[]> = { none: [], denoKv: [] };
for (let r = 0; r < REPS; r++) {
  for (const kind of ["none", "denoKv"] as const) {
    writes = 0;
    writeMs = 0;
    const replay = kind === "none" ? ReplayOption.ALL_EVENTS : new DenoKvReplayStorage(counting, { defaultReplay: ReplayOption.ALL_EVENTS, namespace: `bench${r}${PACED ? "p" : ""}` });
    const client = new SalesforceStreamingClient({ ...CREDS, replay });
    await client.open();
    const t0 = performance.now();
    await client.subscribe(CH);
    const signal = AbortSignal.timeout(120000);
    for (let i = 0; i < N; i++) {
      await client.receive({ signal });
      if (PACED && i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
    }
    await client.close();
    out[kind].push({ ms: performance.now() - t0, writes, writeMs });
  }
}
kv.close();
console.log(`RESULT ${JSON.stringify(out)}`);
