// A Map-like view of localStorage for the client's `replay` option: the client wraps it in its
// MappingStorage, stores a marker ({replayId, date}) per channel as events are consumed, and
// resumes from it on the next subscribe (also after reloading the page).

export const REPLAY_PREFIX = "sfstream-dashboard.replay.";

export class LocalStorageMap {
  /** @param {(key: string, value: unknown) => void} [onSet] told about every stored marker */
  constructor(onSet, prefix = REPLAY_PREFIX) {
    this.prefix = prefix;
    this.onSet = onSet;
  }
  get(key) {
    const raw = localStorage.getItem(this.prefix + key);
    if (raw === null) return undefined;
    try {
      return JSON.parse(raw);
    } catch {
      // Corrupt entry: handed on as it is, so the client reports it (storageError) and the
      // storage's default applies, as for a channel without a marker.
      return raw;
    }
  }
  set(key, value) {
    localStorage.setItem(this.prefix + key, JSON.stringify(value));
    this.onSet?.(key, value);
    return this;
  }
  has(key) {
    return localStorage.getItem(this.prefix + key) !== null;
  }
  delete(key) {
    const had = this.has(key);
    localStorage.removeItem(this.prefix + key);
    return had;
  }
  /** The storage key of a channel, shown in the dashboard. */
  keyOf(key) {
    return this.prefix + key;
  }
}
