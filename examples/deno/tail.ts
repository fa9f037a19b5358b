// Tail Salesforce streaming channels in Deno, keeping replay markers in Deno KV so that the next
// run resumes after the last event printed. NDJSON on stdout, status on stderr.
//
//   deno run --allow-net --allow-env --allow-read --allow-write --unstable-kv tail.ts \
//     [--login-url URL] [--kv PATH] [--replay new|all] [--max N] CHANNEL...
//
// Credentials: SF_CONSUMER_KEY, SF_CONSUMER_SECRET, SF_USERNAME, SF_PASSWORD (environment only).
import { DenoKvReplayStorage, ReplayOption, SalesforceStreamingClient } from "sfstream";

const usage = "usage: deno run -A --unstable-kv tail.ts [--login-url URL] [--kv PATH] [--replay new|all] [--max N] CHANNEL...";
function fail(msg: string): never {
  console.error(`${msg}\n${usage}`);
  Deno.exit(2);
}

const values: Record<"login-url" | "kv" | "replay" | "max", string | undefined> = {
  "login-url": Deno.env.get("SF_LOGIN_URL") ?? "https://login.salesforce.com",
  kv: "markers.kv",
  replay: "new",
  max: undefined,
};
const positionals: string[] = [];
for (let i = 0; i < Deno.args.length; i++) {
  const arg = Deno.args[i];
  const flag = arg.startsWith("--") ? arg.slice(2).split("=")[0] : null;
  if (flag === null) {
    positionals.push(arg);
  } else if (flag in values) {
    values[flag as keyof typeof values] = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : Deno.args[++i] ?? fail(`--${flag} needs a value`);
  } else {
    fail(`unknown flag ${arg}`);
  }
}
if (positionals.length === 0) fail("no channel given");
if (values.replay !== "new" && values.replay !== "all") fail("--replay must be new or all");
const max = values.max === undefined ? Infinity : Number(values.max);
if (!(max > 0)) fail("--max must be a positive number");
const env = (name: string): string => Deno.env.get(name) || fail(`${name} is not set`);

const kv = await Deno.openKv(values.kv);
const client = new SalesforceStreamingClient({
  consumerKey: env("SF_CONSUMER_KEY"),
  consumerSecret: env("SF_CONSUMER_SECRET"),
  username: env("SF_USERNAME"),
  password: env("SF_PASSWORD"),
  loginUrl: values["login-url"],
  // Markers under ["sfstream", orgId, userId, channel]; channels without one start from --replay.
  replay: new DenoKvReplayStorage(kv, { defaultReplay: values.replay === "all" ? ReplayOption.ALL_EVENTS : ReplayOption.NEW_EVENTS }),
  // An event counts as consumed once it is printed (acknowledge below), whether the loop then
  // goes on, stops at --max, or fails: a restart resumes right after the last event printed.
  ackPolicy: "manual",
});

const stop = new AbortController();
for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => stop.abort());

const out = new TextEncoder();
let count = 0;
try {
  await client.open();
  for (const channel of positionals) await client.subscribe(channel);
  console.error(`[sfstream] tailing ${positionals.join(", ")}`);
  for await (const message of client.messages({ signal: stop.signal })) {
    const data = message.data as { event?: { replayId?: number } };
    await Deno.stdout.write(out.encode(`${JSON.stringify({ channel: message.channel, replayId: data.event?.replayId ?? null, data })}\n`));
    client.acknowledge(message);
    if (++count >= max) break;
  }
} catch (e) {
  console.error(`[sfstream] ${e instanceof Error ? `${e.name}: ${e.message}` : e}`);
  Deno.exitCode = 1;
} finally {
  await client.close(); // writes the marker of every event printed (acknowledged)
  kv.close();
}
Deno.exit(Deno.exitCode);
