/**
 * One Salesforce connection per browser: {@link SharedTabClient}.
 *
 * An org allows 20 to 2,000 concurrent Streaming clients in total, so every open tab must not be
 * one. Tabs of one origin that stream for the same org and user elect a leader with the Web Locks
 * API (`navigator.locks`, lock `sfstream:<key>`): the leader holds the one real {@link Client} and
 * fans each message out to the other tabs over a `BroadcastChannel` of the same name; followers
 * send their subscribe / unsubscribe / publish requests to the leader the same way. Every tab
 * reads messages with the same API as `Client` (`receive`, `messages`, `for await`). A follower's
 * call runs once on the leader; one the leader has not answered when it goes is sent to the next
 * leader (so a `publish()` in flight during a takeover may be published twice, never lost).
 *
 * A page being unloaded (`pagehide`) closes its client: a leader hands over, a follower says goodbye
 * so that the leader unsubscribes the channels only it wanted. A page going into the back/forward
 * cache (`pagehide` with `persisted`) leaves the election the same way but stays open, and joins
 * again when it is shown (`pageshow`): as a follower it receives what is published from then on
 * (what it missed while cached is not replayed to it). A leader page releases the lock at once
 * there (the browser freezes the page before its connection has closed).
 *
 * When the leader goes (tab closed, crashed or `close()`d), the browser hands the lock to a waiting
 * tab, which opens its own `Client`, subscribes to every channel the remaining tabs want, and
 * resumes each from the replay marker the leaders keep in a shared IndexedDB store (database
 * `sfstream-tabs`): events published in between are replayed, none is lost. If the old leader died
 * before writing a marker (markers are written ~200 ms after consumption), the new leader resumes
 * after the newest event it had itself received. Events delivered twice across a takeover are
 * dropped per tab by replay id, which increases per channel. A channel on which no event arrived
 * before the takeover is replayed from what Salesforce retains, minus the events dated more than a
 * minute (clock-skew allowance) before the earliest subscription of a tab that wants it (each
 * follower tells the new leader when its subscriptions were confirmed), so nothing published during
 * the switch is lost, also on a channel only a follower wants. That is the only date filter: a
 * channel resumed from a stored marker (a page opened the next day) gets every event after the
 * marker, and `replay: ReplayOption.ALL_EVENTS` every retained event, however old.
 *
 * A tab takes the leader role (status `role`) once its connection is open. If the tab that gets the
 * lock cannot connect (an expired session, the network), it stays a follower: it reports
 * `takeoverFailed`, hands the lock to the next tab and asks for it again after 1 s, 2 s, 4 s ... (at
 * most 30 s), following any tab that leads meanwhile. After `connectionTimeout` (default 10 s;
 * `null`: forever) of failed takeovers with no leader it fails like a `Client` that cannot
 * reconnect: a `failed` status, and `receive()` and pending calls reject with the last error. When
 * the leader's connection fails, every tab fails with its error and leaves the election; `open()`
 * (with or without `close()` first) starts over.
 *
 * `shared: false`, or a runtime without Web Locks or BroadcastChannel (Node, Deno, workers
 * without locks), gives each instance its own connection, like a plain `Client`.
 * @module
 */

import type { Authenticator } from "./auth.js";
import { withDeadline } from "./deadline.js";
import { checkOptionKeys } from "./options.js";
import { batchOptionsError, checkClientOptions, Client, CLIENT_OPTION_KEYS, iterateMessages, login, receiveOptionsError, waitForMessage, withdrawableIterator, type BatchOptions, type ClientOptions, type Message, type ReceiveOptions, type StatusEvent, type Waiter } from "./client.js";
import {
  AuthenticationError,
  ClientError,
  ClientInvalidOperation,
  ServerError,
  SfstreamError,
  TransportConnectionClosed,
  TransportError,
  TransportInvalidOperation,
  TransportTimeoutError,
  type ServerResponse,
} from "./errors.js";
import { CorruptReplayMarkerError, ReplayMarker, ReplayMarkerStorage, ReplayOption, type ReplayStart } from "./replay.js";

/**
 * The keys of {@link SharedTabClientOptions}: `Client`'s but `ackPolicy` (the leader's connection
 * always acknowledges automatically, as it hands the messages on), and the tabs' own.
 */
const OPTION_KEYS: readonly string[] = [...CLIENT_OPTION_KEYS.filter((k) => k !== "ackPolicy"), "shared", "database", "key", "leaderTimeout"];

/** What a tab is: the connection holder, a follower of it, or on its own (sharing off). */
export type TabRole = "leader" | "follower" | "standalone";

/** Status events of a {@link SharedTabClient}: the leader's connection events, plus role changes. */
export type SharedTabStatus =
  | StatusEvent
  | { type: "role"; at: number; role: TabRole }
  /** A new leader could not resubscribe a channel some tab wants (for example, refused by a relay). */
  | { type: "subscribeFailed"; at: number; channel: string; error: Error }
  /**
   * This tab got the leader lock but could not connect (`error`): it handed the lock on, follows
   * whichever tab leads, and asks for the lock again in `delay` ms. Not sent to the other tabs.
   */
  | { type: "takeoverFailed"; at: number; error: Error; attempt: number; delay: number };

/** Options of {@link SharedTabClient}. */
export interface SharedTabClientOptions extends Omit<ClientOptions, "replay" | "ackPolicy" | "onStatus"> {
  /** Share one connection between the tabs. Default true (where Web Locks and BroadcastChannel exist). */
  shared?: boolean | undefined;
  /** Where to start a channel that has no stored marker and no event seen yet. Default `ReplayOption.NEW_EVENTS`. */
  replay?: ReplayOption | undefined;
  /** IndexedDB database of the shared replay markers. Default `"sfstream-tabs"`. */
  database?: string | undefined;
  /** Election key. Default: `<orgId>/<userId>` of the authenticated identity, else the instance host. */
  key?: string | undefined;
  /** How long `open()` waits for a leader (or to become one) before failing, ms. Default 30000. */
  leaderTimeout?: number | undefined;
  /**
   * As for `Client`: how long the leader's connection tries to reconnect before it fails (ms,
   * default 10000; null: forever). Also how long a tab goes on with failed takeovers while no tab
   * leads before it fails, and how long `open()` waits for the login that tells whose connection to
   * share (without `key`).
   */
  connectionTimeout?: number | null | undefined;
  /** Called for every status event. */
  onStatus?: ((status: SharedTabStatus) => void) | undefined;
}

/** An error carried between tabs: its class name, message and the fields of that class. */
interface WireError {
  name: string;
  message: string;
  /** ServerError: the Bayeux `error`; AuthenticationError: the OAuth `error` code. */
  error?: string | null;
  errorCode?: number | null;
  errorArgs?: string[];
  errorMessage?: string | null;
  response?: ServerResponse | null;
  errorDescription?: string | null;
  status?: number | null;
}

/** A status event as sent between tabs: its error, if any, as a {@link WireError}. */
type WireStatus = SharedTabStatus extends infer S ? (S extends { error: Error } ? Omit<S, "error"> & { error: WireError } : S) : never;

type Op = { op: "sub"; channel: string } | { op: "unsub"; channel: string } | { op: "pub"; channel: string; data: unknown };

type Wire =
  | { t: "hello"; from: string }
  | { t: "leader"; id: string }
  | { t: "resign"; id: string }
  /** A follower's subscriptions for a new leader, with when each was confirmed (epoch ms) where known. */
  | { t: "subs"; from: string; to: string; channels: string[]; since?: Record<string, number> }
  | { t: "bye"; from: string }
  | { t: "rpc"; from: string; to: string; rid: number; call: Op }
  | { t: "ack"; to: string; rid: number; ok: boolean; value?: unknown; error?: WireError }
  | { t: "msg"; m: Message }
  | { t: "status"; s: WireStatus }
  | { t: "failed"; error: WireError };

interface Pending {
  call: Op;
  /** The leader tab it was sent to, or null while there is none. */
  to: string | null;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

interface LockManagerLike {
  request(name: string, options: { signal?: AbortSignal }, callback: () => Promise<void>): Promise<void>;
}

function locks(): LockManagerLike | null {
  const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
  return nav?.locks && typeof nav.locks.request === "function" ? nav.locks : null;
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** Plain JSON data (a Bayeux reply) that a BroadcastChannel can clone, or null. */
function plainJson<T>(v: unknown): T | null {
  if (v === null || typeof v !== "object") return null;
  try {
    return JSON.parse(JSON.stringify(v)) as T;
  } catch {
    return null;
  }
}

/** An error as sent to the other tabs: class name, message and that class's fields (no `cause`). */
function toWire(e: unknown): WireError {
  const x = (e !== null && typeof e === "object" ? e : {}) as Record<string, unknown>;
  const w: WireError = {
    name: typeof x.name === "string" ? x.name : "Error",
    message: typeof x.message === "string" ? x.message : String(e),
  };
  if (e instanceof ServerError) {
    w.error = e.error;
    w.errorCode = e.errorCode;
    w.errorArgs = [...e.errorArgs];
    w.errorMessage = e.errorMessage;
    w.response = plainJson<ServerResponse>(e.response);
  } else if (e instanceof AuthenticationError) {
    w.error = e.error;
    w.errorDescription = e.errorDescription;
    w.status = e.status;
  }
  return w;
}

/** The classes an error from another tab is rebuilt as, by name (every error class the package exports). */
const WIRE_CLASSES: Record<string, new (message: string) => Error> = {
  SfstreamError,
  ClientError,
  ClientInvalidOperation,
  CorruptReplayMarkerError,
  TransportError,
  TransportInvalidOperation,
  TransportTimeoutError,
  TransportConnectionClosed,
  TypeError,
  RangeError,
};

/** Rebuild an error sent by another tab as the same class, with the same fields. */
function fromWire(w: WireError): Error {
  const message = typeof w?.message === "string" ? w.message : "the leader tab failed";
  const name = typeof w?.name === "string" ? w.name : "Error";
  if (name === "ServerError") {
    return new ServerError(message, {
      response: plainJson<ServerResponse>(w.response),
      error: str(w.error),
      errorCode: num(w.errorCode),
      errorArgs: Array.isArray(w.errorArgs) ? w.errorArgs.filter((a): a is string => typeof a === "string") : [],
      errorMessage: str(w.errorMessage),
    });
  }
  if (name === "AuthenticationError") {
    return new AuthenticationError(message, { error: str(w.error), errorDescription: str(w.errorDescription), status: num(w.status) });
  }
  const Class = Object.hasOwn(WIRE_CLASSES, name) ? WIRE_CLASSES[name] : undefined;
  if (Class) return new Class(message);
  // Not one of ours (a storage or runtime error in the leader tab): a ClientError that says what it was.
  return new ClientError(name === "Error" ? message : `${name}: ${message}`);
}

const statusToWire = (s: SharedTabStatus): WireStatus => ("error" in s ? { ...s, error: toWire(s.error) } : s) as WireStatus;
const statusFromWire = (s: WireStatus): SharedTabStatus => ("error" in s ? { ...s, error: fromWire(s.error) } : s) as SharedTabStatus;

/** Clock-skew allowance of the gap-free takeover (the core uses the same for resubscribes). */
const CLOCK_SKEW_MS = 60_000;
/** `p`, with `settled()` called once it settles, either way (the caller still sees a rejection). */
function untilSettled(p: Promise<void>, settled: () => void): Promise<void> {
  p.then(settled, settled);
  return p;
}

/** After a failed takeover, the tab asks for the lock again after this long, doubling per failure... */
const TAKEOVER_RETRY_MS = 1_000;
/** ... up to this. */
const TAKEOVER_RETRY_MAX_MS = 30_000;
/** How many followers' calls a leader remembers the answer of (see #answered). */
const ANSWERS_KEPT = 256;

/** The event's date in epoch ms (PushTopic/generic createdDate, CDC commitTimestamp, platform-event CreatedDate). */
const eventDate = (m: Message): number | null => {
  const data = m.data as { event?: { createdDate?: unknown }; payload?: { CreatedDate?: unknown; ChangeEventHeader?: { commitTimestamp?: unknown } } } | null;
  const created = data?.event?.createdDate ?? data?.payload?.CreatedDate;
  if (typeof created === "string") {
    const t = Date.parse(created);
    return Number.isNaN(t) ? null : t;
  }
  const commit = data?.payload?.ChangeEventHeader?.commitTimestamp;
  return typeof commit === "number" ? commit : null;
};

const replayIdOf = (m: Message): number | null => {
  const data = m.data as { event?: { replayId?: unknown } } | null;
  const id = data?.event?.replayId;
  return typeof id === "number" ? id : null;
};

const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());

const baseChannel = (c: string): string => c.split("?")[0] ?? c;

function identityKey(info: { id?: string | null; instanceUrl: string }): string {
  const m = typeof info.id === "string" ? /\/id\/([^/]+)\/([^/]+)\/?$/.exec(info.id) : null;
  if (m) return `${m[1]}/${m[2]}`;
  try {
    return `${new URL(info.instanceUrl).host}/-`;
  } catch {
    return "unknown/-";
  }
}

function idbRequest<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB request failed"));
  });
}

/** What the marker storage asks the leader tab when the connection subscribes a channel. */
interface MarkerHost {
  /** The newest replay id this tab delivered on `channel` (its replay key). */
  seen(channel: string): number | undefined;
  /** When the tabs that want `channel` had their subscriptions confirmed (epoch ms), the earliest. */
  subscribedSince(channel: string): number | undefined;
  /** The connection replays `channel` from ALL_EVENTS to cover a takeover: drop what is dated before `since`. */
  dropBefore(channel: string, since: number): void;
}

/**
 * The markers the tabs share: IndexedDB (`<database>` / `markers`, key `<namespace>/<channel>`,
 * written by whichever tab leads), or memory where IndexedDB is missing. The start of a channel is
 * the older of the stored marker and the newest event this tab has seen on it (so a takeover
 * before the old leader's first marker write still resumes after what the tabs saw); replays are
 * de-duplicated per tab.
 */
class SharedMarkerStorage extends ReplayMarkerStorage {
  readonly #database: string;
  readonly #host: MarkerHost;
  readonly #defaultReplay: ReplayOption;
  readonly #memory = new Map<string, string>();
  #namespace = "unauthenticated/-";
  #db: Promise<IDBDatabase> | null = null;
  constructor(database: string, defaultReplay: ReplayOption, host: MarkerHost) {
    super();
    this.#database = database;
    this.#defaultReplay = defaultReplay;
    this.#host = host;
  }
  override bindNamespace(namespace: string): void {
    this.#namespace = namespace;
  }
  #open(): Promise<IDBDatabase> | null {
    const idb = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
    if (!idb) return null;
    if (this.#db === null) {
      const req = idb.open(this.#database, 1);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains("markers")) req.result.createObjectStore("markers");
      };
      this.#db = idbRequest(req);
      this.#db.catch(() => (this.#db = null));
    }
    return this.#db;
  }
  async getReplayMarker(channel: string): Promise<ReplayMarker | null> {
    const key = `${this.#namespace}/${channel}`;
    const db = this.#open();
    const text = db ? await idbRequest((await db).transaction("markers", "readonly").objectStore("markers").get(key)) : this.#memory.get(key);
    if (typeof text !== "string") return null;
    try {
      return ReplayMarker.from(JSON.parse(text));
    } catch {
      return null;
    }
  }
  async setReplayMarker(channel: string, marker: ReplayMarker): Promise<void> {
    const key = `${this.#namespace}/${channel}`;
    const text = JSON.stringify(marker.toJSON());
    const db = this.#open();
    if (!db) {
      this.#memory.set(key, text);
      return;
    }
    const tx = (await db).transaction("markers", "readwrite");
    tx.objectStore("markers").put(text, key);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error("IndexedDB write failed"));
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB write aborted"));
    });
  }
  override async getReplayStart(channel: string): Promise<ReplayStart | null> {
    const stored = await this.getReplayMarker(channel);
    const seen = this.#host.seen(channel);
    if (stored !== null && (seen === undefined || stored.replayId <= seen)) return { replayId: stored.replayId, date: stored.date };
    if (seen !== undefined) return { replayId: seen, date: null };
    // A takeover on a channel a tab was already subscribed to but that has no marker and no event
    // yet: -1 would lose what was published during the switch, so replay everything retained and
    // drop only what is dated before that subscription (less a clock-skew allowance). Nowhere
    // else: a stored marker or ALL_EVENTS must deliver every event, however old.
    const since = this.#host.subscribedSince(channel);
    if (this.#defaultReplay === ReplayOption.NEW_EVENTS && since !== undefined) {
      this.#host.dropBefore(channel, since - CLOCK_SKEW_MS);
      return { replayId: ReplayOption.ALL_EVENTS, date: null };
    }
    return { replayId: this.#defaultReplay, date: null };
  }
}

/**
 * A streaming client whose tabs share one Salesforce connection. Same reading API as
 * {@link Client}; see the module documentation for the election and the takeover.
 *
 * ```ts
 * const client = new SharedTabClient(new AccessTokenAuthenticator({ accessToken: session, instanceUrl: relayUrl }));
 * await client.open();
 * await client.subscribe("/event/Order_Placed__e");
 * for await (const message of client) render(message);
 * ```
 */
export class SharedTabClient implements AsyncIterable<Message> {
  readonly authenticator: Authenticator;
  /** This tab's id in the election. */
  readonly tabId: string;
  readonly #clientOptions: ClientOptions;
  readonly #storage: SharedMarkerStorage;
  readonly #shared: boolean;
  readonly #keyOption: string | null;
  readonly #leaderTimeout: number;
  /** The Client's `connectionTimeout`: how long failed takeovers go on before the tab fails (null: forever). */
  readonly #connectionTimeout: number | null;
  /** Aborts the login `open()` makes to learn whose connection to share; `close()` aborts it. */
  #loginAbort: AbortController | null = null;
  readonly #listeners = new Set<(s: SharedTabStatus) => void>();
  #role: TabRole | null = null;
  #open = false;
  #key: string | null = null;
  #bc: BroadcastChannel | null = null;
  #client: Client | null = null;
  #leaderId: string | null = null;
  #lockName = "";
  /** Aborts this tab's current lock request (or its delayed retry), and a #lead under way. */
  #lockAbort: AbortController | null = null;
  #release: (() => void) | null = null;
  /** open() and close() each start a new one: a stale open() must not close a newer one. */
  #epoch = 0;
  /** Failed takeovers in a row, and when the first of them began (performance.now()); reset once a tab leads. */
  #takeoverFailures = 0;
  #leaderlessSince: number | null = null;
  #ready: { resolve(): void; reject(e: unknown): void } | null = null;
  /** The `open()` under way: a second `open()` waits for it rather than resolving at once. */
  #opening: Promise<void> | null = null;
  /** The `close()` under way: a second `close()`, and an `open()`, wait for it. */
  #closing: Promise<void> | null = null;
  /**
   * A leader tab closing its connection: the calls it runs for followers fail with it, and are not
   * answered, so that the followers send them to the next leader (as calls the leader never got).
   */
  #leaving = false;
  /** This tab's subscriptions. */
  readonly #subs = new Set<string>();
  /** Leader: which tabs want each channel, with when their subscription was confirmed (epoch ms) where known. */
  readonly #wanted = new Map<string, Map<string, number | undefined>>();
  /** Leader: channels subscribed on the connection (or being subscribed). */
  readonly #live = new Map<string, Promise<void>>();
  readonly #pending = new Map<number, Pending>();
  #rid = 0;
  /**
   * Leader: followers' calls it ran, by `<tabId>:<rid>`: the answer once settled, null while
   * running (the newest ANSWERS_KEPT). A follower back from the back/forward cache missed the
   * answers posted while it was away and sends its calls again: one this leader has run is
   * answered again, not run twice (a publish made twice).
   */
  readonly #answered = new Map<string, Wire | null>();
  /** How many times close() was called: an open() restarting a failed tab yields to one called meanwhile. */
  #closeCalls = 0;
  readonly #lastReplay = new Map<string, number>();
  /** Epoch ms at which this tab's subscription of a channel was confirmed. */
  readonly #subscribedAt = new Map<string, number>();
  /**
   * Leader: channels (replay keys) the connection replays from ALL_EVENTS to cover a takeover
   * (see getReplayStart), with the date before which their events are dropped, until the first
   * newer one.
   */
  readonly #dropBefore = new Map<string, number>();
  readonly #buffer: Message[] = [];
  readonly #waiters: Waiter[] = [];
  #failure: Error | null = null;
  /** In the back/forward cache: out of the election until the page is shown again. */
  #suspended = false;
  /** The pagehide / pageshow listeners while open (shared mode). */
  #pageListeners: { hide(ev: Event): void; show(ev: Event): void } | null = null;

  constructor(authenticator: Authenticator, options: SharedTabClientOptions = {}) {
    if (authenticator === null || typeof authenticator !== "object" || typeof authenticator.authenticate !== "function") {
      throw new TypeError("authenticator must be an object with an authenticate() method");
    }
    checkOptionKeys(options, OPTION_KEYS);
    const { shared, replay, database, key, leaderTimeout, onStatus, ...clientOptions } = options;
    if (shared !== undefined && typeof shared !== "boolean") throw new TypeError("shared must be a boolean");
    if (key !== undefined && (typeof key !== "string" || key === "")) throw new TypeError("key must be a non-empty string");
    if (leaderTimeout !== undefined && (typeof leaderTimeout !== "number" || !(leaderTimeout > 0))) throw new TypeError("leaderTimeout must be a positive number of milliseconds");
    if (onStatus !== undefined && typeof onStatus !== "function") throw new TypeError("onStatus must be a function");
    if (replay !== undefined && replay !== ReplayOption.ALL_EVENTS && replay !== ReplayOption.NEW_EVENTS) {
      throw new TypeError("replay must be ReplayOption.ALL_EVENTS or ReplayOption.NEW_EVENTS (the tabs keep their markers in IndexedDB themselves)");
    }
    if (database !== undefined && (typeof database !== "string" || database === "")) throw new TypeError("database must be a non-empty string");
    // The rest goes to the leader's Client: checked now, not at the first open or takeover.
    checkClientOptions(clientOptions);
    this.#storage = new SharedMarkerStorage(database ?? "sfstream-tabs", replay ?? ReplayOption.NEW_EVENTS, {
      seen: (ch) => this.#lastReplay.get(ch),
      subscribedSince: (ch) => this.#subscribedSince(ch),
      dropBefore: (ch, since) => this.#dropBefore.set(ch, since),
    });
    this.authenticator = authenticator;
    this.#clientOptions = clientOptions;
    this.#shared = shared !== false && locks() !== null && typeof BroadcastChannel === "function";
    this.#keyOption = key ?? null;
    this.#leaderTimeout = leaderTimeout ?? 30000;
    this.#connectionTimeout = clientOptions.connectionTimeout === undefined ? 10_000 : clientOptions.connectionTimeout;
    if (onStatus) this.#listeners.add(onStatus);
    this.tabId = typeof crypto !== "undefined" && typeof crypto.randomUUID === "function" ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  }

  /** `"leader"`, `"follower"` or `"standalone"` once open; null before. */
  get role(): TabRole | null {
    return this.#role;
  }
  /** The election key in use (after `open()` in shared mode). */
  get key(): string | null {
    return this.#key;
  }
  /** True before `open()` and after `close()`. */
  get closed(): boolean {
    return !this.#open;
  }
  /** This tab's subscriptions. */
  get subscriptions(): ReadonlySet<string> {
    return new Set(this.#subs);
  }
  /** Messages received by this tab and waiting to be consumed. */
  get pendingCount(): number {
    return this.#buffer.length;
  }
  get hasPendingMessages(): boolean {
    return this.#buffer.length > 0;
  }

  /**
   * Join the election (shared) or connect (standalone). Resolves once this tab leads or follows a
   * leader. A second call while one runs waits for it; on a tab that failed, it starts over (as
   * `close()` then `open()`); after a `close()` not awaited, it starts once that has left.
   */
  open(): Promise<void> {
    if (this.#opening) return this.#opening;
    if (this.#open && this.#failure === null) return Promise.resolve();
    const p = this.#openFresh();
    this.#opening = p;
    return untilSettled(p, () => {
      if (this.#opening === p) this.#opening = null;
    });
  }

  async #openFresh(): Promise<void> {
    if (this.#open) {
      // A failed tab starts over. A close() called while it closes (which waits for this one)
      // leaves the tab closed.
      const closing = this.close();
      const calls = this.#closeCalls;
      await closing;
      if (this.#closeCalls !== calls) throw new ClientInvalidOperation("closed");
    }
    this.#open = true;
    const epoch = ++this.#epoch;
    if (this.#closing) {
      await this.#closing;
      if (this.#epoch !== epoch) throw new ClientInvalidOperation("closed");
    }
    this.#failure = null;
    this.#takeoverFailures = 0;
    this.#leaderlessSince = null;
    if (!this.#shared) {
      try {
        await this.#startClient(null);
      } catch (e) {
        if (this.#epoch === epoch) this.#open = false;
        throw e;
      }
      this.#setRole("standalone");
      return;
    }
    try {
      this.#key = this.#keyOption ?? identityKey(await this.#login());
    } catch (e) {
      if (this.#epoch === epoch) this.#open = false;
      throw e;
    }
    if (this.#epoch !== epoch) throw new ClientInvalidOperation("closed");
    this.#lockName = `sfstream:${this.#key}`;
    let handle: { resolve(): void; reject(e: unknown): void } | null = null;
    const ready = new Promise<void>((resolve, reject) => (handle = { resolve, reject }));
    this.#ready = handle;
    this.#listenToPage();
    this.#join();
    const timer = setTimeout(() => {
      // This open()'s own wait (a later open() has its own).
      handle?.reject(new TransportTimeoutError(`no leader tab answered within ${this.#leaderTimeout} ms`));
      if (this.#ready === handle) this.#ready = null;
    }, this.#leaderTimeout);
    try {
      await ready;
    } catch (e) {
      if (this.#epoch === epoch) await this.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The authenticator's answer, as `Client.open()` bounds it: the login gets a signal, which
   * `close()` aborts (open() then rejects with `ClientInvalidOperation`), and so does
   * `connectionTimeout` (open() then rejects with `AuthenticationError`).
   */
  #login(): ReturnType<Authenticator["authenticate"]> {
    const ac = new AbortController();
    this.#loginAbort = ac;
    const limit = this.#connectionTimeout;
    return withDeadline(
      (signal) => login(this.authenticator, signal),
      limit,
      () => new AuthenticationError(`the authenticator did not answer within connectionTimeout (${limit} ms)`),
      { signal: ac.signal, error: () => new ClientInvalidOperation("the client was closed") },
    ).finally(() => {
      if (this.#loginAbort === ac) this.#loginAbort = null;
    });
  }

  /**
   * Leave: a leader stores its markers, disconnects and hands over; a follower says goodbye. A
   * second call while one runs waits for it.
   */
  close(): Promise<void> {
    this.#closeCalls++;
    if (!this.#open) return this.#closing ?? Promise.resolve();
    const p = this.#closeNow();
    this.#closing = p;
    return untilSettled(p, () => {
      if (this.#closing === p) this.#closing = null;
    });
  }

  async #closeNow(): Promise<void> {
    this.#open = false;
    this.#loginAbort?.abort();
    this.#loginAbort = null;
    this.#suspended = false;
    const epoch = ++this.#epoch;
    // A leader's or standalone tab's own connection reports its `closed`.
    const ownConnection = this.#role === "leader" || this.#role === "standalone";
    if (this.#pageListeners) {
      const g = globalThis as { removeEventListener?: (t: string, f: (ev: Event) => void) => void };
      g.removeEventListener?.("pagehide", this.#pageListeners.hide);
      g.removeEventListener?.("pageshow", this.#pageListeners.show);
      this.#pageListeners = null;
    }
    // What belongs to this session is settled now: an open() called while this tab leaves owns
    // what comes after (it used to be rejected, and its tab left closed, by this close()'s end).
    const ready = this.#ready;
    this.#ready = null;
    ready?.reject(new ClientInvalidOperation("closed"));
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(new ClientInvalidOperation("the client is closed"));
    await this.#leave();
    if (this.#epoch !== epoch) return;
    this.#role = null;
    this.#wakeAll();
    // A follower closes no connection of its own.
    if (!ownConnection) this.#emit({ type: "closed", at: now() });
  }

  /** Subscribe this tab to `channel` (the leader subscribes the connection if no tab had). */
  async subscribe(channel: string): Promise<void> {
    this.#checkChannel(channel);
    this.#requireOpen();
    const had = this.#subs.has(channel);
    this.#subs.add(channel);
    try {
      await this.#call({ op: "sub", channel });
      if (!this.#subscribedAt.has(channel)) this.#subscribedAt.set(channel, Date.now());
    } catch (e) {
      if (!had) this.#subs.delete(channel);
      throw e;
    }
  }

  /** Unsubscribe this tab from `channel` (the connection unsubscribes when no tab wants it). */
  async unsubscribe(channel: string): Promise<void> {
    this.#checkChannel(channel);
    this.#requireOpen();
    this.#subs.delete(channel);
    this.#subscribedAt.delete(channel);
    this.#lastReplay.delete(channel);
    await this.#call({ op: "unsub", channel });
  }

  /** Publish through the connection (generic streaming `/u/...` channels). */
  async publish(channel: string, data: unknown): Promise<Record<string, unknown>> {
    this.#checkChannel(channel);
    this.#requireOpen();
    if (JSON.stringify(data) === undefined) throw new TypeError("data must be JSON-serialisable");
    return (await this.#call({ op: "pub", channel, data })) as Record<string, unknown>;
  }

  /** The next message for this tab's subscriptions. */
  receive(options: ReceiveOptions = {}): Promise<Message> {
    return this.#receive(options, undefined);
  }

  /** `receive()`; `slot` gets the waiter if it has to wait (an iterator's `return()` withdraws it). */
  #receive(options: ReceiveOptions, slot: { waiter: Waiter | null } | undefined): Promise<Message> {
    const bad = receiveOptionsError(options);
    if (bad) return Promise.reject(bad);
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    const next = this.#buffer.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.#open) return Promise.reject(new ClientInvalidOperation("the client is closed and has no pending messages"));
    return waitForMessage(this.#waiters, options.signal, slot);
  }

  /** Remove a waiter not yet served; true if it was waiting. */
  readonly #withdraw = (w: Waiter): boolean => {
    const i = this.#waiters.indexOf(w);
    if (i < 0) return false;
    this.#waiters.splice(i, 1);
    return true;
  };

  /**
   * Iterate over this tab's messages; ends when closed or `signal` aborts. `return()` (a `break`)
   * while a step waits withdraws it: the next message goes to the next reader.
   */
  messages(options: ReceiveOptions = {}): AsyncGenerator<Message, void, undefined> {
    const bad = receiveOptionsError(options);
    if (bad) return iterateMessages(() => Promise.reject(bad), {});
    return withdrawableIterator((slot) => this.#receive(options, slot), this.#withdraw, options.signal);
  }

  /**
   * Iterate over this tab's messages in batches: each step yields every message buffered (at most
   * `maxSize`), waiting for one when none is. Ends as {@link SharedTabClient.messages} does.
   */
  batches(options: BatchOptions = {}): AsyncGenerator<Message[], void, undefined> {
    const bad = batchOptionsError(options);
    if (bad) return iterateMessages<Message[]>(() => Promise.reject(bad), {});
    const max = options.maxSize ?? Infinity;
    return withdrawableIterator(
      (slot, ended) =>
        this.#receive(options, slot).then((first) => {
          const out = [first];
          // After return(), nothing more is taken out of the buffer for a batch nobody reads.
          while (!ended() && out.length < max && this.#buffer.length > 0) out.push(this.#buffer.shift() as Message);
          return out;
        }),
      this.#withdraw,
      options.signal,
    );
  }

  [Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined> {
    return this.messages();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Listen to status events; returns a function that removes the listener. */
  onStatus(listener: (s: SharedTabStatus) => void): () => void {
    if (typeof listener !== "function") throw new TypeError("listener must be a function");
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // ---- internals

  #checkChannel(channel: unknown): asserts channel is string {
    if (typeof channel !== "string" || channel.length === 0) throw new TypeError("channel must be a non-empty string");
  }

  #requireOpen(): void {
    if (!this.#open) throw new ClientInvalidOperation("open() the client first");
  }

  #post(w: Wire): void {
    try {
      this.#bc?.postMessage(w);
    } catch {
      // A closed channel: the tab is going away.
    }
  }

  #emit(s: SharedTabStatus): void {
    // The listeners registered when the event happened: one added by a listener hears only later
    // events (a Set's iterator would visit it now, and a listener that re-registers would loop).
    for (const l of [...this.#listeners]) {
      try {
        l(s);
      } catch {
        // A throwing listener must not break the tab.
      }
    }
  }

  #subscribeFailed(channel: string, e: unknown): void {
    const error = e instanceof Error ? e : new Error(String(e));
    const s: SharedTabStatus = { type: "subscribeFailed", at: now(), channel, error };
    this.#emit(s);
    this.#post({ t: "status", s: statusToWire(s) });
  }

  #setRole(role: TabRole): void {
    if (this.#role === role) return;
    this.#role = role;
    this.#emit({ type: "role", at: now(), role });
  }

  /** This tab's message sink: its own subscriptions only, each event once. */
  #deliver(m: Message): void {
    if (!this.#open) return;
    const ch = typeof m.channel === "string" ? m.channel : "";
    let mine = false;
    for (const s of this.#subs) if (s === ch || baseChannel(s) === ch) mine = true;
    if (!mine) return;
    const id = replayIdOf(m);
    if (id !== null) {
      const last = this.#lastReplay.get(ch);
      if (last !== undefined && id <= last) return;
      this.#lastReplay.set(ch, id);
    }
    const w = this.#waiters.shift();
    if (w) w.resolve(m);
    else this.#buffer.push(m);
  }

  /**
   * The connection failed for good (the leader's, or this tab's takeovers): receive() rejects once
   * the buffer is drained, calls reject, and the tab leaves the election (a failed leader releases
   * the lock, so that a tab opened again can lead).
   */
  #fail(e: Error): void {
    this.#failure = e;
    this.#lockAbort?.abort();
    this.#lockAbort = null;
    this.#release?.();
    this.#release = null;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
    this.#wakeAll();
  }

  #wakeAll(): void {
    if (this.#buffer.length > 0) return;
    const err = this.#failure ?? new ClientInvalidOperation("the client is closed and has no pending messages");
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }

  /**
   * Open the real connection (leader or standalone) and pump its messages. If close() ran
   * meanwhile (or `signal` aborted), the new connection is closed again and this throws.
   */
  async #startClient(signal: AbortSignal | null): Promise<void> {
    const client = new Client(this.authenticator, {
      ...this.#clientOptions,
      replay: this.#storage,
      onStatus: (s) => {
        // A connection that never led (a takeover that failed, or was closed while it
        // connected) closing is not this tab closing: close() reports that once.
        if (s.type === "closed" && this.#role !== "leader" && this.#role !== "standalone") return;
        this.#emit(s);
        // Not its `closed`: the leader's connection closing is a handover to the followers.
        if (this.#role === "leader" && s.type !== "closed") this.#post({ t: "status", s: statusToWire(s) });
      },
    });
    this.#client = client;
    try {
      await client.open();
    } catch (e) {
      if (this.#client === client) this.#client = null;
      await client.close().catch(() => {});
      throw e;
    }
    if (this.#client !== client || signal?.aborted === true) {
      // close() ran meanwhile (from a status listener, say): nobody else would close this one.
      if (this.#client === client) this.#client = null;
      await client.close().catch(() => {});
      throw new ClientInvalidOperation("the client was closed while it connected");
    }
    void (async () => {
      try {
        for await (const m of client) {
          if (this.#predatesTakeover(m)) continue;
          if (this.#role === "leader") this.#post({ t: "msg", m });
          this.#deliver(m);
        }
      } catch (e) {
        if (this.#client !== client) return;
        const err = e instanceof Error ? e : new ClientError(String(e));
        if (this.#role === "leader") this.#post({ t: "failed", error: toWire(err) });
        this.#fail(err);
      }
    })();
  }

  /**
   * Leader: an event of a channel replayed from ALL_EVENTS to cover a takeover, dated before the
   * subscriptions it covers (see getReplayStart). The first newer event ends the filter.
   */
  #predatesTakeover(m: Message): boolean {
    const ch = typeof m.channel === "string" ? m.channel : "";
    const before = this.#dropBefore.get(ch);
    if (before === undefined || replayIdOf(m) === null) return false;
    const date = eventDate(m);
    if (date !== null && date < before) return true;
    this.#dropBefore.delete(ch);
    return false;
  }

  /**
   * Leader: when the subscriptions of `channel` (a replay key) were confirmed, the earliest: this
   * tab's own and those the followers reported to it (a channel only a follower wants counts too).
   */
  #subscribedSince(channel: string): number | undefined {
    let since: number | undefined;
    const consider = (at: number | undefined) => {
      if (at !== undefined && (since === undefined || at < since)) since = at;
    };
    for (const [ch, at] of this.#subscribedAt) if (baseChannel(ch) === channel) consider(at);
    for (const [ch, tabs] of this.#wanted) if (baseChannel(ch) === channel) for (const at of tabs.values()) consider(at);
    return since;
  }

  async #stopClient(): Promise<void> {
    this.#dropBefore.clear();
    const c = this.#client;
    this.#client = null;
    if (c) await c.close().catch(() => {});
  }

  /** Join the election: listen to the other tabs, queue for the lock, ask who leads. */
  #join(): void {
    const bc = new BroadcastChannel(this.#lockName);
    this.#bc = bc;
    bc.onmessage = (ev: MessageEvent) => this.#onWire(ev.data as Wire);
    this.#queueForLock(0);
    this.#post({ t: "hello", from: this.tabId });
  }

  /**
   * Leave the election (close(), or the page going into the back/forward cache): a leader stores
   * its markers, disconnects and hands the lock over; a follower says goodbye, so that the leader
   * unsubscribes what only this tab wanted.
   */
  async #leave(suspending = false): Promise<void> {
    const wasLeader = this.#role === "leader";
    const bc = this.#bc;
    const release = this.#release;
    this.#release = null;
    this.#lockAbort?.abort();
    this.#lockAbort = null;
    this.#answered.clear();
    // Into the back/forward cache: the browser freezes the page tens of ms after pagehide, before
    // its connection has closed, and a lock still held would leave the other tabs without a
    // leader until the page is evicted. The lock goes at once: the next leader may connect while
    // this one disconnects.
    if (suspending) release?.();
    // At once, not after an await: the page may be going away.
    if (!wasLeader && bc) this.#post({ t: "bye", from: this.tabId });
    this.#wanted.clear();
    this.#live.clear();
    this.#leaderId = null;
    // Calls not answered yet go to whichever tab leads when (and if) this one joins again.
    for (const p of this.#pending.values()) p.to = null;
    // The connection's last messages still go out (over `bc`) while it closes.
    this.#leaving = wasLeader;
    try {
      await this.#stopClient();
    } finally {
      this.#leaving = false;
    }
    if (wasLeader) this.#post({ t: "resign", id: this.tabId });
    if (!suspending) release?.();
    if (bc) bc.onmessage = null;
    bc?.close();
    if (this.#bc === bc) this.#bc = null;
  }

  /**
   * pagehide: a page that is unloaded closes; one that goes into the back/forward cache (`persisted`)
   * leaves the election and joins it again on pageshow, so that it neither holds the connection
   * while frozen nor ends up closed when the user comes back.
   */
  #listenToPage(): void {
    const g = globalThis as { addEventListener?: (t: string, f: (ev: Event) => void) => void };
    if (this.#pageListeners || typeof g.addEventListener !== "function") return;
    const persisted = (ev: Event) => (ev as { persisted?: unknown }).persisted === true;
    this.#pageListeners = {
      hide: (ev) => {
        if (persisted(ev)) this.#suspend();
        else void this.close();
      },
      show: (ev) => {
        if (persisted(ev)) this.#resume();
      },
    };
    g.addEventListener("pagehide", this.#pageListeners.hide);
    g.addEventListener("pageshow", this.#pageListeners.show);
  }

  #suspend(): void {
    if (!this.#open || this.#suspended || this.#failure) return;
    this.#suspended = true;
    void this.#leave(true).then(() => {
      if (this.#suspended && this.#role === "leader") this.#setRole("follower");
    });
  }

  #resume(): void {
    if (!this.#open || !this.#suspended || this.#failure) return;
    this.#suspended = false;
    if (this.#role === "leader") this.#setRole("follower");
    this.#join();
  }

  /**
   * Ask for the leader lock (after `delay` ms). The holder leads until it leaves; a tab that cannot
   * connect hands the lock on (see #takeoverFailed).
   */
  #queueForLock(delay: number): void {
    const abort = new AbortController();
    this.#lockAbort = abort;
    const { signal } = abort;
    const name = this.#lockName;
    const request = () => {
      if (signal.aborted) return;
      (locks() as LockManagerLike)
        .request(name, { signal }, async () => {
          if (signal.aborted || !this.#open || this.#failure) return;
          let release!: () => void;
          const held = new Promise<void>((r) => (release = r));
          this.#release = release;
          if (await this.#lead(signal)) await held;
          if (this.#release === release) this.#release = null;
        })
        .catch(() => {
          // Aborted while waiting (close()): nothing to do.
        });
    };
    if (delay <= 0) request();
    else {
      const timer = setTimeout(request, delay);
      signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
    }
  }

  /**
   * This tab holds the lock: connect, then take the leader role, subscribe what the tabs want and
   * announce. The role changes only once connected, so until then this tab neither answers `hello`
   * nor ignores another leader. False if it did not lead (failed to connect, or closed meanwhile).
   */
  async #lead(signal: AbortSignal): Promise<boolean> {
    const startedAt = now();
    try {
      await this.#startClient(signal);
    } catch (e) {
      if (!signal.aborted && this.#open) this.#takeoverFailed(e instanceof Error ? e : new ClientError(String(e)), startedAt);
      return false;
    }
    this.#leaderId = this.tabId;
    this.#takeoverFailures = 0;
    this.#leaderlessSince = null;
    this.#answered.clear();
    this.#setRole("leader");
    // A role listener may have closed the tab: close() closed the connection already.
    if (signal.aborted || !this.#open) return false;
    for (const ch of this.#subs) this.#want(ch, this.tabId, this.#subscribedAt.get(ch));
    await Promise.all([...this.#subs].map((ch) => this.#ensure(ch).catch((e: unknown) => this.#subscribeFailed(ch, e))));
    if (signal.aborted || !this.#open) return false;
    this.#post({ t: "leader", id: this.tabId });
    // Our own calls made while the lock was pending.
    for (const [rid, p] of this.#pending) {
      this.#pending.delete(rid);
      this.#run(p.call, this.tabId).then(p.resolve, p.reject);
    }
    this.#ready?.resolve();
    this.#ready = null;
    return true;
  }

  /**
   * This tab got the lock but could not connect. During open(), open() fails with the error (as
   * Client.open() would). In a takeover the tab stays a follower: it reports `takeoverFailed`,
   * hands the lock on (to the next tab waiting, if any) and asks for it again after a back-off,
   * following any tab that leads meanwhile. After `connectionTimeout` of failed takeovers with no
   * leader, it fails with the last error, as a Client that cannot reconnect does.
   */
  #takeoverFailed(error: Error, startedAt: number): void {
    this.#leaderId = null;
    if (this.#ready) {
      this.#ready.reject(error);
      this.#ready = null;
      return;
    }
    this.#takeoverFailures++;
    this.#leaderlessSince ??= startedAt;
    const elapsed = now() - this.#leaderlessSince;
    const limit = this.#connectionTimeout;
    if (limit !== null && elapsed >= limit) {
      // Recorded before the status: a `failed` listener may open the tab again.
      this.#fail(error);
      this.#emit({ type: "failed", at: now(), error });
      return;
    }
    let delay = Math.min(TAKEOVER_RETRY_MS * 2 ** (this.#takeoverFailures - 1), TAKEOVER_RETRY_MAX_MS);
    if (limit !== null) delay = Math.max(0, Math.min(delay, limit - elapsed));
    this.#emit({ type: "takeoverFailed", at: now(), error, attempt: this.#takeoverFailures, delay: Math.round(delay) });
    this.#queueForLock(delay);
  }

  #want(channel: string, tab: string, since?: number): void {
    let tabs = this.#wanted.get(channel);
    if (!tabs) this.#wanted.set(channel, (tabs = new Map()));
    const known = tabs.get(tab);
    tabs.set(tab, known === undefined || (since !== undefined && since < known) ? since : known);
    // A takeover replay already under way on the channel covers this subscription too.
    const key = baseChannel(channel);
    const before = this.#dropBefore.get(key);
    if (since !== undefined && before !== undefined && since - CLOCK_SKEW_MS < before) this.#dropBefore.set(key, since - CLOCK_SKEW_MS);
  }

  /** Leader: subscribe the connection to `channel` once. */
  #ensure(channel: string): Promise<void> {
    let p = this.#live.get(channel);
    if (!p) {
      const client = this.#client;
      if (!client) return Promise.reject(new ClientInvalidOperation("no connection"));
      p = client.subscribe(channel);
      this.#live.set(channel, p);
      p.catch(() => {
        if (this.#live.get(channel) === p) this.#live.delete(channel);
      });
    }
    return p;
  }

  /** Leader: perform a tab's call on the connection. */
  async #run(call: Op, tab: string): Promise<unknown> {
    const client = this.#client;
    if (!client) throw new ClientInvalidOperation("no connection");
    switch (call.op) {
      case "sub":
        this.#want(call.channel, tab);
        try {
          await this.#ensure(call.channel);
        } catch (e) {
          this.#wanted.get(call.channel)?.delete(tab);
          throw e;
        }
        return null;
      case "unsub": {
        const tabs = this.#wanted.get(call.channel);
        tabs?.delete(tab);
        if (tabs && tabs.size === 0 && this.#live.has(call.channel)) {
          this.#wanted.delete(call.channel);
          this.#live.delete(call.channel);
          this.#dropBefore.delete(baseChannel(call.channel));
          await client.unsubscribe(call.channel);
        }
        return null;
      }
      case "pub":
        return client.publish(call.channel, call.data);
    }
  }

  /** A call from this tab: run it (leader, standalone) or send it to the leader. */
  #call(call: Op): Promise<unknown> {
    if (this.#failure) return Promise.reject(new ClientInvalidOperation("the connection failed: close() and open() the client again"));
    if (this.#role === "leader" || this.#role === "standalone") return this.#run(call, this.tabId);
    return new Promise((resolve, reject) => {
      const rid = ++this.#rid;
      const to = this.#leaderId;
      this.#pending.set(rid, { call, to, resolve, reject });
      if (to !== null) this.#post({ t: "rpc", from: this.tabId, to, rid, call });
    });
  }

  #onWire(w: Wire): void {
    // A failed tab has left the election: it neither follows nor answers.
    if (!this.#open || this.#suspended || this.#failure || w === null || typeof w !== "object") return;
    const leading = this.#role === "leader";
    switch (w.t) {
      case "hello":
        if (leading) this.#post({ t: "leader", id: this.tabId });
        break;
      case "leader":
        if (leading || w.id === this.tabId) break;
        this.#takeoverFailures = 0;
        this.#leaderlessSince = null;
        if (w.id === this.#leaderId && this.#role === "follower") {
          // The leader we follow, announcing itself again (a new tab said hello): it has our
          // subscriptions and our calls already; sending a call again would run it twice.
          this.#ready?.resolve();
          this.#ready = null;
          break;
        }
        this.#leaderId = w.id;
        const epoch = this.#epoch;
        this.#setRole("follower");
        // A role listener closed (or reopened) the tab: this session sends nothing more.
        if (this.#epoch !== epoch) break;
        if (this.#subs.size > 0) {
          // With when each subscription was confirmed: the new leader replays a channel without
          // marker from then (a channel only this tab wants too), not from its own start.
          const since: Record<string, number> = {};
          for (const ch of this.#subs) {
            const at = this.#subscribedAt.get(ch);
            if (at !== undefined) since[ch] = at;
          }
          this.#post({ t: "subs", from: this.tabId, to: w.id, channels: [...this.#subs], since });
        }
        // Calls not sent yet, or sent to a leader that has gone: send them to the new one.
        for (const [rid, p] of this.#pending) {
          if (p.to === w.id) continue;
          p.to = w.id;
          this.#post({ t: "rpc", from: this.tabId, to: w.id, rid, call: p.call });
        }
        this.#ready?.resolve();
        this.#ready = null;
        break;
      case "resign":
        if (this.#leaderId === w.id) this.#leaderId = null;
        // Calls it had not answered go to the next leader (even if that is the same tab again).
        for (const p of this.#pending.values()) if (p.to === w.id) p.to = null;
        break;
      case "subs":
        if (leading && w.to === this.tabId) {
          for (const ch of w.channels) {
            const at = w.since?.[ch];
            this.#want(ch, w.from, typeof at === "number" && Number.isFinite(at) ? at : undefined);
            this.#run({ op: "sub", channel: ch }, w.from).catch((e: unknown) => {
              if (!this.#leaving) this.#subscribeFailed(ch, e);
            });
          }
        }
        break;
      case "bye":
        if (leading) {
          for (const [ch, tabs] of this.#wanted) {
            if (tabs.delete(w.from) && tabs.size === 0) this.#run({ op: "unsub", channel: ch }, w.from).catch(() => {});
          }
        }
        break;
      case "rpc":
        if (leading && w.to === this.tabId) {
          const key = `${w.from}:${w.rid}`;
          if (this.#answered.has(key)) {
            // Sent again (its tab was in the back/forward cache): the answer again, or, while it
            // runs, the answer when it comes.
            const ack = this.#answered.get(key);
            if (ack) this.#post(ack);
            break;
          }
          this.#answered.set(key, null);
          if (this.#answered.size > ANSWERS_KEPT) this.#answered.delete(this.#answered.keys().next().value as string);
          const answer = (ack: Wire) => {
            if (this.#answered.has(key)) this.#answered.set(key, ack);
            this.#post(ack);
          };
          this.#run(w.call, w.from).then(
            (value) => answer({ t: "ack", to: w.from, rid: w.rid, ok: true, value }),
            (e) => {
              // Failed because this tab is handing over: the follower sends it to the next leader.
              if (this.#leaving) this.#answered.delete(key);
              else answer({ t: "ack", to: w.from, rid: w.rid, ok: false, error: toWire(e) });
            },
          );
        }
        break;
      case "ack": {
        if (w.to !== this.tabId) break;
        const p = this.#pending.get(w.rid);
        if (!p) break;
        this.#pending.delete(w.rid);
        if (w.ok) p.resolve(w.value);
        else p.reject(fromWire(w.error ?? { name: "ClientError", message: "the leader tab failed the call" }));
        break;
      }
      case "msg":
        if (!leading) this.#deliver(w.m);
        break;
      case "status":
        if (!leading) this.#emit(statusFromWire(w.s));
        break;
      case "failed":
        if (!leading) this.#fail(fromWire(w.error));
        break;
    }
  }
}
