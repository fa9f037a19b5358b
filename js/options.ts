/**
 * The check every options object of the public API starts with. A module of its own, importing
 * nothing, so that `sfstream/relay` and the storages use it without pulling in the client or the
 * wasm module.
 * @internal
 */

/**
 * Throw a `TypeError` unless `options` is an object (`options must be an object`) whose own
 * enumerable keys are all in `allowed` (`unknown option <key>`, or `unknown <what> option <key>`
 * when `what` is given), so that a misspelt option fails instead of being ignored.
 * @internal
 */
export function checkOptionKeys(options: unknown, allowed: readonly string[], what?: string): void {
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) throw new TypeError(what === undefined ? `unknown option ${key}` : `unknown ${what} option ${key}`);
  }
}
