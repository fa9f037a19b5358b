import { ClientError } from "./errors.js";

/**
 * Replay configuration: which events a subscription asks Salesforce for, and where the client
 * keeps the last replay marker of each channel so that it resumes where it left off.
 * @module
 */

/** Replay options supported by Salesforce (the `ext.replay` values). */
export const ReplayOption = {
  /** Every event still in the retention window, then new ones. */
  ALL_EVENTS: -2,
  /** Only events published after the subscription. */
  NEW_EVENTS: -1,
} as const;
/** `ReplayOption.ALL_EVENTS` (-2) or `ReplayOption.NEW_EVENTS` (-1). */
export type ReplayOption = (typeof ReplayOption)[keyof typeof ReplayOption];

/** Stored data that is not a replay marker (corrupt, or written by something else). */
export class CorruptReplayMarkerError extends ClientError {}

/** The replay id of an event and its creation date (ISO 8601), as stored per channel. */
export class ReplayMarker {
  /** Creation date of the event, ISO 8601 (`2024-05-01T10:00:00.000Z`), or null if unknown. */
  readonly date: string | null;
  /** Replay id of the event. */
  readonly replayId: number;
  constructor(date: string | null, replayId: number) {
    if (typeof replayId !== "number" || !Number.isSafeInteger(replayId)) {
      throw new TypeError(`replayId must be an integer, got ${String(replayId)}`);
    }
    if (date !== null && (typeof date !== "string" || Number.isNaN(Date.parse(date)))) {
      throw new TypeError(`date must be an ISO 8601 date string or null, got ${String(date)}`);
    }
    this.date = date;
    this.replayId = replayId;
  }
  /** Plain-object form, what storages persist. */
  toJSON(): { date: string | null; replayId: number } {
    return { date: this.date, replayId: this.replayId };
  }
  /**
   * Read a marker from stored data (a marker, a plain object or its JSON text). Returns null for
   * anything that is not a valid marker, so corrupt or foreign data never becomes a replay id:
   * a replay id must be one Salesforce accepts (1 or more, or the start values -1 and -2).
   */
  static from(value: unknown): ReplayMarker | null {
    let v = value;
    if (typeof v === "string") {
      try {
        v = JSON.parse(v);
      } catch {
        return null;
      }
    }
    if (v === null || typeof v !== "object") return null;
    const o = v as { date?: unknown; replayId?: unknown };
    if (!isReplayStart(o.replayId)) return null;
    const date = typeof o.date === "string" && !Number.isNaN(Date.parse(o.date)) ? o.date : null;
    return new ReplayMarker(date, o.replayId);
  }
}

/**
 * Read stored data as a marker: nothing stored → null; a valid marker → the marker; anything
 * else (corrupt or foreign data) → {@link CorruptReplayMarkerError}, which the client reports as a
 * `storageError` status event and treats as "no marker".
 */
export function storedMarker(value: unknown): ReplayMarker | null {
  if (value === undefined || value === null) return null;
  const m = ReplayMarker.from(value);
  if (m === null) throw new CorruptReplayMarkerError("the stored replay marker is not valid");
  return m;
}

/** What the client asks a storage for when it subscribes. */
export interface ReplayStart {
  replayId: number;
  date: string | null;
  /** The stored data was corrupt; `replayId` is the storage's default. The client reports it. */
  corrupt?: boolean;
}

/**
 * Base class for replay-marker storages: implement {@link getReplayMarker} and
 * {@link setReplayMarker} over any store (a database, an edge KV, a file...).
 */
export abstract class ReplayMarkerStorage {
  /** The stored marker of `subscription`, or null when there is none. */
  abstract getReplayMarker(subscription: string): Promise<ReplayMarker | null>;
  /** Store `marker` for `subscription`. */
  abstract setReplayMarker(subscription: string, marker: ReplayMarker): Promise<void>;
  /**
   * What to subscribe with: the stored marker, or null for "no replay extension".
   * Subclasses with a default (such as {@link DefaultMappingStorage}) override this.
   */
  async getReplayStart(subscription: string): Promise<ReplayStart | null> {
    const m = await this.getReplayMarker(subscription);
    return m === null ? null : { replayId: m.replayId, date: m.date };
  }
  /**
   * Called by the client after each authentication with the identity's `<orgId>/<userId>`.
   * Storages that share one store between orgs or users prefix their keys with it; the default
   * ignores it (a `MappingStorage` keys by channel, as in aiosfstream).
   */
  bindNamespace(_namespace: string): void {}
}

/** Anything with Map-like `get` and `set` (a `Map`, a KV wrapper...), sync or async. */
export interface MapLike {
  get(key: string): unknown;
  set(key: string, value: unknown): unknown;
}

/** Replay markers kept in a Map-like object; channels without a marker get only new events. */
export class MappingStorage extends ReplayMarkerStorage {
  readonly mapping: MapLike;
  constructor(mapping: MapLike) {
    super();
    if (mapping === null || typeof mapping !== "object" || typeof mapping.get !== "function" || typeof mapping.set !== "function") {
      throw new TypeError("mapping must be an object with get and set methods");
    }
    this.mapping = mapping;
  }
  async getReplayMarker(subscription: string): Promise<ReplayMarker | null> {
    return storedMarker(await this.mapping.get(subscription));
  }
  async setReplayMarker(subscription: string, marker: ReplayMarker): Promise<void> {
    await this.mapping.set(subscription, marker.toJSON());
  }
}

/** A replay id Salesforce accepts on subscribe: a stored id (1 or more), -1 or -2. */
function isReplayStart(id: unknown): id is number {
  return typeof id === "number" && Number.isSafeInteger(id) && (id >= 1 || id === ReplayOption.ALL_EVENTS || id === ReplayOption.NEW_EVENTS);
}

/**
 * A replay id to subscribe with, as Salesforce accepts it (and the core, for a stored one):
 * `ReplayOption.ALL_EVENTS` (-2), `ReplayOption.NEW_EVENTS` (-1) or an event's id (1 or more).
 */
function checkReplayId(name: string, id: unknown): number {
  if (!isReplayStart(id)) {
    throw new TypeError(`${name} must be an integer replay id (-2, -1 or a stored id, 1 or more), got ${String(id)}`);
  }
  return id;
}

/**
 * Like {@link MappingStorage}, but channels without a marker start from `defaultId`: -2, -1 or a
 * replay id of 1 or more (anything else is a `TypeError`).
 */
export class DefaultMappingStorage extends MappingStorage {
  readonly defaultId: number;
  constructor(mapping: MapLike, defaultId: number) {
    super(mapping);
    this.defaultId = checkReplayId("defaultId", defaultId);
  }
  override async getReplayStart(subscription: string): Promise<ReplayStart | null> {
    let m: ReplayMarker | null;
    try {
      m = await this.getReplayMarker(subscription);
    } catch (e) {
      // Corrupt data counts as "no marker": the default applies, and the client reports it.
      if (e instanceof CorruptReplayMarkerError) return { replayId: this.defaultId, date: null, corrupt: true };
      throw e;
    }
    return m === null ? { replayId: this.defaultId, date: null } : { replayId: m.replayId, date: m.date };
  }
}

/** Always subscribes with the same replay id (-2, -1 or 1 or more, as `defaultId` of {@link DefaultMappingStorage}); stores nothing. */
export class ConstantReplayId extends ReplayMarkerStorage {
  readonly defaultId: number;
  constructor(defaultId: number) {
    super();
    this.defaultId = checkReplayId("defaultId", defaultId);
  }
  async getReplayMarker(_subscription: string): Promise<ReplayMarker | null> {
    return null;
  }
  async setReplayMarker(_subscription: string, _marker: ReplayMarker): Promise<void> {}
  override async getReplayStart(_subscription: string): Promise<ReplayStart | null> {
    return { replayId: this.defaultId, date: null };
  }
}

/** A user object with `getReplayMarker`/`setReplayMarker` that does not extend the base class. */
/** @internal */
export class ForeignStorage extends ReplayMarkerStorage {
  readonly #inner: ReplayMarkerStorage;
  constructor(inner: ReplayMarkerStorage) {
    super();
    this.#inner = inner;
  }
  async getReplayMarker(subscription: string): Promise<ReplayMarker | null> {
    return storedMarker(await this.#inner.getReplayMarker(subscription));
  }
  setReplayMarker(subscription: string, marker: ReplayMarker): Promise<void> {
    return this.#inner.setReplayMarker(subscription, marker);
  }
  override getReplayStart(subscription: string): Promise<ReplayStart | null> {
    const inner = this.#inner as { getReplayStart?: unknown };
    return typeof inner.getReplayStart === "function" ? this.#inner.getReplayStart(subscription) : super.getReplayStart(subscription);
  }
  override bindNamespace(namespace: string): void {
    const inner = this.#inner as { bindNamespace?: unknown };
    if (typeof inner.bindNamespace === "function") this.#inner.bindNamespace(namespace);
  }
}
