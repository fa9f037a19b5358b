/**
 * Durable replay-marker storages.
 *
 * * Native backends run inside the wasm shell (`src/wasm/store.rs`): {@link MemoryReplayStorage},
 *   {@link LocalStorageReplayStorage} (browsers), {@link IndexedDbReplayStorage} (browsers and
 *   workers; a write interrupted by a crash leaves the previous marker intact).
 * * Edge stores, in TypeScript over the {@link ReplayMarkerStorage} interface:
 *   {@link DenoKvReplayStorage}, {@link WorkersKvReplayStorage}, {@link DurableObjectReplayStorage}.
 *
 * All of them namespace their keys by org and user (`<orgId>/<userId>`, taken from the login's
 * identity URL), so two orgs or users sharing a browser or a KV namespace never share markers.
 * A login without an identity URL (an `AccessTokenAuthenticator` given no `id`, your own
 * authenticator returning none) is known only by its instance's host (`<host>/-`): give such
 * clients `id`, or a `namespace` of their own.
 * Semantics (at-least-once, coalesced writes, markers never moving backwards): see the README.
 * @module
 */

import { ConstantReplayId, CorruptReplayMarkerError, ForeignStorage, MappingStorage, ReplayMarker, storedMarker, ReplayMarkerStorage, ReplayOption, type MapLike, type ReplayStart } from "./replay.js";
import { checkOptionKeys } from "./options.js";

/** Options shared by the native storages. */
export interface NativeStorageOptions {
  /** Replay id for channels without a stored marker (default: omit, i.e. only new events). */
  defaultReplay?: ReplayOption | undefined;
  /**
   * A fixed namespace instead of `<orgId>/<userId>` of the authenticated identity (or `<host>/-`
   * when the login gave no identity URL).
   */
  namespace?: string | undefined;
}

/**
 * Reject an option a storage does not take: the shared ones and `own`. Each storage calls it
 * before `super()`, since the base classes do not know a subclass's own options.
 */
function checkKeys(options: unknown, own: readonly string[] = []): void {
  checkOptionKeys(options, ["defaultReplay", "namespace", ...own]);
}

function checkPrefix(prefix: unknown): void {
  if (prefix !== undefined && typeof prefix !== "string") throw new TypeError("prefix must be a string");
}

function checkCommon(options: NativeStorageOptions): void {
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
  if (options.defaultReplay !== undefined && options.defaultReplay !== -1 && options.defaultReplay !== -2) {
    throw new TypeError("defaultReplay must be ReplayOption.ALL_EVENTS or ReplayOption.NEW_EVENTS");
  }
  if (options.namespace !== undefined && (typeof options.namespace !== "string" || options.namespace === "")) {
    throw new TypeError("namespace must be a non-empty string");
  }
}

/** Base of the storages implemented inside the wasm shell. */
export abstract class NativeReplayStorage {
  abstract readonly kind: "memory" | "localStorage" | "indexedDB";
  readonly defaultReplay: ReplayOption | null;
  readonly namespace: string | null;
  constructor(options: NativeStorageOptions = {}) {
    checkCommon(options);
    this.defaultReplay = options.defaultReplay ?? null;
    this.namespace = options.namespace ?? null;
  }
  /** The descriptor handed to the shell. @internal */
  toShell(): Record<string, unknown> {
    return { kind: this.kind, defaultReplay: this.defaultReplay, namespace: this.namespace };
  }
}

/** Markers kept in memory for the lifetime of the client (the shell's own store). */
export class MemoryReplayStorage extends NativeReplayStorage {
  readonly kind = "memory" as const;
  constructor(options: NativeStorageOptions = {}) {
    checkKeys(options);
    super(options);
  }
}

/** Markers in `localStorage`, under `<prefix><orgId>/<userId>/<channel>`. */
export class LocalStorageReplayStorage extends NativeReplayStorage {
  readonly kind = "localStorage" as const;
  readonly prefix: string;
  constructor(options: NativeStorageOptions & { prefix?: string | undefined } = {}) {
    checkKeys(options, ["prefix"]);
    super(options);
    checkPrefix(options.prefix);
    this.prefix = options.prefix ?? "sfstream/";
  }
  override toShell(): Record<string, unknown> {
    return { ...super.toShell(), prefix: this.prefix };
  }
}

/** Markers in IndexedDB (database `sfstream` by default, object store `markers`). */
export class IndexedDbReplayStorage extends NativeReplayStorage {
  readonly kind = "indexedDB" as const;
  readonly database: string;
  constructor(options: NativeStorageOptions & { database?: string | undefined } = {}) {
    checkKeys(options, ["database"]);
    super(options);
    if (options.database !== undefined && (typeof options.database !== "string" || options.database === "")) {
      throw new TypeError("database must be a non-empty string");
    }
    this.database = options.database ?? "sfstream";
  }
  override toShell(): Record<string, unknown> {
    return { ...super.toShell(), database: this.database };
  }
}

/** Base of the TS edge stores: namespaced keys and an optional default. */
abstract class NamespacedStorage extends ReplayMarkerStorage {
  readonly defaultReplay: ReplayOption | null;
  #namespace: string;
  readonly #fixed: boolean;
  constructor(options: NativeStorageOptions) {
    super();
    checkCommon(options);
    this.defaultReplay = options.defaultReplay ?? null;
    this.#namespace = options.namespace ?? "unauthenticated/-";
    this.#fixed = options.namespace !== undefined;
  }
  /** Called by the client after authentication with `<orgId>/<userId>`. */
  override bindNamespace(namespace: string): void {
    if (!this.#fixed) this.#namespace = namespace;
  }
  protected get currentNamespace(): string {
    return this.#namespace;
  }
  override async getReplayStart(subscription: string): Promise<ReplayStart | null> {
    let m: ReplayMarker | null;
    try {
      m = await this.getReplayMarker(subscription);
    } catch (e) {
      if (!(e instanceof CorruptReplayMarkerError)) throw e;
      // Corrupt data counts as "no marker": the default applies, and the client reports it.
      if (this.defaultReplay === null) throw e;
      return { replayId: this.defaultReplay, date: null, corrupt: true };
    }
    if (m !== null) return { replayId: m.replayId, date: m.date };
    return this.defaultReplay === null ? null : { replayId: this.defaultReplay, date: null };
  }
}

/** The parts of `Deno.Kv` this storage uses. */
export interface DenoKvLike {
  get(key: readonly (string | number)[]): Promise<{ value: unknown }>;
  set(key: readonly (string | number)[], value: unknown): Promise<unknown>;
}

/** Markers in Deno KV under `["sfstream", orgId, userId, channel]`. */
export class DenoKvReplayStorage extends NamespacedStorage {
  readonly #kv: DenoKvLike;
  constructor(kv: DenoKvLike, options: NativeStorageOptions = {}) {
    checkKeys(options);
    super(options);
    if (kv === null || typeof kv !== "object" || typeof kv.get !== "function" || typeof kv.set !== "function") {
      throw new TypeError("kv must be a Deno.Kv (from Deno.openKv())");
    }
    this.#kv = kv;
  }
  #key(channel: string): string[] {
    return ["sfstream", ...this.currentNamespace.split("/"), channel];
  }
  async getReplayMarker(subscription: string): Promise<ReplayMarker | null> {
    return storedMarker((await this.#kv.get(this.#key(subscription))).value);
  }
  async setReplayMarker(subscription: string, marker: ReplayMarker): Promise<void> {
    await this.#kv.set(this.#key(subscription), marker.toJSON());
  }
}

/** The parts of a Cloudflare Workers KV namespace binding this storage uses. */
export interface WorkersKvLike {
  get(key: string): Promise<string | null>;
  put(key: string, value: string): Promise<unknown>;
}

/**
 * Markers in Cloudflare Workers KV under `<prefix><orgId>/<userId>/<channel>`. Workers KV is
 * eventually consistent across locations: use a Durable Object when several Workers in different
 * places resume the same stream.
 */
export class WorkersKvReplayStorage extends NamespacedStorage {
  readonly #kv: WorkersKvLike;
  readonly prefix: string;
  /** When each key's last write ended: Workers KV refuses (429) a second write to a key within a second. */
  readonly #written = new Map<string, number>();
  constructor(kv: WorkersKvLike, options: NativeStorageOptions & { prefix?: string | undefined } = {}) {
    checkKeys(options, ["prefix"]);
    super(options);
    if (kv === null || typeof kv !== "object" || typeof kv.get !== "function" || typeof kv.put !== "function") {
      throw new TypeError("kv must be a Workers KV namespace binding");
    }
    checkPrefix(options.prefix);
    this.#kv = kv;
    this.prefix = options.prefix ?? "sfstream/";
  }
  async getReplayMarker(subscription: string): Promise<ReplayMarker | null> {
    return storedMarker(await this.#kv.get(`${this.prefix}${this.currentNamespace}/${subscription}`));
  }
  /**
   * Writes a key at most once a second, as Workers KV allows: a write that comes sooner waits for
   * its turn (the client coalesces markers meanwhile, so the newest one is written).
   */
  async setReplayMarker(subscription: string, marker: ReplayMarker): Promise<void> {
    const key = `${this.prefix}${this.currentNamespace}/${subscription}`;
    const last = this.#written.get(key);
    const wait = last === undefined ? 0 : last + KV_WRITE_SPACING_MS - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    try {
      await this.#kv.put(key, JSON.stringify(marker.toJSON()));
    } finally {
      this.#written.set(key, Date.now());
    }
  }
}

/** Workers KV: at most one write per second to a key (https://developers.cloudflare.com/kv/platform/limits/). */
const KV_WRITE_SPACING_MS = 1000;

/** The parts of `DurableObjectStorage` this storage uses. */
export interface DurableObjectStorageLike {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<unknown>;
}

/** Markers in a Durable Object's transactional storage under `<prefix><orgId>/<userId>/<channel>`. */
export class DurableObjectReplayStorage extends NamespacedStorage {
  readonly #storage: DurableObjectStorageLike;
  readonly prefix: string;
  constructor(storage: DurableObjectStorageLike, options: NativeStorageOptions & { prefix?: string | undefined } = {}) {
    checkKeys(options, ["prefix"]);
    super(options);
    if (storage === null || typeof storage !== "object" || typeof storage.get !== "function" || typeof storage.put !== "function") {
      throw new TypeError("storage must be a DurableObjectStorage (state.storage)");
    }
    checkPrefix(options.prefix);
    this.#storage = storage;
    this.prefix = options.prefix ?? "sfstream/";
  }
  async getReplayMarker(subscription: string): Promise<ReplayMarker | null> {
    return storedMarker(await this.#storage.get(`${this.prefix}${this.currentNamespace}/${subscription}`));
  }
  async setReplayMarker(subscription: string, marker: ReplayMarker): Promise<void> {
    await this.#storage.put(`${this.prefix}${this.currentNamespace}/${subscription}`, marker.toJSON());
  }
}

/** What the `replay` option accepts. */
export type ReplayConfig = ReplayOption | ReplayMarkerStorage | NativeReplayStorage | MapLike | null | undefined;

function isStorageLike(v: object): v is ReplayMarkerStorage {
  const s = v as { getReplayMarker?: unknown; setReplayMarker?: unknown };
  return typeof s.getReplayMarker === "function" && typeof s.setReplayMarker === "function";
}

/**
 * Normalise the `replay` option (the seed's rules): a {@link ReplayOption} means a constant
 * replay id; a storage is used as is; a Map-like object is wrapped in {@link MappingStorage};
 * nothing means only new events.
 * @internal
 */
export function toStorage(replay: ReplayConfig): ReplayMarkerStorage | NativeReplayStorage {
  if (replay === undefined || replay === null) return new ConstantReplayId(ReplayOption.NEW_EVENTS);
  if (typeof replay === "number") {
    if (replay !== ReplayOption.ALL_EVENTS && replay !== ReplayOption.NEW_EVENTS) {
      throw new TypeError("replay must be ReplayOption.ALL_EVENTS, ReplayOption.NEW_EVENTS, a ReplayMarkerStorage or a Map-like object");
    }
    return new ConstantReplayId(replay);
  }
  if (typeof replay === "object") {
    if (replay instanceof ReplayMarkerStorage) return replay;
    if (replay instanceof NativeReplayStorage) return replay;
    if (isStorageLike(replay)) return new ForeignStorage(replay);
    if (typeof (replay as MapLike).get === "function" && typeof (replay as MapLike).set === "function") {
      return new MappingStorage(replay as MapLike);
    }
  }
  throw new TypeError("replay must be ReplayOption.ALL_EVENTS, ReplayOption.NEW_EVENTS, a ReplayMarkerStorage or a Map-like object");
}

