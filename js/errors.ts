/**
 * The error hierarchy of aiosfstream, as JavaScript `Error` subclasses.
 *
 * ```text
 * SfstreamError (alias AiosfstreamException)
 * ├── AuthenticationError
 * ├── ClientError
 * │   └── ClientInvalidOperation
 * ├── TransportError
 * │   ├── TransportInvalidOperation
 * │   ├── TransportTimeoutError
 * │   └── TransportConnectionClosed
 * └── ServerError
 * ```
 *
 * Messages never contain a token, a secret or a password.
 * @module
 */

/** Base class of every error this package throws (the seed's `AiosfstreamException`). */
export class SfstreamError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The seed's name for {@link SfstreamError}. */
export const AiosfstreamException = SfstreamError;
/** The seed's name for {@link SfstreamError}. */
export type AiosfstreamException = SfstreamError;

/** Authentication failed: Salesforce rejected the login, or the authenticator could not reach it. */
export class AuthenticationError extends SfstreamError {
  /** Salesforce's OAuth `error` code, e.g. `invalid_grant`, when Salesforce answered. */
  readonly error: string | null;
  /** Salesforce's `error_description`, e.g. `authentication failure`. */
  readonly errorDescription: string | null;
  /** HTTP status of the token endpoint's answer, when there was one. */
  readonly status: number | null;
  constructor(
    message: string,
    details: { error?: string | null; errorDescription?: string | null; status?: number | null } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.error = details.error ?? null;
    this.errorDescription = details.errorDescription ?? null;
    this.status = details.status ?? null;
  }
}

/** A client-side error. */
export class ClientError extends SfstreamError {}

/** The operation cannot be executed in the client's current state (for example, it is closed). */
export class ClientInvalidOperation extends ClientError {}

/** Transporting messages failed. */
export class TransportError extends SfstreamError {}

/** The operation cannot be executed in the transport's current state. */
export class TransportInvalidOperation extends TransportError {}

/**
 * The connection could not be (re-)established within `connectionTimeout`, or a request timed
 * out. The message names what kept the client out: when the server kept refusing (handshake
 * denied, "server too busy", Salesforce's concurrent-client limit), its last answer, which is
 * also the `cause` as a `ServerError`; when requests kept failing (connection refused, an HTTP
 * error status), the last failure, also the `cause` as a `TransportError`.
 */
export class TransportTimeoutError extends TransportError {}

/** The connection closed unexpectedly. */
export class TransportConnectionClosed extends TransportError {}

/** A Bayeux message from the server as received: `channel` plus whatever Salesforce sent. */
export interface ServerResponse {
  channel: string;
  successful?: boolean;
  error?: string;
  [field: string]: unknown;
}

/**
 * Salesforce rejected a request (`successful: false`). The Bayeux `error` field
 * (`code:args:message`) is parsed by the Rust core into {@link errorCode}, {@link errorArgs} and
 * {@link errorMessage}.
 */
export class ServerError extends SfstreamError {
  /** The reply that carried the error. */
  readonly response: ServerResponse | null;
  /** The raw `error` field, e.g. `403::Unknown client`. */
  readonly error: string | null;
  /** The numeric code, e.g. `403`. */
  readonly errorCode: number | null;
  /** The arguments part, e.g. `["denied_by_security_policy"]`. */
  readonly errorArgs: string[];
  /** The description part, e.g. `Unknown client`. */
  readonly errorMessage: string | null;
  constructor(
    message: string,
    details: {
      response?: ServerResponse | null;
      error?: string | null;
      errorCode?: number | null;
      errorArgs?: string[];
      errorMessage?: string | null;
    } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.response = details.response ?? null;
    this.error = details.error ?? null;
    this.errorCode = details.errorCode ?? null;
    this.errorArgs = details.errorArgs ?? [];
    this.errorMessage = details.errorMessage ?? null;
  }
}

interface WasmErrorShape {
  name?: unknown;
  message?: unknown;
  error?: unknown;
  errorCode?: unknown;
  errorArgs?: unknown;
  errorMessage?: unknown;
  response?: unknown;
  errorDescription?: unknown;
  status?: unknown;
  cause?: unknown;
  unreachable?: unknown;
}

function strOrNull(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

/**
 * A login's failure as the package reports it: one of the package's errors as it is; anything
 * else (a custom authenticator's or a grant's own error) as an {@link AuthenticationError}
 * saying `what` failed, with the original as its `cause`.
 * @internal
 */
export function loginFailure(what: string, e: unknown): SfstreamError {
  if (e instanceof SfstreamError) return e;
  return new AuthenticationError(`${what}: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e });
}

/** How one of the shell's errors becomes one of the classes above. */
type FromShell = (message: string, shape: WasmErrorShape, options: { cause?: unknown }) => SfstreamError;

/**
 * The errors the wasm shell makes (plain `Error`s with one of these names), each as one of the
 * classes above.
 */
const SHELL_ERRORS: Readonly<Record<string, FromShell>> = {
  ServerError: (message, shape, options) =>
    new ServerError(
      message,
      {
        response: (shape.response as ServerResponse | undefined) ?? null,
        error: strOrNull(shape.error),
        errorCode: typeof shape.errorCode === "number" ? shape.errorCode : null,
        errorArgs: Array.isArray(shape.errorArgs) ? shape.errorArgs.filter((a): a is string => typeof a === "string") : [],
        errorMessage: strOrNull(shape.errorMessage),
      },
      options,
    ),
  AuthenticationError: (message, shape, options) =>
    new AuthenticationError(
      message,
      {
        error: strOrNull(shape.error),
        errorDescription: strOrNull(shape.errorDescription),
        status: typeof shape.status === "number" ? shape.status : null,
      },
      options,
    ),
  ClientInvalidOperation: (message, _shape, options) => new ClientInvalidOperation(message, options),
  TransportTimeoutError: (message, _shape, options) => new TransportTimeoutError(message, options),
  TransportConnectionClosed: (message, _shape, options) => new TransportConnectionClosed(message, options),
  TransportInvalidOperation: (message, _shape, options) => new TransportInvalidOperation(message, options),
  TransportError: (message, _shape, options) => new TransportError(message, options),
  ClientError: (message, _shape, options) => new ClientError(message, options),
};

function shellErrorOf(name: unknown): FromShell | undefined {
  return typeof name === "string" && Object.hasOwn(SHELL_ERRORS, name) ? SHELL_ERRORS[name] : undefined;
}

/**
 * The `cause` of the error made from the shell's `e`: when the shell gave one of our errors as
 * its cause (the server's refusal, the last transport failure, a login's error), that one, as
 * one of our classes; when it gave another cause (a fetch's error), or marked a login as
 * `unreachable` (which the shell reads back to retry it), `e` itself, which keeps them within
 * reach; for an error the shell made with nothing more, none (`e` would only repeat the
 * message); for anything else, `e` (the original).
 */
function causeOf(shape: WasmErrorShape, e: unknown): unknown {
  const inner = shape.cause;
  if (inner instanceof SfstreamError) return inner;
  if (inner !== null && typeof inner === "object" && shellErrorOf((inner as WasmErrorShape).name) !== undefined) return fromWasmError(inner);
  if ((inner !== undefined && inner !== null) || shape.unreachable === true) return e;
  // An error the shell made says no more than its conversion; anything else is the original.
  return shellErrorOf(shape.name) !== undefined ? undefined : e;
}

/**
 * Turn what the wasm shell rejected with into one of the classes above. Errors that are already
 * ours pass through; anything else becomes a {@link ClientError} with the original as `cause`
 * (a `TypeError` the shell made for a bad argument stays a `TypeError`).
 * @internal
 */
export function fromWasmError(e: unknown): Error {
  if (e instanceof SfstreamError) return e;
  if (typeof DOMException !== "undefined" && e instanceof DOMException && e.name === "AbortError") return e;
  const shape: WasmErrorShape = e !== null && typeof e === "object" ? (e as WasmErrorShape) : {};
  const message = typeof shape.message === "string" ? shape.message : String(e);
  const cause = causeOf(shape, e);
  const options = cause === undefined ? {} : { cause };
  if (shape.name === "TypeError") return new TypeError(message, options);
  const make = shellErrorOf(shape.name);
  return make === undefined ? new ClientError(message, options) : make(message, shape, options);
}
