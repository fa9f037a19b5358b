// The sfstream live dashboard. Plain ESM, no framework, no CDN: the client is the real package
// (copied next to this page as vendor/sfstream/ by scripts/start.mjs and by the e2e test).
// The page talks to the Streaming API the way a deployed page talks to Salesforce: same origin
// (sfemu serves this page and /cometd), or through a relay on this machine. Never a CORS shortcut.
import {
  AccessTokenAuthenticator,
  Client,
  ClientInvalidOperation,
  DefaultMappingStorage,
  PasswordAuthenticator,
  ReplayOption,
} from "./vendor/sfstream/browser.js";
import { RateChart, COLORS, DASHES } from "./chart.js";
import { eventTimeOf, kindOf, replayIdOf, summarize } from "./events.js";
import { LocalStorageMap } from "./storage.js";

const $ = (sel) => /** @type {HTMLElement} */ (document.querySelector(sel));
const FEED_LIMIT = 100; // events kept in the DOM per channel
const WINDOW = 60; // seconds in the chart
const LATENCY_SAMPLES = 500;

/** Channels that `sfemu --demo` publishes on; the first four are subscribed by default. */
const DEMO_CHANNELS = ["/topic/OpportunityUpdates", "/topic/CaseUpdates", "/event/Order_Placed__e", "/data/ChangeEvents", "/data/AccountChangeEvent"];
const DEFAULT_SUBSCRIBED = new Set(DEMO_CHANNELS.slice(0, 4));

// ---------------------------------------------------------------- state

/**
 * @typedef {{
 *   name: string, kind: string, color: string, index: number,
 *   wanted: boolean, sub: "no" | "pending" | "yes" | "error", subError: string,
 *   received: number, lastReplayId: number | null, maxReplayId: number | null, outOfOrder: number,
 *   fromStart: boolean,
 *   lastLatency: number | null, latencies: number[],
 *   buckets: Int32Array, bucketSec: Int32Array,
 *   queue: import("./vendor/sfstream/index.js").Message[],
 *   marker: { replayId: number, date: string | null } | null,
 *   published: number | null, publishedAt: number,
 *   row: HTMLTableRowElement, cells: Record<string, HTMLElement>, button: HTMLButtonElement,
 *   list: HTMLOListElement, feed: HTMLElement,
 * }} Channel
 */

/** @type {Map<string, Channel>} */
const channels = new Map();
/** @type {Client | null} */
let client = null;
let replayMode = "all";
let sfemu = false;
let paused = false;
/** The client announced a full prefetch buffer (long-poll paused). */
let bufferPaused = false;
/** @type {AbortController | null} */
let pauseCtl = null;
/** @type {(() => void) | null} */
let resume = null;
const allLatencies = [];
let totalReceived = 0;
const storageMap = new LocalStorageMap((key, value) => {
  const ch = channels.get(key);
  if (ch && value && typeof value === "object") ch.marker = /** @type {{replayId:number,date:string|null}} */ (value);
});

// ---------------------------------------------------------------- channels table and feeds

function addChannel(name, wanted) {
  let ch = channels.get(name);
  if (ch) {
    if (wanted) ch.wanted = true;
    return ch;
  }
  const index = channels.size;
  const color = COLORS[index % COLORS.length];
  const row = document.createElement("tr");
  row.dataset.channel = name;
  const cells = {};
  for (const key of ["name", "kind", "sub", "received", "published", "rate", "latency", "order", "replay", "marker"]) {
    const td = document.createElement(key === "name" ? "th" : "td");
    if (key === "name") td.scope = "row";
    td.className = key;
    if (["received", "published", "rate"].includes(key)) td.classList.add("num");
    row.append(td);
    cells[key] = td;
  }
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = color;
  swatch.setAttribute("aria-hidden", "true");
  cells.name.append(swatch, document.createTextNode(name));
  cells.kind.textContent = kindOf(name);
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary";
  button.addEventListener("click", () => toggleSubscription(name));
  const subText = document.createElement("span");
  subText.className = "sub-state";
  cells.sub.append(subText, document.createTextNode(" "), button);
  $("#channels tbody").append(row);

  const feed = document.createElement("section");
  feed.className = "feed";
  feed.dataset.channel = name;
  const h = document.createElement("h3");
  h.id = `feed-h-${index}`;
  h.textContent = `${name} (${kindOf(name)})`;
  feed.setAttribute("aria-labelledby", h.id);
  const list = document.createElement("ol");
  list.setAttribute("aria-label", `Events on ${name}, newest first`);
  const empty = document.createElement("li");
  empty.className = "empty";
  empty.textContent = "No events yet.";
  list.append(empty);
  feed.append(h, list);
  $("#feed-columns").append(feed);

  ch = {
    name, kind: kindOf(name), color, index, wanted, sub: "no", subError: "",
    received: 0, lastReplayId: null, maxReplayId: null, outOfOrder: 0, fromStart: false, lastLatency: null, latencies: [],
    buckets: new Int32Array(WINDOW + 1), bucketSec: new Int32Array(WINDOW + 1).fill(-1),
    queue: [], marker: null, published: null, publishedAt: 0, row, cells, button, list, feed,
  };
  channels.set(name, ch);
  renderLegend();
  renderRow(ch);
  return ch;
}

function renderRow(ch) {
  const subLabel = { no: "not subscribed", pending: "subscribing…", yes: "subscribed", error: `failed: ${ch.subError}` }[ch.sub];
  const subText = ch.cells.sub.querySelector(".sub-state");
  if (subText) subText.textContent = subLabel;
  ch.row.dataset.sub = ch.sub;
  ch.feed.hidden = !(ch.wanted || ch.received > 0);
  ch.button.textContent = ch.wanted ? "Unsubscribe" : "Subscribe";
  ch.button.setAttribute("aria-label", `${ch.wanted ? "Unsubscribe from" : "Subscribe to"} ${ch.name}`);
  ch.cells.received.textContent = String(ch.received);
  if (ch.published === null) {
    ch.cells.published.textContent = "–";
    ch.cells.published.className = "published num";
  } else {
    ch.cells.published.textContent = String(ch.published);
    // Shown = Published holds when every event was asked for: replay all, or resume on a channel
    // that had no marker yet (the default is then all retained events). After resuming from a
    // marker the page shows only what came after it, so there is nothing to compare.
    // The sfemu figure is polled once a second: a difference only counts once it has lasted.
    const comparable = ch.wanted && ch.fromStart;
    const settled = Date.now() - ch.publishedAt > 3000;
    const cls = !comparable ? "" : ch.published === ch.received ? "match" : settled ? "mismatch" : "";
    ch.cells.published.className = `published num ${cls}`;
  }
  ch.cells.rate.textContent = String(rateOf(ch));
  ch.cells.latency.textContent = ch.lastLatency === null ? "–" : `${fmtMs(ch.lastLatency)} / ${fmtMs(percentile(ch.latencies, 0.5))}`;
  ch.cells.order.textContent = String(ch.outOfOrder);
  ch.cells.replay.textContent = ch.lastReplayId === null ? "–" : String(ch.lastReplayId);
  ch.cells.marker.textContent = markerText(ch);
  ch.cells.marker.title = replayMode === "resume" ? `localStorage key "${storageMap.keyOf(ch.name)}"` : "";
}

function markerText(ch) {
  if (replayMode === "resume") {
    const stored = storageMap.get(ch.name);
    const id = stored && typeof stored === "object" && typeof stored.replayId === "number" ? stored.replayId : null;
    return `${id === null ? "none yet" : id} (localStorage)`;
  }
  return replayMode === "all" ? "not stored (replay -2)" : "not stored (replay -1)";
}

function renderLegend() {
  const ul = $("#legend");
  ul.replaceChildren();
  const SVG = "http://www.w3.org/2000/svg";
  for (const ch of channels.values()) {
    const li = document.createElement("li");
    // The chart's own line: its colour and its dash pattern.
    const sw = document.createElementNS(SVG, "svg");
    sw.setAttribute("class", "legend-line");
    sw.setAttribute("width", "28");
    sw.setAttribute("height", "8");
    sw.setAttribute("aria-hidden", "true");
    const line = document.createElementNS(SVG, "line");
    for (const [k, v] of Object.entries({ x1: "0", y1: "4", x2: "28", y2: "4", stroke: ch.color, "stroke-width": "2" })) line.setAttribute(k, v);
    const dash = DASHES[ch.index % DASHES.length];
    if (dash.length > 0) line.setAttribute("stroke-dasharray", dash.join(" "));
    sw.append(line);
    li.append(sw, document.createTextNode(` ${ch.name}`));
    ul.append(li);
  }
}

// ---------------------------------------------------------------- messages

const nowSec = () => Math.floor(Date.now() / 1000);

function onMessage(m) {
  const ch = channels.get(m.channel) ?? addChannel(m.channel, false);
  ch.received++;
  totalReceived++;
  const id = replayIdOf(m);
  if (id !== null) {
    // A duplicate: a replay id not above the highest shown (each event of a replayed run counts).
    if (ch.maxReplayId !== null && id <= ch.maxReplayId) ch.outOfOrder++;
    else ch.maxReplayId = id;
    ch.lastReplayId = id;
  }
  const s = nowSec();
  const slot = s % ch.buckets.length;
  if (ch.bucketSec[slot] !== s) {
    ch.bucketSec[slot] = s;
    ch.buckets[slot] = 0;
  }
  ch.buckets[slot]++;
  ch.queue.push(m);
  if (ch.queue.length > FEED_LIMIT) ch.queue.splice(0, ch.queue.length - FEED_LIMIT);
  if (!flushScheduled) {
    flushScheduled = true;
    setTimeout(flushFeeds, 16);
  }
}
let flushScheduled = false;

function countAt(ch, sec) {
  const slot = sec % ch.buckets.length;
  return ch.bucketSec[slot] === sec ? ch.buckets[slot] : 0;
}
/** Events in the last complete second. */
const rateOf = (ch) => countAt(ch, nowSec() - 1);

function percentile(xs, p) {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}
const fmtMs = (ms) => (ms >= 10000 ? `${(ms / 1000).toFixed(0)} s` : `${Math.round(ms)} ms`);
const clock = (t = Date.now()) => new Date(t).toLocaleTimeString([], { hour12: false });

/** Flush queued messages into the feeds; latency is measured here, when the event is shown. */
function flushFeeds() {
  flushScheduled = false;
  for (const ch of channels.values()) {
    if (ch.queue.length === 0) continue;
    const batch = ch.queue.splice(0);
    const shownAt = Date.now();
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) {
      const m = batch[i];
      const t = eventTimeOf(m);
      if (t !== null) {
        const lat = Math.max(0, shownAt - t);
        ch.lastLatency = lat;
        ch.latencies.push(lat);
        allLatencies.push(lat);
      }
      frag.append(feedItem(m, t));
    }
    if (ch.latencies.length > LATENCY_SAMPLES) ch.latencies.splice(0, ch.latencies.length - LATENCY_SAMPLES);
    ch.list.querySelector(".empty")?.remove();
    ch.list.prepend(frag);
    while (ch.list.children.length > FEED_LIMIT) ch.list.lastElementChild?.remove();
  }
  if (allLatencies.length > LATENCY_SAMPLES) allLatencies.splice(0, allLatencies.length - LATENCY_SAMPLES);
}

function feedItem(m, t) {
  const li = document.createElement("li");
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  const rid = document.createElement("span");
  rid.className = "rid";
  const id = replayIdOf(m);
  rid.textContent = id === null ? "" : `#${id}`;
  const when = document.createElement("time");
  when.textContent = clock(t ?? Date.now());
  if (t !== null) when.dateTime = new Date(t).toISOString();
  const what = document.createElement("span");
  what.className = "what";
  what.textContent = summarize(m);
  summary.append(rid, when, what);
  details.append(summary);
  // The JSON is rendered only when opened: cheap for thousands of events.
  details.addEventListener("toggle", () => {
    if (details.open && !details.querySelector("pre")) {
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify(m, null, 2);
      details.append(pre);
    }
  });
  li.append(details);
  return li;
}

function render() {
  flushFeeds();
  let rate = 0;
  for (const ch of channels.values()) {
    renderRow(ch);
    rate += rateOf(ch);
  }
  $("#total-received").textContent = String(totalReceived);
  $("#total-rate").textContent = String(rate);
  $("#total-latency").textContent = allLatencies.length ? `${fmtMs(percentile(allLatencies, 0.5))} / ${fmtMs(Math.max(...allLatencies))}` : "–";
  if (client) {
    const pending = client.pendingCount;
    $("#pending").textContent = String(pending);
    /** @type {HTMLMeterElement} */ ($("#pending-meter")).value = pending;
    const st = client.stats;
    $("#stat-handshakes").textContent = String(st.handshakes);
    $("#stat-reconnects").textContent = String(st.reconnects);
    $("#stat-rehandshakes").textContent = String(st.rehandshakes);
    $("#stat-reauth").textContent = String(st.reauthentications);
  }
}

function drawChart(chart) {
  const now = nowSec();
  const series = [...channels.values()].map((ch) => {
    const values = [];
    for (let s = now - WINDOW; s < now; s++) values.push(countAt(ch, s));
    return { color: ch.color, dash: ch.index, values };
  });
  chart.draw(series);
}

// ---------------------------------------------------------------- timeline

function timeline(type, text) {
  const li = document.createElement("li");
  li.dataset.type = type;
  const t = document.createElement("time");
  t.dateTime = new Date().toISOString();
  t.textContent = clock();
  const k = document.createElement("span");
  k.className = "kind";
  k.textContent = type;
  const d = document.createElement("span");
  d.className = "detail";
  d.textContent = text;
  li.append(t, k, d);
  const ol = $("#timeline");
  ol.prepend(li);
  while (ol.children.length > 300) ol.lastElementChild?.remove();
}

function setState(state, detail = "") {
  const el = $("#conn-state");
  el.dataset.state = state;
  el.textContent = state;
  $("#conn-detail").textContent = detail;
}

/** @param {import("./vendor/sfstream/index.js").StatusEvent} s */
function onStatus(s) {
  switch (s.type) {
    case "connecting":
      setState("connecting");
      timeline(s.type, "authenticating and handshaking");
      break;
    case "connected": {
      // After a bufferFull pause the client reports "connected" once it polls again.
      const resumed = bufferPaused;
      bufferPaused = false;
      setState("connected", resumed ? "buffer drained" : `handshakes ${s.stats.handshakes}, reconnects ${s.stats.reconnects}`);
      timeline(s.type, resumed ? "the prefetch buffer has room again: long-polling resumes" : `long-polling (handshakes ${s.stats.handshakes}, re-handshakes ${s.stats.rehandshakes}, re-auths ${s.stats.reauthentications}, reconnects ${s.stats.reconnects})`);
      break;
    }
    case "reconnecting":
      if (s.reason === "bufferFull") {
        // Not a lost connection: the client stops long-polling while its prefetch buffer is full,
        // and starts again once the page has taken messages, reporting "connected" then.
        bufferPaused = true;
        setState("paused", "prefetch buffer full");
        timeline(s.type, "bufferFull: the prefetch buffer is full, long-polling pauses until the page catches up");
        break;
      }
      if (s.reason === "multipleClients") {
        // Another tab of this browser shares its Bayeux session: the server answers its
        // long-polls at once and advises polling every few seconds. Events keep arriving.
        setState("connected", "another tab shares this browser's session: polling");
        timeline(s.type, `multipleClients: another tab holds the long-poll; polling every ${s.delay} ms`);
        break;
      }
      setState("reconnecting", `${s.reason}, attempt ${s.attempt}`);
      timeline(s.type, `${s.reason}: attempt ${s.attempt} in ${s.delay} ms`);
      break;
    case "rehandshake":
      setState("reconnecting", `re-handshake (${s.reason})`);
      timeline(s.type, `new handshake (${s.reason}); resubscribing from the last replay ids`);
      break;
    case "reauthenticated":
      timeline(s.type, "the authenticator issued a fresh access token");
      break;
    case "replayFallback":
      timeline(s.type, `${s.channel}: replay id ${s.replayId} not usable (${s.reason}); fell back to ${s.fallback}`);
      break;
    case "storageError":
      timeline(s.type, `${s.channel}: ${s.message}`);
      break;
    case "failed":
      setState("failed", s.error.message);
      timeline(s.type, `${s.error.name}: ${s.error.message}`);
      break;
    case "closed":
      setState("disconnected");
      timeline(s.type, "disconnected");
      break;
  }
}

// ---------------------------------------------------------------- connect, consume, subscribe

function formValues() {
  const f = /** @type {HTMLFormElement} */ ($("#connect-form"));
  const data = new FormData(f);
  return Object.fromEntries([...data.entries()].map(([k, v]) => [k, String(v)]));
}

function makeAuthenticator(v) {
  if (v.mode === "token") {
    // An access token you already have (e.g. from `sf org display`); the CometD requests go to
    // the instance URL, which must be this page's origin or a relay (Salesforce sends no CORS).
    return new AccessTokenAuthenticator({ accessToken: v.accessToken, instanceUrl: v.instanceUrl.replace(/\/+$/, "") }, { apiVersion: v.apiVersion });
  }
  return new PasswordAuthenticator({
    consumerKey: v.consumerKey,
    consumerSecret: v.consumerSecret,
    username: v.username,
    password: v.password,
    loginUrl: v.loginUrl.replace(/\/+$/, ""),
    apiVersion: v.apiVersion,
  });
}

async function connect() {
  $("#connect-error").textContent = "";
  const v = formValues();
  replayMode = v.replay;
  // Resume: from each channel's stored marker; a channel without one (or with corrupt data, which
  // the client reports) starts from all retained events, so nothing published meanwhile is missed.
  const replay = replayMode === "resume" ? new DefaultMappingStorage(storageMap, ReplayOption.ALL_EVENTS) : replayMode === "all" ? ReplayOption.ALL_EVENTS : ReplayOption.NEW_EVENTS;
  const maxPending = Number(v.maxPending) || 100;
  /** @type {Client} */
  let c;
  try {
    c = new Client(makeAuthenticator(v), {
      replay,
      // A stored marker the server no longer accepts (retention, or a fresh sfemu): replay what is retained.
      replayFallback: ReplayOption.ALL_EVENTS,
      // A dashboard never gives up: it keeps retrying through any outage and shows why.
      connectionTimeout: null,
      maxPendingCount: maxPending,
      onStatus,
    });
  } catch (e) {
    $("#connect-error").textContent = e instanceof Error ? e.message : String(e);
    return;
  }
  client = c;
  $("#pending-max").textContent = String(maxPending);
  bufferPaused = false;
  /** @type {HTMLMeterElement} */ ($("#pending-meter")).max = maxPending;
  setConnectedUi(true);
  try {
    await c.open();
  } catch (e) {
    if (client === c) {
      client = null;
      setConnectedUi(false);
    }
    setState("failed", e instanceof Error ? e.message : String(e));
    timeline("failed", `could not connect: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    $("#connect-error").textContent = `Could not connect: ${e instanceof Error ? e.message : String(e)}`;
    return;
  }
  for (const ch of channels.values()) {
    ch.marker = null;
    if (ch.wanted) void subscribe(c, ch);
  }
  void pump(c);
}

async function disconnect() {
  const c = client;
  if (!c) return;
  client = null;
  resume?.();
  pauseCtl?.abort();
  try {
    await c.close();
  } catch (e) {
    timeline("failed", `close: ${e instanceof Error ? e.message : String(e)}`);
  }
  for (const ch of channels.values()) if (ch.sub !== "no") ch.sub = "no";
  setConnectedUi(false);
  render();
}

function setConnectedUi(on) {
  /** @type {HTMLButtonElement} */ ($("#connect")).disabled = on;
  /** @type {HTMLButtonElement} */ ($("#disconnect")).disabled = !on;
  for (const el of document.querySelectorAll("#connect-form input, #connect-form select")) {
    if (/** @type {HTMLInputElement} */ (el).id !== "pause") /** @type {HTMLInputElement} */ (el).disabled = on;
  }
}

/** Hand every message to the page as soon as the client has it, unless paused. */
async function pump(c) {
  while (client === c) {
    if (paused) {
      await new Promise((r) => (resume = () => r(undefined)));
      continue;
    }
    pauseCtl = new AbortController();
    let m;
    try {
      m = await c.receive({ signal: pauseCtl.signal });
    } catch (e) {
      if (pauseCtl.signal.aborted) continue; // paused (or disconnecting): nothing is lost
      if (e instanceof ClientInvalidOperation) break; // closed
      setState("failed", e instanceof Error ? e.message : String(e));
      timeline("failed", `${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      break;
    }
    onMessage(m);
  }
}

async function subscribe(c, ch) {
  ch.sub = "pending";
  if (replayMode === "all") {
    // Every retained event comes again: count this channel afresh, so Shown = Published holds.
    resetCounts(ch);
    ch.fromStart = true;
  } else if (replayMode === "resume") {
    const stored = storageMap.get(ch.name);
    // No usable marker: the storage's default (all retained events) applies.
    if (!(stored !== null && typeof stored === "object" && typeof stored.replayId === "number" && stored.replayId > 0)) {
      resetCounts(ch);
      ch.fromStart = true;
    }
  } else {
    ch.fromStart = false;
  }
  renderRow(ch);
  try {
    await c.subscribe(ch.name);
    if (client === c && ch.wanted) ch.sub = "yes";
  } catch (e) {
    ch.sub = "error";
    ch.subError = e instanceof Error ? e.message : String(e);
    timeline("failed", `subscribe ${ch.name}: ${ch.subError}`);
  }
  renderRow(ch);
}

/** Forget what the page counted and showed for `ch` (a subscription that replays it all again). */
function resetCounts(ch) {
  ch.received = 0;
  ch.outOfOrder = 0;
  ch.lastReplayId = null;
  ch.maxReplayId = null;
  ch.queue.length = 0;
  const empty = document.createElement("li");
  empty.className = "empty";
  empty.textContent = "No events yet.";
  ch.list.replaceChildren(empty);
}

async function toggleSubscription(name) {
  const ch = channels.get(name);
  if (!ch) return;
  ch.wanted = !ch.wanted;
  renderRow(ch);
  if (!client) return;
  if (ch.wanted) {
    await subscribe(client, ch);
  } else {
    try {
      await client.unsubscribe(ch.name);
      ch.sub = "no";
    } catch (e) {
      ch.sub = "error";
      ch.subError = e instanceof Error ? e.message : String(e);
    }
    renderRow(ch);
  }
}

// ---------------------------------------------------------------- sfemu: faults, publishing, stats

const FAULTS = {
  "drop-connections": { body: {}, label: "drop every connection (sessions survive)" },
  "expire-sessions": { body: {}, label: "expire every session (403::Unknown client)" },
  "revoke-tokens": { body: {}, label: "revoke every access token (401::Authentication invalid)" },
  restart: { body: {}, label: "restart: sessions lost, connections dropped, events kept" },
  fail: { body: { status: 503, count: 5 }, label: "the next 5 CometD requests answer HTTP 503" },
  disconnect: { body: {}, label: "server-initiated /meta/disconnect" },
  "cut-responses": { body: { count: 1 }, label: "the next reply with events is cut on its way (the session loses those events)" },
};

async function control(path, body) {
  const res = await fetch(`/_sfemu/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    // sfemu says what was wrong in {"error": "..."}.
    const why = await res.json().then((b) => (b && typeof b.error === "string" ? `: ${b.error}` : ""), () => "");
    throw new Error(`/_sfemu/${path}: HTTP ${res.status}${why}`);
  }
  return res.json();
}

async function injectFault(name) {
  const f = FAULTS[name];
  timeline("fault", f.label);
  $("#fault-result").textContent = "";
  try {
    const r = await control(name, f.body);
    $("#fault-result").textContent = `${name}: ${JSON.stringify(r)}`;
  } catch (e) {
    $("#fault-result").textContent = `${name} failed: ${e instanceof Error ? e.message : String(e)}`;
  }
}

async function publishBurst() {
  const input = /** @type {HTMLInputElement} */ ($("#burst-size"));
  const n = Number(input.value);
  if (!input.validity.valid || input.value === "" || !Number.isInteger(n)) {
    $("#fault-result").textContent = `Events per subscribed channel: a whole number from ${input.min} to ${input.max}`;
    input.focus();
    return;
  }
  // Channels whose subscription failed get nothing: their events could not be shown.
  const targets = [...channels.values()].filter((ch) => ch.wanted && ch.sub !== "error");
  const done = [];
  const failed = [];
  for (const ch of targets) {
    // A CDC subscription on /data/ChangeEvents gets its events from an entity channel.
    const channel = ch.name === "/data/ChangeEvents" ? "/data/AccountChangeEvent" : ch.name;
    try {
      const r = await control("publish", { channel, count: n });
      done.push(`${r.published} on ${channel}`);
    } catch (e) {
      failed.push(`${channel}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const parts = [done.length > 0 ? `published ${done.join(", ")}` : targets.length === 0 ? "no subscribed channel to publish on" : "published nothing"];
  if (failed.length > 0) parts.push(`failed: ${failed.join("; ")}`);
  $("#fault-result").textContent = parts.join("; ");
}

async function pollSfemu() {
  try {
    const st = await control("stats");
    for (const [name, info] of Object.entries(st.channels ?? {})) {
      const ch = channels.get(name);
      if (!ch) continue;
      const published = typeof info.published === "number" ? info.published : null;
      if (published !== ch.published) ch.publishedAt = Date.now();
      ch.published = published;
    }
  } catch {
    // sfemu restarting or gone: keep the last numbers
  }
}

async function detectSfemu() {
  try {
    const res = await fetch("/_sfemu/stats");
    if (!res.ok) return false;
    const st = await res.json();
    return st !== null && typeof st === "object" && "channels" in st;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- wiring

async function main() {
  /** @type {HTMLInputElement} */ ($("#login-url")).value = location.origin;
  /** @type {HTMLInputElement} */ ($("#instance-url")).value = location.origin;
  for (const name of DEMO_CHANNELS) addChannel(name, DEFAULT_SUBSCRIBED.has(name));

  for (const r of document.querySelectorAll('input[name="mode"]')) {
    r.addEventListener("change", () => {
      const token = formValues().mode === "token";
      $("#password-fields").hidden = token;
      $("#token-fields").hidden = !token;
      /** @type {HTMLInputElement} */ ($("#access-token")).required = token;
      /** @type {HTMLInputElement} */ ($("#instance-url")).required = token;
      for (const el of document.querySelectorAll("#password-fields input")) /** @type {HTMLInputElement} */ (el).required = !token;
    });
  }
  $("#connect-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void connect();
  });
  $("#disconnect").addEventListener("click", () => void disconnect());
  $("#pause").addEventListener("change", (e) => {
    paused = /** @type {HTMLInputElement} */ (e.target).checked;
    timeline(paused ? "paused" : "resumed", paused ? "the page stopped consuming: the client prefetches up to the buffer size, then stops polling" : "consuming again");
    if (paused) pauseCtl?.abort();
    else resume?.();
  });
  $("#add-channel").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($("#new-channel"));
    const name = input.value.trim();
    if (!name.startsWith("/")) return;
    const existing = channels.get(name);
    if (existing && existing.wanted) {
      $("#fault-result").textContent = `${name} is already subscribed`;
      return;
    }
    const ch = addChannel(name, false);
    input.value = "";
    void toggleSubscription(ch.name);
  });
  for (const b of document.querySelectorAll("[data-fault]")) {
    b.addEventListener("click", () => void injectFault(/** @type {HTMLElement} */ (b).dataset.fault ?? ""));
  }
  $("#burst").addEventListener("click", () => void publishBurst().catch((e) => ($("#fault-result").textContent = String(e))));

  const chart = new RateChart(/** @type {HTMLCanvasElement} */ ($("#chart")), WINDOW);
  setInterval(render, 250);
  setInterval(() => drawChart(chart), 1000);
  drawChart(chart);

  sfemu = await detectSfemu();
  document.body.dataset.sfemu = String(sfemu);
  if (sfemu) {
    $("#faults-note").textContent = "This page is served by sfemu: inject a fault and watch the client recover in the timeline, without losing an event (Shown = Published).";
    for (const b of document.querySelectorAll("[data-fault], #burst")) /** @type {HTMLButtonElement} */ (b).disabled = false;
    setInterval(() => void pollSfemu(), 1000);
    void pollSfemu();
  } else {
    $("#faults-note").textContent = "Not served by sfemu: fault injection is only available against the emulator.";
  }
  const params = new URLSearchParams(location.search);
  if (params.get("mode") === "token") {
    const radio = /** @type {HTMLInputElement} */ ($('input[name="mode"][value="token"]'));
    radio.checked = true;
    radio.dispatchEvent(new Event("change"));
  }
  const r = params.get("replay");
  if (r === "new" || r === "all" || r === "resume") /** @type {HTMLSelectElement} */ ($("#replay")).value = r;
  document.body.dataset.ready = "true";
  if (sfemu && params.get("connect") !== "manual") await connect();
}

void main();
