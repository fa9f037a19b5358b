// The page must be served from the same origin as /cometd: Salesforce's streaming endpoint sends
// no CORS headers, so this runs in a page hosted by Salesforce (Visualforce, a Lightning app's
// static resource), behind a same-origin relay, or served by sfemu (`sfemu --www <this folder>`).
import { AccessTokenAuthenticator, Client, ReplayOption } from "sfstream";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
if (params.has("channels")) $("channels").value = params.get("channels");
if (params.get("replay") === "all") $("all").checked = true;

let client = null;
let stopper = null;

async function token() {
  if ($("token").value) return $("token").value;
  // Only the emulator has this: a local stand-in for a session id.
  const res = await fetch("/_sfemu/token", { method: "POST", body: "{}" });
  if (!res.ok) throw new Error("enter an access token");
  return (await res.json()).access_token;
}

function show(message) {
  const li = document.createElement("li");
  li.dataset.channel = message.channel;
  li.dataset.replayId = String(message.data?.event?.replayId ?? "");
  li.textContent = `${message.channel} #${li.dataset.replayId} ${JSON.stringify(message.data?.payload ?? message.data?.sobject ?? message.data)}`;
  $("events").prepend(li);
}

async function start() {
  $("start").disabled = true;
  const channels = $("channels").value.split(",").map((c) => c.trim()).filter(Boolean);
  client = new Client(new AccessTokenAuthenticator({ accessToken: await token(), instanceUrl: location.origin }), {
    replay: $("all").checked ? ReplayOption.ALL_EVENTS : ReplayOption.NEW_EVENTS,
    onStatus: (s) => ($("status").textContent = s.type),
  });
  stopper = new AbortController();
  await client.open();
  for (const ch of channels) await client.subscribe(ch);
  $("stop").disabled = false;
  document.body.dataset.state = "subscribed";
  for await (const message of client.messages({ signal: stopper.signal })) show(message);
}

async function stop() {
  stopper?.abort();
  await client?.close();
  $("stop").disabled = true;
  $("start").disabled = false;
  document.body.dataset.state = "closed";
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  start().catch((err) => {
    $("status").textContent = `${err.name}: ${err.message}`;
    document.body.dataset.state = "error";
    $("start").disabled = false;
  });
});
$("stop").addEventListener("click", () => void stop());
if (params.has("autostart")) $("start").click();
