// What the dashboard reads out of a Streaming API message: its kind, replay id, event time and a
// one-line summary. Shapes: PushTopic {event:{createdDate,replayId,type}, sobject}, platform event
// {schema, payload:{CreatedDate,...}, event:{replayId}}, CDC {payload:{ChangeEventHeader:{commitTimestamp,...}}},
// generic /u/ {event:{createdDate,replayId}, payload:"string"}.

/** @param {string} channel */
export function kindOf(channel) {
  if (channel.startsWith("/topic/")) return "PushTopic";
  if (channel.startsWith("/event/")) return "Platform event";
  if (channel.startsWith("/data/")) return "Change Data Capture";
  if (channel.startsWith("/u/")) return "Generic";
  return "Other";
}

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** The replay id of a message, or null. */
export function replayIdOf(message) {
  const id = isObj(message.data) && isObj(message.data.event) ? message.data.event.replayId : undefined;
  return typeof id === "number" && Number.isSafeInteger(id) ? id : null;
}

/** When the event was created at the source, epoch ms, or null when the message carries no time. */
export function eventTimeOf(message) {
  const d = isObj(message.data) ? message.data : null;
  if (!d) return null;
  const header = isObj(d.payload) && isObj(d.payload.ChangeEventHeader) ? d.payload.ChangeEventHeader : null;
  if (header && typeof header.commitTimestamp === "number") return header.commitTimestamp;
  const candidates = [isObj(d.event) ? d.event.createdDate : undefined, isObj(d.payload) ? d.payload.CreatedDate : undefined];
  for (const c of candidates) {
    if (typeof c === "string") {
      const t = Date.parse(c);
      if (!Number.isNaN(t)) return t;
    }
  }
  return null;
}

function fields(o, skip, n) {
  const out = [];
  for (const [k, v] of Object.entries(o)) {
    if (skip.has(k) || v === null || typeof v === "object") continue;
    out.push(`${k.replace(/__c$/, "")}: ${v}`);
    if (out.length === n) break;
  }
  return out.join(" · ");
}

const SKIP_SOBJECT = new Set(["Id"]);
const SKIP_EVENT = new Set(["CreatedDate", "CreatedById"]);
const SKIP_CDC = new Set(["ChangeEventHeader", "LastModifiedDate"]);

const join = (head, tail) => (tail ? `${head} — ${tail}` : head);

/** A short human summary of a message. */
export function summarize(message) {
  const d = isObj(message.data) ? message.data : {};
  if (isObj(d.sobject)) {
    const type = isObj(d.event) && typeof d.event.type === "string" ? d.event.type : "event";
    const s = d.sobject;
    const name = s.Name ?? s.Subject ?? s.Id ?? "";
    return join(`${type} ${name}`, fields(s, new Set(["Id", "Name", "Subject"]), 3));
  }
  if (isObj(d.payload) && isObj(d.payload.ChangeEventHeader)) {
    const h = d.payload.ChangeEventHeader;
    const ids = Array.isArray(h.recordIds) ? h.recordIds.join(",") : "";
    return join(`${h.changeType ?? "?"} ${h.entityName ?? "?"} ${ids}`, fields(d.payload, SKIP_CDC, 3));
  }
  if (isObj(d.payload)) return fields(d.payload, SKIP_EVENT, 4) || "(no fields)";
  if (typeof d.payload === "string") return d.payload.length > 120 ? `${d.payload.slice(0, 120)}…` : d.payload;
  return JSON.stringify(d).slice(0, 120);
}
