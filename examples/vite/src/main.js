// Bundled by Vite: `sfstream` resolves through the package's "browser" export condition; Vite
// copies the .wasm the entry point references (new URL("./wasm/sfstream_bg.wasm", import.meta.url))
// into dist/assets. Serve the build from the origin of /cometd (no CORS on Salesforce's endpoint).
import { AccessTokenAuthenticator, Client, ReplayOption } from "sfstream";

const params = new URLSearchParams(location.search);
const channels = (params.get("channels") ?? "/topic/OpportunityUpdates").split(",");
const status = document.getElementById("status");

async function accessToken() {
  if (params.has("token")) return params.get("token");
  const res = await fetch("/_sfemu/token", { method: "POST", body: "{}" }); // sfemu only
  return (await res.json()).access_token;
}

async function main() {
  const client = new Client(new AccessTokenAuthenticator({ accessToken: await accessToken(), instanceUrl: location.origin }), {
    replay: params.get("replay") === "all" ? ReplayOption.ALL_EVENTS : ReplayOption.NEW_EVENTS,
    onStatus: (s) => (status.textContent = s.type),
  });
  await client.open();
  for (const ch of channels) await client.subscribe(ch);
  document.body.dataset.state = "subscribed";
  for await (const m of client) {
    const li = document.createElement("li");
    li.dataset.replayId = String(m.data?.event?.replayId ?? "");
    li.textContent = `${m.channel} #${li.dataset.replayId}`;
    document.getElementById("events").append(li);
  }
}

main().catch((e) => {
  status.textContent = `${e.name}: ${e.message}`;
  document.body.dataset.state = "error";
});
