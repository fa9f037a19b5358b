/**
 * `sfstream/relay`: an edge relay that lets a browser page on your own origin stream from
 * Salesforce, whose `/cometd` answers no CORS and must never see a browser holding an OAuth secret.
 *
 * `createRelay(options)` returns a fetch handler (`(request: Request) => Promise<Response>`) for
 * Cloudflare Workers (`export default { fetch: relay }`), Deno (`Deno.serve(relay)`) and, through
 * `toNodeHandler` from `sfstream/relay/node`, Node's `http.createServer`.
 *
 * The relay is a transport-level proxy, not a second Bayeux implementation. Per request it:
 * 1. answers CORS for the configured origins (preflight, credentials) and refuses other origins;
 * 2. asks `authorize(request)` whether the browser may use it (HTTP 401 otherwise);
 * 3. reads the JSON array the browser posted (at most 32,768 bytes, Salesforce's limit: a larger
 *    body gets 413 and is not read further) and inspects only two things: each `/meta/subscribe`
 *    (`subscription` must be one channel name, a string, matching the channel allowlist) and each
 *    publish (a message on a non-`/meta/` channel, refused unless `allowPublish`). A refused
 *    message is answered by the relay with a Bayeux-shaped `successful: false` reply
 *    (`403::Channel not allowed by relay`, `403::Publish denied by relay`) and the rest of the batch
 *    goes to Salesforce;
 * 4. forwards the batch to `{instanceUrl}/cometd/{version}` with the server-side token in
 *    `Authorization` and the Salesforce cookies of that browser client;
 * 5. on HTTP 401, `401::…` or `403::Handshake denied` with a `401::…` failure reason, gets a fresh
 *    token from the authenticator and retries the request once (a login is shared by every request
 *    waiting for it, bounded by `loginTimeout`, and followed by a back-off when it fails);
 * 6. returns Salesforce's status and JSON body with its own headers only (no `Set-Cookie`, nothing
 *    of Salesforce's; a body that is not JSON goes as plain text), after removing every token
 *    it has held from it. A 2xx body that is not a JSON array gets 502 instead.
 *
 * Cookies: Salesforce's `BAYEUX_BROWSER` / `sfdc-stream` cookies are kept by the relay, in one jar
 * per Bayeux client: a jar is created for each handshake and bound to the `clientId` Salesforce
 * returns, and to the browser credential (the `Authorization` header) that made the handshake. Later
 * requests find their jar by the `clientId` in the messages. The browser itself needs no cookies
 * (its cross-origin fetch sends none): two tabs, or two browsers, never share a Salesforce session.
 * A relay instance that does not know a `clientId` (restarted, or another isolate) forwards the
 * request without cookies; Salesforce answers `403::Unknown client` (or its no-`BAYEUX_BROWSER`
 * variant) and the client handshakes again, resubscribing from its replay markers.
 * @module
 */

import type { Authenticator, TokenInfo } from "./auth.js";
import { withDeadline } from "./deadline.js";
import { checkOptionKeys } from "./options.js";

/** Options of {@link createRelay}. */
export interface RelayOptions {
  /** Server-side authenticator (password, JWT bearer, client credentials, refresh token, or your own). */
  authenticator: Authenticator;
  /**
   * Origins allowed to call the relay from a browser (exact, e.g. `"https://app.example.com"`), or
   * a predicate. Requests with no `Origin` header (not from a browser page) are not refused here;
   * `authorize` decides.
   */
  allowedOrigins: readonly string[] | ((origin: string) => boolean);
  /**
   * Channel allowlist for `/meta/subscribe` (and for publish when enabled): exact names
   * (`"/event/Order__e"`) or prefix patterns ending in `*` (`"/topic/*"` allows every channel
   * below `/topic/`). A PushTopic filter (`/topic/X?Field='v'`) is matched by its channel.
   */
  channels: readonly string[];
  /** Let browsers publish over CometD (on allowed channels). Default false. */
  allowPublish?: boolean | undefined;
  /**
   * Decides whether a request may use the relay, e.g. by checking a signed session token in its
   * `Authorization` header (the browser `Client` sends `Authorization: Bearer <accessToken>` of its
   * authenticator). Do not read the request body. Returning false (or throwing) answers HTTP 401.
   * Return the user's id (a non-empty string) instead of `true` to have `maxSessionsPerUser` count
   * per user rather than per session token, and to let a renewed token reach the same session.
   */
  authorize: (request: Request) => boolean | string | Promise<boolean | string>;
  /** If set, the only API version the relay forwards (others get HTTP 400). Default: any version >= 37.0. */
  apiVersion?: string | undefined;
  /** Path the relay serves, default `"/cometd"`: it answers `{path}/{version}` and `{path}/{version}/...`. */
  path?: string | undefined;
  /** Most Bayeux client sessions (cookie jars) kept at once. Default 10000; the least recently used go first. */
  maxSessions?: number | undefined;
  /**
   * Most Salesforce sessions one user (the id `authorize` returns, else one session token) may
   * hold through the relay: its sessions in use, made in the last 45 s (Salesforce counts a
   * session until 40 s after its last connect), or being made. A handshake beyond is refused
   * (`403::Handshake denied`, reason `503::...`, which the client retries with back-off), so one
   * browser cannot take the org's whole concurrent-client allowance (20 in a Developer Edition).
   * Default 10.
   */
  maxSessionsPerUser?: number | undefined;
  /**
   * A jar unused this long is dropped (ms): no request of its client under way (a held long-poll
   * counts as use) and none answered for that long. Default 300000; Salesforce sweeps a session
   * after 40 s without a connect.
   */
  sessionIdleTimeout?: number | undefined;
  /**
   * Longest wait for `authenticator.authenticate()` (ms). Default 10000. A login that has not
   * answered by then is abandoned (the signal passed to `authenticate()` aborts, and a late
   * result is discarded) and the requests waiting for it
   * get HTTP 503 `503::Relay timed out authenticating to Salesforce`. After a failed or timed-out
   * login the relay waits before starting another (1 s, doubling on each further failure up to
   * 30 s); requests meanwhile get the same 503 at once.
   */
  loginTimeout?: number | undefined;
}

/** A fetch handler, as Workers, Deno and the Node adapter call it. */
export type RelayHandler = (request: Request) => Promise<Response>;

/** Reply text of a subscribe refused by the allowlist. */
export const CHANNEL_NOT_ALLOWED = "403::Channel not allowed by relay";
/** Reply text of a publish refused by the relay. */
export const PUBLISH_DENIED = "403::Publish denied by relay";

const MAX_BODY_BYTES = 32768;
const VERSION_RE = /^(\d{2,3})\.0$/;

interface BayeuxMessage {
  channel?: unknown;
  clientId?: unknown;
  id?: unknown;
  subscription?: unknown;
  successful?: unknown;
  error?: unknown;
  ext?: unknown;
  [field: string]: unknown;
}

interface Jar {
  cookies: Map<string, string>;
  owner: string;
  /** When a request of this client last started or got its answer. */
  lastUsed: number;
  /** Requests of this client under way (a held long-poll among them): while any is, the jar is in use. */
  inFlight: number;
}

/** The server-side authenticator failed; its error (which may name the login host) stays in the relay. */
class RelayAuthFailure extends Error {
  constructor(cause: unknown) {
    super("the relay could not authenticate to Salesforce", { cause });
  }
}

/** The server-side authenticator did not answer within `loginTimeout`. */
class RelayAuthTimeout extends RelayAuthFailure {
  constructor(ms: number) {
    super(new Error(`authenticate() did not answer within ${ms} ms`));
  }
}

/** Back-off after a failed login: 1 s, doubling per further failure, at most 30 s. */
const LOGIN_RETRY_FIRST_MS = 1000;
const LOGIN_RETRY_MAX_MS = 30_000;
/** A token Salesforce refuses within this long of its login counts as refused fresh (see renew()). */
const FRESH_TOKEN_MS = 10_000;
/** A Salesforce session counts until 40 s after its last connect: a jar used this recently is live. */
const SESSION_LIVE_MS = 45_000;

/** `promise`, or a rejection with the signal's reason as soon as `signal` aborts. */
function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal | null): Promise<T> {
  if (signal === null) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const OPTION_KEYS = ["authenticator", "allowedOrigins", "channels", "allowPublish", "authorize", "apiVersion", "path", "maxSessions", "maxSessionsPerUser", "sessionIdleTimeout", "loginTimeout"] as const;

/**
 * Throw if `x` is not an origin as browsers send it in `Origin` (`https://app.example.com`,
 * `http://localhost:5173`: scheme, lower-case host and port, no path): any other string would
 * never match, and every request would be refused.
 */
function originError(x: string): void {
  let origin: string | null = null;
  try {
    const u = new URL(x);
    if (u.protocol === "https:" || u.protocol === "http:") origin = u.origin;
  } catch {
    // not a URL at all
  }
  if (origin !== x) {
    const hint = origin === null ? 'an http(s) origin such as "https://app.example.com"' : `"${origin}"`;
    throw new TypeError(`allowedOrigins entry ${JSON.stringify(x)} is not an origin as browsers send it: use ${hint}`);
  }
}

function checkOptions(o: RelayOptions): void {
  if (!isObject(o)) throw new TypeError("options must be an object");
  checkOptionKeys(o, OPTION_KEYS);
  const a = o.authenticator as unknown;
  if (!isObject(a) || typeof (a as { authenticate?: unknown }).authenticate !== "function") {
    throw new TypeError("authenticator must be an object with an authenticate() method");
  }
  if (typeof o.allowedOrigins !== "function") {
    if (!Array.isArray(o.allowedOrigins) || o.allowedOrigins.some((x) => typeof x !== "string" || x === "" || x === "*")) {
      throw new TypeError('allowedOrigins must be an array of origins (no "*": the relay answers with credentials) or a function');
    }
    for (const x of o.allowedOrigins) originError(x);
  }
  if (!Array.isArray(o.channels) || o.channels.some((c) => typeof c !== "string" || !c.startsWith("/"))) {
    throw new TypeError('channels must be an array of channel names or prefix patterns, each starting with "/" (e.g. "/topic/*")');
  }
  if (typeof o.authorize !== "function") throw new TypeError("authorize must be a function (request) => boolean | string (the user's id) | a promise of one");
  if (o.allowPublish !== undefined && typeof o.allowPublish !== "boolean") throw new TypeError("allowPublish must be a boolean");
  if (o.apiVersion !== undefined && (typeof o.apiVersion !== "string" || !VERSION_RE.test(o.apiVersion) || Number(o.apiVersion) < 37)) {
    throw new TypeError('apiVersion must be a string like "62.0" (37.0 or later)');
  }
  if (o.path !== undefined && (typeof o.path !== "string" || !/^\/[^?#]*[^/?#]$/.test(o.path))) {
    throw new TypeError('path must start with "/" and not end with "/", e.g. "/cometd"');
  }
  for (const k of ["maxSessions", "maxSessionsPerUser", "sessionIdleTimeout", "loginTimeout"] as const) {
    const v = o[k];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || v <= 0)) throw new TypeError(`${k} must be a positive number`);
  }
}

/** Does `channel` match the allowlist? Exact, or a pattern ending in `*` as a prefix. */
function channelAllowed(patterns: readonly string[], channel: string): boolean {
  const base = channel.split("?")[0] ?? channel;
  for (const p of patterns) {
    if (p.endsWith("*")) {
      if (base.startsWith(p.slice(0, -1)) && base.length > p.length - 1) return true;
    } else if (base === p) {
      return true;
    }
  }
  return false;
}

/** `name=value` pairs of `Set-Cookie` headers; values are kept byte for byte (§8: never re-encode). */
function setCookies(headers: Headers): string[] {
  const h = headers as Headers & { getSetCookie?: () => string[]; getAll?: (name: string) => string[] };
  if (typeof h.getSetCookie === "function") return h.getSetCookie();
  if (typeof h.getAll === "function") return h.getAll("Set-Cookie");
  const one = headers.get("set-cookie");
  return one === null ? [] : [one];
}

function storeCookies(jar: Map<string, string>, headers: Headers): void {
  for (const line of setCookies(headers)) {
    const first = line.split(";")[0] ?? "";
    const eq = first.indexOf("=");
    if (eq <= 0) continue;
    const name = first.slice(0, eq).trim();
    const value = first.slice(eq + 1).trim();
    // Expired (deleted) cookies: an Expires in the past or Max-Age <= 0.
    const attrs = line.slice(first.length).toLowerCase();
    const maxAge = /;\s*max-age=(-?\d+)/.exec(attrs);
    const expires = /;\s*expires=([^;]+)/.exec(attrs);
    const gone = (maxAge !== null && Number(maxAge[1]) <= 0) || (expires !== null && expires[1] !== undefined && Date.parse(expires[1]) < Date.now());
    if (gone) jar.delete(name);
    else jar.set(name, value);
  }
}

function cookieHeader(jar: Map<string, string>): string | null {
  if (jar.size === 0) return null;
  return [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
}

async function digest(text: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/**
 * The request body as text, read with a cap: `null` when it is larger than `cap` bytes, refused on
 * its `Content-Length` before any byte is read, or as soon as the stream passes the cap (the rest
 * is never read: the stream is cancelled). A failed read (the browser went away mid-upload) throws.
 */
async function readBody(request: Request, cap: number): Promise<string | null> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && /^\s*\d+\s*$/.test(declared) && Number(declared) > cap) return null;
  const stream = request.body;
  if (stream === null) return "";
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > cap) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

function needsFreshToken(status: number, body: unknown): boolean {
  if (status === 401) return true;
  if (!Array.isArray(body)) return false;
  for (const m of body) {
    if (!isObject(m) || m.successful !== false || typeof m.error !== "string") continue;
    if (m.error.startsWith("401::")) return true;
    if (m.error.startsWith("403::Handshake denied")) {
      const ext = m.ext;
      const sfdc = isObject(ext) ? ext.sfdc : undefined;
      const reason = isObject(sfdc) ? sfdc.failureReason : undefined;
      if (typeof reason === "string" && reason.startsWith("401::")) return true;
    }
  }
  return false;
}

/**
 * Create the relay. See the module documentation for what it does per request. A missing,
 * invalid or unknown option raises a `TypeError` naming it.
 *
 * ```ts
 * import { JwtBearerAuthenticator } from "sfstream";
 * import { createRelay } from "sfstream/relay";
 * const relay = createRelay({
 *   authenticator: new JwtBearerAuthenticator({ consumerKey, username, privateKey }),
 *   allowedOrigins: ["https://app.example.com"],
 *   channels: ["/event/Order_Placed__e", "/topic/*"],
 *   authorize: async (request) => verifySessionToken(request.headers.get("authorization")),
 * });
 * Deno.serve(relay);
 * ```
 */
export function createRelay(options: RelayOptions): RelayHandler {
  checkOptions(options);
  const authenticator = options.authenticator;
  const allowed = options.allowedOrigins;
  const originAllowed = typeof allowed === "function" ? allowed : (o: string) => allowed.includes(o);
  const patterns = [...options.channels];
  const allowPublish = options.allowPublish === true;
  const authorize = options.authorize;
  const pinnedVersion = options.apiVersion ?? null;
  const base = options.path ?? "/cometd";
  const maxSessions = options.maxSessions ?? 10000;
  const maxPerUser = options.maxSessionsPerUser ?? 10;
  const idle = options.sessionIdleTimeout ?? 300_000;
  const loginTimeout = options.loginTimeout ?? 10_000;

  // The server-side token: one at a time, refreshed once per invalidation however many requests see
  // it. A login gets `loginTimeout`; after a failure the next waits out a back-off.
  let token: TokenInfo | null = null;
  let pending: Promise<TokenInfo> | null = null;
  let failures = 0;
  let lastFailure: RelayAuthFailure | null = null;
  let retryAt = 0;
  /** When the current token was obtained, and how many fresh tokens in a row Salesforce refused. */
  let tokenAt = 0;
  let refusals = 0;
  /** Until then a refused token is not replaced: Salesforce's refusal goes to the browser. */
  let renewAt = 0;
  // Every token this relay has held, to check responses against (bounded).
  const seenTokens: string[] = [];
  function login(): Promise<TokenInfo> {
    // The authenticator's signal is aborted when the login is given up (loginTimeout): its
    // request stops then.
    return withDeadline(
      async (signal) => {
        const t = await authenticator.authenticate(signal);
        if (!isObject(t) || typeof t.accessToken !== "string" || t.accessToken === "" || typeof t.instanceUrl !== "string" || t.instanceUrl === "") {
          throw new Error("the authenticator returned no accessToken/instanceUrl");
        }
        return t;
      },
      loginTimeout,
      () => new RelayAuthTimeout(loginTimeout),
    ).then(
      (t) => {
        pending = null;
        failures = 0;
        lastFailure = null;
        token = t;
        tokenAt = Date.now();
        if (!seenTokens.includes(t.accessToken)) {
          seenTokens.push(t.accessToken);
          if (seenTokens.length > 8) seenTokens.shift();
        }
        return t;
      },
      (e: unknown) => {
        pending = null;
        failures++;
        retryAt = Date.now() + Math.min(LOGIN_RETRY_FIRST_MS * 2 ** (failures - 1), LOGIN_RETRY_MAX_MS);
        lastFailure = e instanceof RelayAuthFailure ? e : new RelayAuthFailure(e);
        throw lastFailure;
      },
    );
  }
  function currentToken(): Promise<TokenInfo> {
    if (token !== null) return Promise.resolve(token);
    if (pending === null) {
      if (lastFailure !== null && Date.now() < retryAt) return Promise.reject(lastFailure);
      pending = login();
    }
    return pending;
  }
  /**
   * Salesforce refused `t`: whether to log in again now. A token refused within
   * FRESH_TOKEN_MS of its login means fresh tokens are refused (a session policy, a blocked
   * connected app): logging in again for every browser request would only lock the integration
   * user out. The next login then waits out a back-off (1 s, doubling, at most 30 s), and until
   * then the refusal goes to the browser, whose client backs off too.
   */
  function renew(t: TokenInfo): boolean {
    if (token !== t) return true; // replaced already: use the new one
    const now = Date.now();
    if (now < renewAt) return false;
    if (now - tokenAt < FRESH_TOKEN_MS) {
      refusals++;
      renewAt = now + Math.min(LOGIN_RETRY_FIRST_MS * 2 ** (refusals - 1), LOGIN_RETRY_MAX_MS);
    } else {
      refusals = 0;
    }
    token = null;
    return true;
  }

  /** Handshakes under way per user: with the live jars, what `maxSessionsPerUser` bounds. */
  const handshaking = new Map<string, number>();
  function sessionsOf(owner: string, now: number): number {
    let n = handshaking.get(owner) ?? 0;
    for (const j of jars.values()) if (j.owner === owner && (j.inFlight > 0 || now - j.lastUsed < SESSION_LIVE_MS)) n++;
    return n;
  }

  // Cookie jars by Bayeux clientId, least recently used first (Map keeps insertion order).
  const jars = new Map<string, Jar>();
  function sweep(now: number): void {
    // One pass at most over the jars there are: a jar with a request under way is in use, so it
    // moves to the back instead of going.
    let left = jars.size;
    for (const [id, jar] of jars) {
      if (left-- <= 0) break;
      if (jars.size <= maxSessions && now - jar.lastUsed < idle) break;
      if (jar.inFlight > 0) touch(id, jar, now);
      else jars.delete(id);
    }
  }
  function touch(id: string, jar: Jar, now: number): void {
    jar.lastUsed = now;
    jars.delete(id);
    jars.set(id, jar);
  }

  function corsHeaders(origin: string | null): Headers {
    const h = new Headers({ "Cache-Control": "no-store", Vary: "Origin" });
    if (origin !== null) {
      h.set("Access-Control-Allow-Origin", origin);
      h.set("Access-Control-Allow-Credentials", "true");
    }
    return h;
  }
  function reply(status: number, body: unknown, origin: string | null, extra: Record<string, string> = {}): Response {
    const h = corsHeaders(origin);
    for (const [k, v] of Object.entries(extra)) h.set(k, v);
    if (body === null) return new Response(null, { status, headers: h });
    h.set("Content-Type", "application/json;charset=UTF-8");
    return new Response(JSON.stringify(body), { status, headers: h });
  }
  const bayeuxError = (error: string, channel = "/meta/handshake"): unknown[] => [{ channel, successful: false, error }];

  /** Remove every token the relay has held from a text, whatever happens upstream. */
  function scrub(text: string): string {
    let out = text;
    for (const t of seenTokens) if (out.includes(t)) out = out.split(t).join("[redacted]");
    return out;
  }

  async function forward(url: string, body: string, jar: Map<string, string>, signal: AbortSignal | null): Promise<{ status: number; text: string; parsed: unknown; headers: Headers }> {
    for (let attempt = 0; ; attempt++) {
      // The browser's request may end while the login runs: stop waiting then (the login goes on
      // for the requests still waiting).
      const t = await unlessAborted(currentToken(), signal);
      const headers = new Headers({ "Content-Type": "application/json;charset=UTF-8", Accept: "application/json" });
      headers.set("Authorization", `${t.tokenType ?? "Bearer"} ${t.accessToken}`);
      const cookie = cookieHeader(jar);
      if (cookie !== null) headers.set("Cookie", cookie);
      const target = `${t.instanceUrl.replace(/\/+$/, "")}${url}`;
      const init: RequestInit = { method: "POST", headers, body, redirect: "manual" };
      if (signal !== null) init.signal = signal;
      const res = await fetch(target, init);
      storeCookies(jar, res.headers);
      const text = await res.text();
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
      if (attempt === 0 && needsFreshToken(res.status, parsed) && renew(t)) continue;
      return { status: res.status, text, parsed, headers: res.headers };
    }
  }

  return async function relay(request: Request): Promise<Response> {
    const origin = request.headers.get("Origin");
    if (origin !== null && !originAllowed(origin)) {
      return new Response("origin not allowed", { status: 403, headers: { "Content-Type": "text/plain", Vary: "Origin" } });
    }
    const url = new URL(request.url);
    if (url.pathname !== base && !url.pathname.startsWith(`${base}/`)) return reply(404, null, origin);
    const rest = url.pathname.slice(base.length + 1);
    const slash = rest.indexOf("/");
    const version = slash < 0 ? rest : rest.slice(0, slash);
    const tail = slash < 0 ? "" : rest.slice(slash);

    if (request.method === "OPTIONS") {
      return reply(204, null, origin, {
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
      });
    }
    if (request.method !== "POST") return reply(405, bayeuxError("405::Only POST allowed"), origin, { Allow: "POST, OPTIONS" });

    let user: boolean | string = false;
    try {
      user = await authorize(request);
    } catch {
      user = false;
    }
    const ok = user === true || (typeof user === "string" && user !== "");
    if (!ok) return reply(401, bayeuxError("401::Relay authorization required"), origin, { "WWW-Authenticate": "Bearer" });

    if (!VERSION_RE.test(version) || Number(version) < 37 || (pinnedVersion !== null && version !== pinnedVersion)) {
      const want = pinnedVersion ?? "62.0";
      return reply(400, bayeuxError(`400::Unsupported API version. This relay forwards ${pinnedVersion === null ? "'37.0' and later" : `'${pinnedVersion}' only`}. URI format: '${base}/${want}'`), origin);
    }
    if (!/^(\/[a-z]+)?\/?$/.test(tail)) return reply(404, null, origin);

    let raw: string | null;
    try {
      raw = await readBody(request, MAX_BODY_BYTES);
    } catch {
      if (request.signal?.aborted) return reply(499, null, origin);
      return reply(400, bayeuxError("400::The relay could not read the request body"), origin);
    }
    if (raw === null) {
      const h = corsHeaders(origin);
      h.set("Content-Type", "text/plain;charset=UTF-8");
      return new Response("Maximum Request Size Exceeded", { status: 413, headers: h });
    }
    let messages: unknown;
    try {
      messages = JSON.parse(raw);
    } catch {
      messages = null;
    }
    if (!Array.isArray(messages) || messages.length === 0 || !messages.every(isObject)) {
      return reply(400, bayeuxError("400::The relay accepts a non-empty JSON array of Bayeux messages"), origin);
    }

    // The two inspections: subscriptions against the allowlist, publishes against allowPublish.
    const forwarded: BayeuxMessage[] = [];
    const refused: BayeuxMessage[] = [];
    for (const m of messages as BayeuxMessage[]) {
      const channel = typeof m.channel === "string" ? m.channel : "";
      const answer = (error: string): void => {
        const r: BayeuxMessage = { channel, successful: false, error };
        if (m.id !== undefined) r.id = m.id;
        if (m.clientId !== undefined) r.clientId = m.clientId;
        if (m.subscription !== undefined) r.subscription = m.subscription;
        refused.push(r);
      };
      if (channel === "/meta/subscribe") {
        // Only a single channel name is checked, so only a single channel name goes through: CometD
        // servers also take an array of channels in `subscription`.
        if (typeof m.subscription !== "string" || !channelAllowed(patterns, m.subscription)) {
          answer(CHANNEL_NOT_ALLOWED);
          continue;
        }
      } else if (!channel.startsWith("/meta/")) {
        if (!allowPublish) {
          answer(PUBLISH_DENIED);
          continue;
        }
        if (!channelAllowed(patterns, channel)) {
          answer(CHANNEL_NOT_ALLOWED);
          continue;
        }
      }
      forwarded.push(m);
    }
    if (forwarded.length === 0) return reply(200, refused, origin);

    // The jar of this Bayeux client: a new one for a handshake, otherwise found by clientId and
    // bound to the browser credential that made the handshake.
    const now = Date.now();
    sweep(now);
    const owner = typeof user === "string" ? `user:${user}` : await digest(request.headers.get("Authorization") ?? "");
    const handshake = forwarded.some((m) => m.channel === "/meta/handshake");
    if (handshake && sessionsOf(owner, now) >= maxPerUser) {
      const denied: BayeuxMessage[] = forwarded
        .filter((m) => m.channel === "/meta/handshake")
        .map((m) => ({
          channel: "/meta/handshake",
          successful: false,
          error: "403::Handshake denied",
          ext: { sfdc: { failureReason: `503::Relay: this user holds ${maxPerUser} Streaming sessions already` } },
          ...(m.id !== undefined ? { id: m.id } : {}),
        }));
      return reply(200, [...denied, ...refused], origin);
    }
    const clientId = forwarded.map((m) => m.clientId).find((c): c is string => typeof c === "string");
    let jar: Jar | null = null;
    if (!handshake && clientId !== undefined) {
      const j = jars.get(clientId);
      if (j !== undefined && j.owner === owner) {
        jar = j;
        touch(clientId, j, now);
      }
    }
    const cookies = jar?.cookies ?? new Map<string, string>();
    let body: string;
    try {
      body = refused.length === 0 ? raw : JSON.stringify(forwarded);
    } catch {
      // Nested too deep to write again (JSON.parse takes more depth than JSON.stringify).
      return reply(400, bayeuxError("400::The relay could not read the request body"), origin);
    }

    let up: { status: number; text: string; parsed: unknown; headers: Headers };
    if (jar !== null) jar.inFlight++;
    if (handshake) handshaking.set(owner, (handshaking.get(owner) ?? 0) + 1);
    try {
      up = await forward(`/cometd/${version}${tail}`, body, cookies, request.signal ?? null);
    } catch (e) {
      if (request.signal?.aborted) return reply(499, null, origin);
      if (e instanceof RelayAuthTimeout) return reply(503, bayeuxError("503::Relay timed out authenticating to Salesforce"), origin);
      if (e instanceof RelayAuthFailure) return reply(503, bayeuxError("503::Relay could not authenticate to Salesforce"), origin);
      return reply(502, bayeuxError("502::Relay could not reach Salesforce"), origin);
    } finally {
      if (handshake) {
        const n = (handshaking.get(owner) ?? 1) - 1;
        if (n > 0) handshaking.set(owner, n);
        else handshaking.delete(owner);
      }
      // A long-poll held up to 110 s is use of the jar, not idleness: it counts from its answer.
      if (jar !== null && clientId !== undefined) {
        jar.inFlight--;
        if (jars.get(clientId) === jar) touch(clientId, jar, Date.now());
      }
    }

    if (Array.isArray(up.parsed)) {
      for (const m of up.parsed) {
        if (!isObject(m)) continue;
        if (m.channel === "/meta/handshake" && m.successful === true && typeof m.clientId === "string") {
          const j: Jar = { cookies, owner, lastUsed: Date.now(), inFlight: 0 };
          jars.set(m.clientId, j);
        } else if (m.channel === "/meta/disconnect" && m.successful === true && typeof m.clientId === "string" && jar !== null && jars.get(m.clientId) === jar) {
          // Only a disconnect Salesforce granted, of the jar this request used: anyone may send a
          // disconnect naming a clientId, and a refused one must not cost its owner the cookies.
          jars.delete(m.clientId);
        }
      }
    }

    const h = corsHeaders(origin);
    if (Array.isArray(up.parsed)) {
      const text = refused.length > 0 ? JSON.stringify([...up.parsed, ...refused]) : up.text;
      h.set("Content-Type", "application/json;charset=UTF-8");
      return new Response(scrub(text), { status: up.status, headers: h });
    }
    // Not a Bayeux reply. A success status with it is no answer to the batch: 502, with the relay's
    // refusals. An error status (an HTML 503 page, say) fails the whole request at the client, which
    // sends it again (and the relay refuses again): passed on with its status, as plain text (an
    // HTML page from upstream must not render as a page of the relay's origin).
    if (up.status >= 200 && up.status < 300) {
      return reply(502, [...bayeuxError("502::Relay got no Bayeux reply from Salesforce"), ...refused], origin);
    }
    h.set("Content-Type", "text/plain;charset=UTF-8");
    h.set("X-Content-Type-Options", "nosniff");
    return new Response(scrub(up.text), { status: up.status, headers: h });
  };
}
