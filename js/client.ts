/**
 * The streaming client.
 * @module
 */

import { WasmClient } from "./wasm/sfstream.js";
import type { Authenticator, PasswordAuthenticatorOptions } from "./auth.js";
import { DEFAULT_API_VERSION, PasswordAuthenticator } from "./auth.js";
import { ClientInvalidOperation, fromWasmError, loginFailure } from "./errors.js";
import type { ReplayOption } from "./replay.js";
import { CorruptReplayMarkerError, ReplayMarker, ReplayOption as ReplayOptions, ReplayMarkerStorage } from "./replay.js";
import { toStorage, type ReplayConfig } from "./storage.js";
import { checkOptionKeys } from "./options.js";

/** A message received from Salesforce: the Bayeux message exactly as sent. */
export interface Message<Data = unknown> {
  /** The channel, e.g. `/topic/InvoiceStatementUpdates` or `/event/Low_Ink__e`. */
  channel: string;
  /** The event: `{ event: { replayId, createdDate, ... }, sobject | payload, schema? }`. */
  data: Data;
  clientId?: string;
  [field: string]: unknown;
}

/** Why the client is reconnecting. */
export type ReconnectReason =
  | "networkError"
  | "timeout"
  | "unknownClient"
  | "serverDisconnect"
  | "multipleClients"
  | "authenticationInvalid"
  | "serverBusy"
  | "bufferFull"
  | "malformedResponse"
  | `http${number}`;

/** Counters reported with `connected` status events and by {@link Client.stats}. */
export interface ClientStats {
  /** Handshake requests sent (retries of a refused or failed handshake included). */
  handshakes: number;
  /** `/meta/connect` requests sent. */
  connects: number;
  /** Long-polls retried within a session after one failed (a handshake retry is not one). */
  reconnects: number;
  /** New sessions after the first (the server lost the session, a long-poll reply may have been lost, a re-login). */
  rehandshakes: number;
  /** Successful logins after the first. */
  reauthentications: number;
  /** Subscribes that fell back to `replayFallback`. */
  replayFallbacks: number;
  /** Events received from the server for subscribed channels (buffered or already taken). */
  eventsDelivered: number;
  /** `performance.now()` time of the last successful connect, or null. */
  lastConnectAt: number | null;
}

/** Status events: what the connection is doing. Never contains a token, secret or password. */
export type StatusEvent =
  | { type: "connecting"; at: number }
  | { type: "connected"; at: number; stats: ClientStats }
  | { type: "reconnecting"; at: number; reason: ReconnectReason; attempt: number; delay: number }
  | { type: "rehandshake"; at: number; reason: ReconnectReason }
  | { type: "reauthenticated"; at: number }
  | { type: "replayFallback"; at: number; channel: string; replayId: number; fallback: number; reason: "replayRejected" | "retention" }
  | { type: "storageError"; at: number; channel: string; message: string }
  | { type: "failed"; at: number; error: Error }
  | { type: "closed"; at: number };

/** A logger hook: receives one line per status event. */
export type Logger = (level: "debug" | "info" | "warn" | "error", message: string, status: StatusEvent) => void;

/** Options of {@link Client}. Durations are in milliseconds. */
export interface ClientOptions {
  /**
   * Replay: `ReplayOption.NEW_EVENTS` (default) or `ReplayOption.ALL_EVENTS`, a
   * {@link ReplayMarkerStorage}, or a Map-like object (wrapped in `MappingStorage`).
   */
  replay?: ReplayConfig | undefined;
  /** Replay option to fall back to when Salesforce rejects a stored replay id (outside retention). */
  replayFallback?: ReplayOption | null | undefined;
  /** How long to try to re-establish a lost connection before `receive()` raises `TransportTimeoutError`. Default 10000 ms; null = forever. */
  connectionTimeout?: number | null | undefined;
  /**
   * Most messages to prefetch before polling pauses: those waiting in the buffer, not those taken
   * (a `batches()` batch in hand, messages not acknowledged). Default 100; 0 or less = unbounded.
   */
  maxPendingCount?: number | undefined;
  /** CometD API version. Default: the authenticator's, else "62.0". */
  apiVersion?: string | undefined;
  /** Extra time allowed on top of the server's 110 s hold before a long-poll counts as lost. Default 10000 ms. */
  networkAllowance?: number | undefined;
  /**
   * When a message counts as consumed, so that its channel's replay marker may advance:
   * `"automatic"` (default) when the application asks for the next message (the iterator moves
   * past it) or closes the client; `"manual"` only through {@link Client.acknowledge}.
   */
  ackPolicy?: "automatic" | "manual" | undefined;
  /**
   * JSON parser for responses (the seed's `json_loads`), e.g. a faster or a BigInt-preserving
   * one. Default: the runtime's own (`response.json()`).
   */
  jsonParse?: ((text: string) => unknown) | undefined;
  /** JSON serialiser for published data (the seed's `json_dumps`). Default `JSON.stringify`. */
  jsonStringify?: ((value: unknown) => string) | undefined;
  /** Called for every status event. */
  onStatus?: ((status: StatusEvent) => void) | undefined;
  /** Optional logger. */
  logger?: Logger | undefined;
}

/**
 * Iterate `receive(options)` until the source is closed (`ClientInvalidOperation`) or `signal`
 * aborts, both ending quietly; other errors are thrown. Shared by `Client` and `SharedTabClient`.
 * @internal
 */
export async function* iterateMessages<T = Message>(
  receive: (options: ReceiveOptions) => Promise<T>,
  options: ReceiveOptions,
): AsyncGenerator<T, void, undefined> {
  for (;;) {
    let m: T;
    try {
      m = await receive(options);
    } catch (e) {
      if (options.signal?.aborted && e === options.signal.reason) return;
      if (e instanceof ClientInvalidOperation) return;
      throw e;
    }
    yield m;
  }
}

/**
 * An async iterator from its `next()` and its `return()` (`ret`), which `throw()` and
 * `[Symbol.asyncDispose]()` call too.
 * @internal
 */
export function iteratorOf<T>(
  next: () => Promise<IteratorResult<T, void>>,
  ret: () => Promise<IteratorResult<T, void>>,
): AsyncGenerator<T, void, undefined> {
  const it: AsyncGenerator<T, void, undefined> = {
    next,
    return: ret,
    throw: (e: unknown): Promise<IteratorResult<T, void>> => {
      void ret();
      return Promise.reject(e);
    },
    [Symbol.asyncIterator]: () => it,
    [Symbol.asyncDispose]: async (): Promise<void> => {
      await ret();
    },
  };
  return it;
}

/** Whether a waiting step's rejection ends an iteration quietly: closed and drained, or `signal` aborted. */
function endsQuietly(e: unknown, signal: AbortSignal | undefined): boolean {
  return e instanceof ClientInvalidOperation || (signal?.aborted === true && e === signal.reason);
}

/** End every waiting step of an iterator whose `return()` was called: no message goes to them. */
function withdrawAll(waiting: Set<{ waiter: Waiter | null }>, withdraw: (w: Waiter) => boolean): void {
  for (const slot of waiting) {
    const w = slot.waiter;
    if (w !== null && withdraw(w)) w.reject(new ClientInvalidOperation("the iteration has ended"));
  }
  waiting.clear();
}

/**
 * An async iterator whose `return()` withdraws its waiting steps: an async generator would run them
 * to the next message, which its caller, gone, would never see. `step(slot, ended)` makes a step's
 * value, putting its waiter in `slot` while it waits; `ended()` tells it the iteration has ended
 * meanwhile (take nothing more then). `withdraw(w)` removes a waiter not yet served (true if it
 * was). Ends quietly on ClientInvalidOperation (closed and drained) or when `signal` aborts.
 * `SharedTabClient`'s iterators; `Client` has its own, tuned for its per-message path.
 * @internal
 */
export function withdrawableIterator<T>(
  step: (slot: { waiter: Waiter | null }, ended: () => boolean) => Promise<T>,
  withdraw: (w: Waiter) => boolean,
  signal: AbortSignal | undefined,
): AsyncGenerator<T, void, undefined> {
  let done = false;
  /** The steps not settled yet (more than one when `next()` is called without awaiting). */
  const waiting = new Set<{ waiter: Waiter | null }>();
  const ended = (): boolean => done;
  const end = (): IteratorResult<T, void> => {
    done = true;
    return { value: undefined, done: true };
  };
  const ret = (): Promise<IteratorResult<T, void>> => {
    const r = end();
    withdrawAll(waiting, withdraw);
    return Promise.resolve(r);
  };
  return iteratorOf((): Promise<IteratorResult<T, void>> => {
    if (done) return Promise.resolve({ value: undefined, done: true });
    const slot: { waiter: Waiter | null } = { waiter: null };
    waiting.add(slot);
    return step(slot, ended).then(
      (value): IteratorResult<T, void> => {
        waiting.delete(slot);
        return { value, done: false };
      },
      (e: unknown) => {
        waiting.delete(slot);
        if (endsQuietly(e, signal)) return end();
        done = true;
        throw e;
      },
    );
  }, ret);
}

/** Options of {@link Client.receive}. */
export interface ReceiveOptions {
  /** Abort waiting; the promise rejects with `signal.reason` and no message is lost. */
  signal?: AbortSignal | undefined;
}

/** Options of {@link Client.batches}. */
export interface BatchOptions extends ReceiveOptions {
  /** Most messages in one batch (a positive integer). Default: every message buffered. */
  maxSize?: number | undefined;
}

/**
 * Why `options` are not valid {@link BatchOptions}, or null.
 * @internal
 */
export function batchOptionsError(options: unknown): TypeError | null {
  const bad = receiveOptionsError(options);
  if (bad) return bad;
  const maxSize: unknown = (options as BatchOptions).maxSize;
  if (maxSize !== undefined && (typeof maxSize !== "number" || !Number.isInteger(maxSize) || maxSize < 1)) {
    return new TypeError("maxSize must be an integer >= 1");
  }
  return null;
}

/**
 * A consumer waiting in `receive()`.
 * @internal
 */
export interface Waiter {
  resolve(m: Message): void;
  reject(e: unknown): void;
}

/**
 * What is wrong with the options of `receive()`, or null. Shared by `Client` and `SharedTabClient`.
 * @internal
 */
export function receiveOptionsError(options: unknown): TypeError | null {
  if (options === null || typeof options !== "object") return new TypeError("options must be an object");
  const signal: unknown = (options as ReceiveOptions).signal;
  if (signal !== undefined && !(typeof signal === "object" && signal !== null && "aborted" in signal)) {
    return new TypeError("signal must be an AbortSignal");
  }
  return null;
}

/**
 * Wait for the next message: a waiter joins `waiters` (its owner settles it) until `signal`
 * aborts, which takes it out again, so that no message is handed to a consumer that left.
 * Shared by `Client` and `SharedTabClient`.
 * @internal
 */
export function waitForMessage(waiters: Waiter[], signal: AbortSignal | undefined, slot?: { waiter: Waiter | null }): Promise<Message> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<Message>((resolve, reject) => {
    const onAbort = () => {
      const i = waiters.indexOf(w);
      if (i >= 0) waiters.splice(i, 1);
      reject(signal?.reason);
    };
    const w: Waiter = {
      resolve: (m) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(m);
      },
      reject: (e) => {
        signal?.removeEventListener("abort", onAbort);
        reject(e);
      },
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    waiters.push(w);
    if (slot) slot.waiter = w;
  });
}

/**
 * The authenticator's answer. A failure that is not one of the package's errors (a custom
 * authenticator's own) becomes an `AuthenticationError` with it as the cause, so that a failed
 * login raises that class whether it was `open()`'s or a re-login's. Shared with `SharedTabClient`.
 * @internal
 */
export async function login(authenticator: Authenticator, signal: AbortSignal | undefined): ReturnType<Authenticator["authenticate"]> {
  try {
    return await authenticator.authenticate(signal);
  } catch (e) {
    throw loginFailure("the authenticator failed", e);
  }
}

/** While messages are buffered, consumption is reported to the core every this many messages. */
const REPORT_EVERY = 256;
/** ... and at least this often (ms). */
const REPORT_INTERVAL_MS = 100;

/** The keys of {@link ClientOptions}. @internal */
export const CLIENT_OPTION_KEYS = ["replay", "replayFallback", "connectionTimeout", "maxPendingCount", "apiVersion", "networkAllowance", "ackPolicy", "jsonParse", "jsonStringify", "onStatus", "logger"] as const;

/**
 * Check `Client`'s options: a `TypeError` naming the first unknown or invalid one (`replay` is
 * checked where it is read). Shared with `SharedTabClient`, which passes most of them on.
 * @internal
 */
export function checkClientOptions(options: ClientOptions): void {
  checkOptionKeys(options, CLIENT_OPTION_KEYS);
  const { replayFallback, connectionTimeout, maxPendingCount, networkAllowance, onStatus, logger } = options;
  if (replayFallback !== undefined && replayFallback !== null && replayFallback !== ReplayOptions.ALL_EVENTS && replayFallback !== ReplayOptions.NEW_EVENTS) {
    throw new TypeError("replayFallback must be ReplayOption.ALL_EVENTS, ReplayOption.NEW_EVENTS or null");
  }
  if (connectionTimeout !== undefined && connectionTimeout !== null && (typeof connectionTimeout !== "number" || !Number.isFinite(connectionTimeout) || connectionTimeout < 0)) {
    throw new TypeError("connectionTimeout must be a number of milliseconds >= 0, or null to wait forever");
  }
  if (maxPendingCount !== undefined && (typeof maxPendingCount !== "number" || !Number.isInteger(maxPendingCount))) {
    throw new TypeError("maxPendingCount must be an integer (0 or less means unbounded)");
  }
  if (networkAllowance !== undefined && (typeof networkAllowance !== "number" || !Number.isFinite(networkAllowance) || networkAllowance < 0)) {
    throw new TypeError("networkAllowance must be a number of milliseconds >= 0");
  }
  if (onStatus !== undefined && typeof onStatus !== "function") throw new TypeError("onStatus must be a function");
  if (options.jsonParse !== undefined && typeof options.jsonParse !== "function") throw new TypeError("jsonParse must be a function");
  if (options.jsonStringify !== undefined && typeof options.jsonStringify !== "function") throw new TypeError("jsonStringify must be a function");
  if (options.ackPolicy !== undefined && options.ackPolicy !== "automatic" && options.ackPolicy !== "manual") {
    throw new TypeError('ackPolicy must be "automatic" or "manual"');
  }
  if (logger !== undefined && typeof logger !== "function") throw new TypeError("logger must be a function");
  if (options.apiVersion !== undefined && (typeof options.apiVersion !== "string" || !/^\d{2,3}\.0$/.test(options.apiVersion) || Number(options.apiVersion) < 37)) {
    throw new TypeError('apiVersion must be a string like "62.0" (37.0 or later)');
  }
}

function checkChannel(channel: unknown): string {
  if (typeof channel !== "string" || channel.length === 0) throw new TypeError("channel must be a non-empty string");
  return channel;
}

function levelOf(s: StatusEvent): "debug" | "info" | "warn" | "error" {
  switch (s.type) {
    case "failed":
    case "storageError":
      return "error";
    case "reconnecting":
    case "rehandshake":
    case "replayFallback":
      return "warn";
    case "connected":
    case "closed":
    case "reauthenticated":
      return "info";
    default:
      return "debug";
  }
}

function describe(s: StatusEvent): string {
  switch (s.type) {
    case "reconnecting":
      return `reconnecting (${s.reason}), attempt ${s.attempt}, in ${s.delay} ms`;
    case "rehandshake":
      return `re-handshaking (${s.reason})`;
    case "replayFallback":
      return `replay id ${s.replayId} of ${s.channel} not usable (${s.reason}); falling back to ${s.fallback}`;
    case "storageError":
      return `replay storage error on ${s.channel}: ${s.message}`;
    case "failed":
      return `failed: ${s.error.message}`;
    default:
      return s.type;
  }
}

/**
 * Every client from `open()` until `close()` (or until an `open()` fails): what keeps an open
 * client, and the application's `for await` loop over it, alive when the application holds no
 * reference to it, as an open socket keeps its owner. The shell reaches its client only weakly,
 * so a client that is closed, or never opened, is collected once the application drops it.
 */
const OPEN_CLIENTS = new Set<Client>();

/**
 * A weak reference to `o`; a strong one where the runtime has no `WeakRef` (Workers before the
 * 2025-05-05 compatibility date), where a client is then never collected. A function of its own:
 * a closure over `this` in the constructor would put `this` in the context every callback made
 * there shares, and hold the client strongly after all.
 */
function weakRefTo<T extends object>(o: T): { deref(): T | undefined } {
  return typeof WeakRef === "function" ? new WeakRef(o) : { deref: () => o };
}

/**
 * A Salesforce Streaming API client.
 *
 * ```ts
 * await using client = new Client(authenticator);
 * await client.open();
 * await client.subscribe("/topic/one");
 * for await (const message of client) console.log(message.channel, message.data);
 * ```
 *
 * Prefetching: once open, the client long-polls in the background and buffers up to
 * `maxPendingCount` messages. Breaking out of `for await` ends that loop only: the client stays
 * open (close it, or let `await using` do so).
 */
export class Client implements AsyncIterable<Message> {
  readonly authenticator: Authenticator;
  readonly #wasm: WasmClient;
  readonly #storage: ReplayMarkerStorage | null;
  readonly #manual: boolean;
  /** Manual policy: messages handed out and not acknowledged, in delivery order. */
  readonly #unacked: Message[] = [];
  readonly #listeners = new Set<(s: StatusEvent) => void>();
  readonly #logger: Logger | undefined;
  readonly #stringify: (value: unknown) => string;
  /** `options.jsonParse` (see the constructor: the shell reaches it through the client). */
  readonly #jsonParse: ((text: string) => unknown) | undefined;
  readonly #buffer: Message[] = [];
  #head = 0;
  readonly #waiters: Waiter[] = [];
  /** Remove a waiter not yet served; true if it was waiting. */
  readonly #withdraw = (w: Waiter): boolean => {
    const i = this.#waiters.indexOf(w);
    if (i < 0) return false;
    this.#waiters.splice(i, 1);
    return true;
  };
  /**
   * Messages handed to the application and not yet reported to the core: as consumed (automatic
   * policy) or as taken (manual policy).
   */
  #taken = 0;
  /**
   * The last message or batch handed out (automatic policy): 0 none in hand; k > 0: k messages
   * still being processed, the application has not asked for more since, so they are not
   * consumed yet and the periodic report leaves them out; -k: k messages in hand when their
   * `for await` loop ended (`break`, `return`, an exception in its body): `close()` does not count
   * them either, so a message whose processing threw comes again after a restart
   * (at-least-once). One field: its reset is one store on the per-message path.
   */
  #inHand = 0;
  /**
   * Automatic policy: how many of the messages in `#taken` the core has been told of as taken
   * (in hand, not consumed). They are the first of them: the messages taken before were reported
   * consumed when these were told.
   */
  #told = 0;
  /** `maxPendingCount`, or 0 when the buffer is unbounded. */
  readonly #bound: number;
  #reportTimer: ReturnType<typeof setTimeout> | null = null;
  #failure: Error | null = null;
  /**
   * `open()` calls not settled: the shell starts an `open()` in a microtask, and from the call on
   * the client is not closed (a `receive()` right after an `open()` not awaited waits for it).
   */
  #opening = 0;

  constructor(authenticator: Authenticator, options: ClientOptions = {}) {
    if (authenticator === null || typeof authenticator !== "object" || typeof authenticator.authenticate !== "function") {
      throw new TypeError("authenticator must be an object with an authenticate() method");
    }
    checkClientOptions(options);
    this.authenticator = authenticator;
    const storage = toStorage(options.replay);
    this.#storage = storage instanceof ReplayMarkerStorage ? storage : null;
    this.#manual = options.ackPolicy === "manual";
    this.#logger = options.logger;
    this.#stringify = options.jsonStringify ?? JSON.stringify;
    this.#jsonParse = options.jsonParse;
    if (options.onStatus) this.#listeners.add(options.onStatus);
    const apiVersion = options.apiVersion ?? authenticator.apiVersion ?? DEFAULT_API_VERSION;
    // The shell holds `host` (and the options below) for the client's lifetime, in a table the
    // collector treats as a root: its callbacks reach this client only through a weak reference,
    // or no client could ever be collected. An open client is kept alive by OPEN_CLIENTS instead.
    // The application's authenticator and JSON parser are reached through the client too: a
    // token function, or a parser, made in a scope where the client is used holds the client.
    // The storage is the host's own (a marker write after close() still reaches it).
    const self = weakRefTo(this);
    const jsStorage = this.#storage;
    const host = {
      onEvents: (body: Message[], positions: Uint32Array) => {
        const c = self.deref();
        if (c !== undefined) c.#onEvents(body, positions);
      },
      onStatus: (s: StatusEvent) => {
        const c = self.deref();
        if (c !== undefined) c.#emit(s);
      },
      onFailed: (e: unknown) => {
        const c = self.deref();
        if (c !== undefined) c.#onFailed(e);
      },
      // Called only from open() or a re-login, while the client is open, hence alive.
      authenticate: (signal: AbortSignal | undefined) => {
        const c = self.deref();
        return c === undefined ? Promise.reject(new ClientInvalidOperation("the client was collected")) : login(c.authenticator, signal);
      },
      onAuthenticated: (namespace: string) => jsStorage?.bindNamespace(namespace),
      getReplayMarker: async (channel: string) => {
        if (!jsStorage) return null;
        try {
          const start = await jsStorage.getReplayStart(channel);
          if (start !== null && start.replayId < 0) {
            // Starting from -1/-2 while a marker is stored (a default, or an application that asks
            // for everything again): hand the stored marker over too, so that the replayed older
            // events never drag the stored marker backwards.
            const stored = await jsStorage.getReplayMarker(channel).catch(() => null);
            if (stored !== null) return { ...start, floorReplayId: stored.replayId, floorDate: stored.date };
          }
          return start;
        } catch (e) {
          // The shell reports anything that is not a marker as a storageError and ignores it.
          if (e instanceof CorruptReplayMarkerError) return { corrupt: true };
          throw e;
        }
      },
      setReplayMarker: async (channel: string, m: { replayId: number; date: string | null }) => {
        await jsStorage?.setReplayMarker(channel, new ReplayMarker(m.date, m.replayId));
      },
    };
    const bound = options.maxPendingCount ?? 100;
    this.#bound = bound > 0 ? bound : 0;
    this.#wasm = new WasmClient(host, {
      apiVersion,
      maxPendingCount: bound,
      connectionTimeout: options.connectionTimeout === undefined ? 10_000 : options.connectionTimeout,
      replayFallback: options.replayFallback ?? null,
      networkAllowance: options.networkAllowance ?? 10_000,
      store: storage instanceof ReplayMarkerStorage ? null : storage.toShell(),
      allowInsecureHttp: authenticator.allowInsecureHttp === true,
      // Called once per response: a response still on its way when the client is gone is parsed
      // as the runtime parses JSON, for a session nobody reads.
      jsonParse:
        this.#jsonParse === undefined
          ? null
          : (text: string): unknown => {
              const c = self.deref();
              return (c === undefined ? JSON.parse : (c.#jsonParse ?? JSON.parse))(text);
            },
      seed: Math.floor(Math.random() * 2 ** 52),
    });
  }

  /** Authenticate, handshake and connect. Long-polling (and prefetching) starts here. */
  async open(): Promise<void> {
    this.#failure = null;
    OPEN_CLIENTS.add(this);
    this.#opening++;
    try {
      await this.#wasm.open();
    } catch (e) {
      const err = fromWasmError(e);
      // A receive() waiting since open() began must not wait for ever on a client that could not
      // open (a second open() while one runs fails without closing anything, and an open() called
      // since, by a listener say, owns the client now: this one's failure is not its).
      if (this.#wasm.closed && !(err instanceof ClientInvalidOperation)) {
        this.#failure = err;
        this.#wakeAll();
        OPEN_CLIENTS.delete(this);
      }
      throw err;
    } finally {
      this.#opening--;
    }
  }

  /** Disconnect from Salesforce and store the replay markers of every message taken. */
  async close(): Promise<void> {
    if (this.#reportTimer !== null) {
      clearTimeout(this.#reportTimer);
      this.#reportTimer = null;
    }
    this.#reportTaken(this.#inHand < 0 ? -this.#inHand : 0);
    try {
      await this.#wasm.close();
    } catch (e) {
      throw fromWasmError(e);
    } finally {
      // Unless open() was called again while this close() wrote its markers: that session is
      // open (or opening), and its waiters wait for its messages.
      if (this.#wasm.closed) {
        this.#wakeAll();
        OPEN_CLIENTS.delete(this);
      }
    }
  }

  /**
   * Subscribe to `channel`, replaying from its stored marker when a replay storage is configured.
   * A refusal rejects with a `ServerError`, except "server busy" (`503`), which is retried with
   * back-off until `connectionTimeout` has passed since the first refusal.
   */
  async subscribe(channel: string): Promise<void> {
    checkChannel(channel);
    // What was consumed becomes the channel's marker before the subscribe reads it from the
    // storage (the message in hand, if any, is not consumed yet).
    this.#reportTaken(Math.abs(this.#inHand));
    try {
      await this.#wasm.subscribe(channel);
    } catch (e) {
      throw fromWasmError(e);
    }
  }

  /** Unsubscribe from `channel`. */
  async unsubscribe(channel: string): Promise<void> {
    checkChannel(channel);
    try {
      await this.#wasm.unsubscribe(channel);
    } catch (e) {
      throw fromWasmError(e);
    }
  }

  /** Publish `data` to a generic streaming channel (`/u/...`); resolves to the server's reply. */
  async publish(channel: string, data: unknown): Promise<Record<string, unknown>> {
    checkChannel(channel);
    let json: string | undefined;
    try {
      json = this.#stringify(data);
    } catch (e) {
      throw new TypeError(`data must be JSON-serialisable: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (typeof json !== "string") throw new TypeError("data must be JSON-serialisable");
    if (this.#stringify !== JSON.stringify) {
      // The request body embeds this text as one value: anything else would break the request or
      // add messages to it.
      try {
        JSON.parse(json);
      } catch {
        throw new TypeError("jsonStringify must return the JSON text of one value");
      }
    }
    try {
      return (await this.#wasm.publish(channel, json)) as Record<string, unknown>;
    } catch (e) {
      throw fromWasmError(e);
    }
  }

  /**
   * The next message. Raises `TransportTimeoutError` or `ServerError` if the connection is lost
   * for good (after the buffered messages), and `ClientInvalidOperation` when closed and drained.
   */
  receive(options: ReceiveOptions = {}): Promise<Message> {
    return this.#receive(options, undefined);
  }

  /** `receive()`; `slot` gets the waiter if it has to wait (the iterator's `return()` withdraws it). */
  #receive(options: ReceiveOptions, slot: { waiter: Waiter | null } | undefined): Promise<Message> {
    const bad = receiveOptionsError(options);
    if (bad) return Promise.reject(bad);
    this.#inHand = 0; // asking for the next message consumes the previous one
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    if (this.#head < this.#buffer.length) {
      // Consumption is reported in batches while messages are buffered (one wasm call per
      // REPORT_EVERY messages instead of one per message); always before waiting, and whenever
      // the core would otherwise count the buffer as full when it is not.
      if (this.#taken >= REPORT_EVERY) this.#reportTaken();
      const m = this.#take();
      const p = this.#buffer.length - this.#head;
      if (p < this.#bound && p + this.#taken - this.#told >= this.#bound) this.#tellTaken(1);
      return Promise.resolve(m);
    }
    this.#reportTaken();
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.closed) return Promise.reject(new ClientInvalidOperation("the client is closed and has no pending messages"));
    return waitForMessage(this.#waiters, options.signal, slot);
  }

  /**
   * Iterate over messages. Ends quietly when the client is closed, or at the next step once
   * `signal` has aborted (buffered messages stay for the next reader); throws when the connection
   * is lost for good.
   */
  messages(options: ReceiveOptions = {}): AsyncGenerator<Message, void, undefined> {
    const bad = receiveOptionsError(options);
    if (bad) return iterateMessages(() => Promise.reject(bad), {});
    return this.#iterator<Message>(options.signal, 0);
  }

  /**
   * Iterate over messages in batches, for applications that handle many at once (a bulk insert,
   * one storage write per batch): each step yields, in delivery order, every message buffered
   * (at most `maxSize`), waiting for the next one when none is. A batch is consumed, as a single
   * message is, when the iterator is asked for the next batch; one left by `break` or an exception
   * is not, and comes again after a restart. With `ackPolicy: "manual"`, acknowledging a batch's
   * last message acknowledges the whole batch. Ends and throws as {@link Client.messages} does;
   * invalid options throw a `TypeError` from the first step.
   *
   * ```ts
   * for await (const batch of client.batches({ maxSize: 500 })) await db.insertMany(batch);
   * ```
   */
  batches(options: BatchOptions = {}): AsyncGenerator<Message[], void, undefined> {
    const bad = batchOptionsError(options);
    if (bad) return iterateMessages<Message[]>(() => Promise.reject(bad), {});
    return this.#iterator<Message[]>(options.signal, options.maxSize ?? Infinity);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
    return this.#iterator<Message>(undefined, 0);
  }

  /**
   * `out` with further buffered messages, up to `max` in all; they are in hand together. The core
   * is told at once, so that the batch no longer counts against `maxPendingCount` while the
   * application works on it (the next reply is fetched meanwhile).
   */
  #takeBatch(out: Message[], max: number): Message[] {
    while (out.length < max && this.#head < this.#buffer.length) out.push(this.#take());
    if (!this.#manual) this.#inHand = out.length;
    this.#tellTaken(out.length);
    return out;
  }

  /**
   * Tell the core of every message taken so far, the last `hand` of them being in hand: under the
   * automatic policy the ones before are consumed (the application asked for more after them) and
   * the ones in hand only taken; under the manual policy all are taken. The core then counts as
   * buffered exactly what the buffer holds.
   */
  #tellTaken(hand: number): void {
    if (this.#manual) {
      this.#reportTaken();
      return;
    }
    this.#reportTaken(hand); // now #taken counts only the messages in hand
    if (this.#taken > this.#told) {
      this.#wasm.taken(this.#taken - this.#told);
      this.#told = this.#taken;
    }
  }

  /**
   * The iterator of `for await` and `messages()` (`batch` 0: T is Message) and of `batches()`
   * (`batch`: the most messages in a step; T is Message[]). Hand-written rather than an async
   * generator: a buffered step costs one resolved promise, and `return()` can withdraw a waiting
   * `next()` (an async generator would run it to the next message, which would then be lost).
   * The single-message path tests `batch` rather than calling a function per step: in the cold
   * code of a catch-up's drain, the call cost ~15 %.
   */
  #iterator<T extends Message | Message[]>(signal: AbortSignal | undefined, batch: number): AsyncGenerator<T, void, undefined> {
    let done = false;
    /** The waits of `next()` calls not yet settled: `return()` withdraws them, so no message goes to them. */
    const waiting = new Set<{ waiter: Waiter | null }>();
    const end = (): IteratorResult<T, void> => {
      done = true;
      return { value: undefined, done: true };
    };
    const options: ReceiveOptions = signal === undefined ? {} : { signal };
    const ret = (): Promise<IteratorResult<T, void>> => {
      if (this.#inHand > 0) this.#inHand = -this.#inHand;
      const r = end();
      withdrawAll(waiting, this.#withdraw);
      return Promise.resolve(r);
    };
    return iteratorOf((): Promise<IteratorResult<T, void>> => {
      if (done) return Promise.resolve({ value: undefined, done: true });
      this.#inHand = 0; // asking for the next step consumes the previous one
      if (signal !== undefined && signal.aborted) return Promise.resolve(end());
      if (this.#head < this.#buffer.length) {
        if (this.#taken >= REPORT_EVERY) this.#reportTaken();
        if (batch !== 0) return Promise.resolve({ value: this.#takeBatch([], batch) as T, done: false });
        const m = this.#take();
        const p = this.#buffer.length - this.#head;
        // The core, told of takes in batches, must not count the buffer as full when it is not.
        if (p < this.#bound && p + this.#taken - this.#told >= this.#bound) this.#tellTaken(1);
        return Promise.resolve({ value: m as T, done: false });
      }
      const slot: { waiter: Waiter | null } = { waiter: null };
      waiting.add(slot);
      return this.#receive(options, slot).then(
        (value): IteratorResult<T, void> => {
          waiting.delete(slot);
          // After `return()`, the message stays alone (and in hand, abandoned): nothing more is taken.
          return { value: (batch === 0 ? value : done ? [value] : this.#takeBatch([value], batch)) as T, done: false };
        },
        (e: unknown) => {
          waiting.delete(slot);
          if (endsQuietly(e, signal)) return end();
          done = true;
          throw e;
        },
      );
    }, ret);
  }

  /** `await using client = ...` closes the client. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Manual acknowledgement (`ackPolicy: "manual"`): mark `message` and every message received
   * before it as consumed, so that their channels' replay markers may advance. Cumulative, in
   * delivery order.
   */
  acknowledge(message: Message): void {
    if (!this.#manual) throw new ClientInvalidOperation('acknowledge() needs ackPolicy: "manual"');
    const i = this.#unacked.indexOf(message);
    if (i < 0) throw new TypeError("message was not received from this client, or is already acknowledged");
    this.#unacked.splice(0, i + 1);
    this.#reportTaken(); // what is consumed was taken first: the core's two counts stay in step
    this.#wasm.consumed(i + 1);
  }

  /** Listen to status events; returns a function that removes the listener. */
  onStatus(listener: (s: StatusEvent) => void): () => void {
    if (typeof listener !== "function") throw new TypeError("listener must be a function");
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** True before `open()`, and after `close()`, a failed `open()` or a fatal error; false from the moment `open()` is called. */
  get closed(): boolean {
    return this.#opening === 0 && this.#wasm.closed;
  }
  /** The subscribed channels. */
  get subscriptions(): ReadonlySet<string> {
    return new Set(this.#wasm.subscriptions as string[]);
  }
  /** `"long-polling"` while open, otherwise null. */
  get connectionType(): string | null {
    return this.#wasm.connectionType ?? null;
  }
  /** Messages received and waiting in the buffer, not yet taken (what `maxPendingCount` bounds). */
  get pendingCount(): number {
    return this.#buffer.length - this.#head;
  }
  /** Whether messages are waiting to be consumed. */
  get hasPendingMessages(): boolean {
    return this.pendingCount > 0;
  }
  /** Counters: handshakes, reconnects, events delivered... */
  get stats(): ClientStats {
    return this.#wasm.stats as ClientStats;
  }

  #take(): Message {
    const m = this.#buffer[this.#head] as Message;
    this.#buffer[this.#head] = undefined as unknown as Message;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
      this.#buffer.splice(0, this.#head);
      this.#head = 0;
    }
    this.#taken++;
    if (this.#manual) this.#unacked.push(m);
    else this.#inHand = 1;
    return m;
  }

  /**
   * While the application works through delivered messages, report what it took at least every
   * REPORT_INTERVAL_MS, so that a crash replays little (at-least-once either way). Armed when
   * messages arrive, not per message taken; it stops once the buffer is empty and reported.
   */
  #armReport(): void {
    if (this.#reportTimer !== null || this.#manual) return;
    const t: unknown = setTimeout(() => {
      this.#reportTimer = null;
      this.#reportTaken(Math.abs(this.#inHand));
      if (this.#head < this.#buffer.length || this.#taken > 0) this.#armReport();
    }, REPORT_INTERVAL_MS);
    (t as { unref?: () => void }).unref?.();
    this.#reportTimer = t as ReturnType<typeof setTimeout>;
  }

  /**
   * Tell the core about the messages handed out since the last report. Automatic policy: they
   * were consumed (their markers may advance), all but the last `keep` of them. Manual policy:
   * they were taken, so they no longer count against `maxPendingCount`; `acknowledge()` consumes
   * them.
   */
  #reportTaken(keep = 0): void {
    const n = this.#taken - keep;
    if (n > 0) {
      this.#taken = keep;
      if (this.#manual) this.#wasm.taken(n);
      else {
        this.#wasm.consumed(n);
        // The core's taken count falls by n as well (the first taken are the first consumed).
        this.#told = this.#told > n ? this.#told - n : 0;
      }
    }
  }

  #onEvents(body: Message[], positions: Uint32Array): void {
    for (let i = 0; i < positions.length; i++) {
      this.#buffer.push(body[positions[i] as number] as Message);
    }
    let served = 0;
    while (this.#waiters.length > 0 && this.#head < this.#buffer.length) {
      const w = this.#waiters.shift() as Waiter;
      w.resolve(this.#take());
      served++;
    }
    // The core decided whether to poll again before the application could take anything: if
    // only takes it has not heard of make the buffer look full, tell it.
    const p = this.#buffer.length - this.#head;
    if (p < this.#bound && p + this.#taken - this.#told >= this.#bound) this.#tellTaken(served > 0 ? served : Math.abs(this.#inHand));
    this.#armReport();
  }

  /** The connection failed for good. Called before the `failed` status, so that a listener may open the client again. */
  #onFailed(e: unknown): void {
    this.#failure = fromWasmError(e);
    this.#wakeAll();
  }

  #wakeAll(): void {
    if (this.#head < this.#buffer.length) return;
    const err = this.#failure ?? new ClientInvalidOperation("the client is closed and has no pending messages");
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }

  #emit(raw: StatusEvent): void {
    // A failure's error is the one receive() rejects with (#onFailed has just recorded it).
    const s = raw.type === "failed" ? { ...raw, error: this.#failure ?? fromWasmError(raw.error) } : raw;
    if (this.#logger) {
      try {
        this.#logger(levelOf(s), describe(s), s);
      } catch {
        // A throwing logger must not break the connection.
      }
    }
    // The listeners registered when the event happened: one added by a listener hears only later
    // events (a Set's iterator would visit it now, and a listener that re-registers would loop).
    for (const l of [...this.#listeners]) {
      try {
        l(s);
      } catch {
        // Same for listeners.
      }
    }
  }
}

/** Options of {@link SalesforceStreamingClient}. */
export type SalesforceStreamingClientOptions = PasswordAuthenticatorOptions & ClientOptions;

/**
 * A {@link Client} with a {@link PasswordAuthenticator}: the seed's convenience class.
 */
export class SalesforceStreamingClient extends Client {
  constructor(options: SalesforceStreamingClientOptions) {
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const { consumerKey, consumerSecret, username, password, loginUrl, sandbox, apiVersion, allowInsecureHttp, ...clientOptions } = options;
    const auth = new PasswordAuthenticator({ consumerKey, consumerSecret, username, password, loginUrl, sandbox, apiVersion, allowInsecureHttp });
    super(auth, clientOptions);
  }
}
