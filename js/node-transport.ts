// Node's transport for the wasm shell: `node:http`/`node:https` with keep-alive agents, which set
// up a request several times faster than Node 20's built-in fetch (undici). It resolves to a small
// object with the members of `Response` the shell reads (`status`, `headers.get()`,
// `headers.getSetCookie()`, `json()`, `text()`): building an undici `Response` and reading it back
// cost more than parsing the body itself (and loading undici ~25 ms of start-up).
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";

/** The largest response body accepted (Salesforce's batches are about 10 MB at most). */
const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Bodies declared larger than this are read into one buffer of the declared length. */
const PREALLOCATE_ABOVE = 64 * 1024;

// No cap on sockets per host (Node's default): every client in the process holds a long-poll on
// its own socket for up to 110 s, and a cap would queue the next client's handshake behind them.
const httpAgent = new HttpAgent({ keepAlive: true });
const httpsAgent = new HttpsAgent({ keepAlive: true });

function abortError(signal: AbortSignal | null | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new DOMException("The operation was aborted", "AbortError");
}

/** What the shell passes: a POST with a string body and plain-object headers. */
export interface NodeFetchInit {
  method?: string;
  body?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /**
   * The request may be sent again if a reused keep-alive connection turns out to be closed (the
   * shell sets it for handshakes, subscribes, unsubscribes, disconnects and token requests; never
   * for a long-poll or a publish). Redirects are never followed, whatever `redirect` says.
   */
  repeatable?: boolean;
  redirect?: string;
}

/** The members of `Response` the shell reads. */
export interface NodeFetchResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null; getSetCookie(): string[] };
  text(): Promise<string>;
  json(): Promise<unknown>;
}

/** The response headers (Node's raw name/value list) with `Headers`' accessors. */
class NodeResponseHeaders {
  readonly #raw: string[];
  constructor(raw: string[]) {
    this.#raw = raw;
  }
  /** The values of `name` joined with ", " (as `Headers.get`), or null. */
  get(name: string): string | null {
    const want = name.toLowerCase();
    let out: string | null = null;
    for (let i = 0; i + 1 < this.#raw.length; i += 2) {
      if ((this.#raw[i] as string).toLowerCase() === want) {
        const v = this.#raw[i + 1] as string;
        out = out === null ? v : `${out}, ${v}`;
      }
    }
    return out;
  }
  /** Every Set-Cookie value, one per header line. */
  getSetCookie(): string[] {
    const out: string[] = [];
    for (let i = 0; i + 1 < this.#raw.length; i += 2) {
      if ((this.#raw[i] as string).toLowerCase() === "set-cookie") out.push(this.#raw[i + 1] as string);
    }
    return out;
  }
}

/** A read response: the status, the headers and the whole body. */
class NodeResponse implements NodeFetchResponse {
  readonly status: number;
  readonly headers: NodeResponseHeaders;
  readonly #body: Buffer;
  constructor(status: number, headers: NodeResponseHeaders, body: Buffer) {
    this.status = status;
    this.headers = headers;
    this.#body = body;
  }
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }
  /** The body as text (UTF-8, a leading byte-order mark dropped, as `Response.text()`). */
  text(): Promise<string> {
    return Promise.resolve(this.#decode());
  }
  /** The body parsed as JSON; rejects with a SyntaxError when it is not JSON (an empty body is not). */
  json(): Promise<unknown> {
    // Parsed at once (the body is all here): one promise hop fewer between the response and the
    // application than `text().then(JSON.parse)`.
    try {
      return Promise.resolve(JSON.parse(this.#decode()) as unknown);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #decode(): string {
    const s = this.#body.toString("utf8");
    return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
  }
}

/** A `fetch` for the shell's POSTs (string bodies, no redirects followed: Salesforce sends none). */
export function nodeFetch(input: string, init: NodeFetchInit = {}): Promise<NodeFetchResponse> {
  return attempt(input, init, true);
}

function attempt(input: string, init: NodeFetchInit, mayRetry: boolean): Promise<NodeFetchResponse> {
  return new Promise<NodeFetchResponse>((resolve, reject) => {
    const signal = init.signal;
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    let url: URL;
    try {
      url = new URL(input);
    } catch (e) {
      reject(new TypeError(`invalid URL: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    const https = url.protocol === "https:";
    if (!https && url.protocol !== "http:") {
      reject(new TypeError(`unsupported protocol ${url.protocol}`));
      return;
    }
    const headers: Record<string, string> = { ...init.headers };
    const body = typeof init.body === "string" ? init.body : undefined;
    if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let received = 0;
      // A large body of declared length is copied, as it arrives, into one buffer of that length:
      // joining the chunks once all had come took ~8 ms for an 8 MB batch (fresh memory is
      // faulted in while the process waits for the network instead), and the chunks and their
      // copy were alive together.
      const declared = Number(res.headers["content-length"]);
      let whole = Number.isSafeInteger(declared) && declared > PREALLOCATE_ABOVE && declared <= MAX_BODY_BYTES ? Buffer.allocUnsafe(declared) : null;
      res.on("data", (c) => {
        if (whole !== null) {
          if (received + c.length <= whole.length) {
            whole.set(c, received);
            received += c.length;
            return;
          }
          // More than declared (Node's parser does not let this happen): back to a chunk list.
          chunks.push(whole.subarray(0, received));
          whole = null;
        }
        received += c.length;
        if (received > MAX_BODY_BYTES) {
          req.destroy(new TypeError("the response is larger than 64 MiB"));
          return;
        }
        chunks.push(c);
      });
      res.on("error", (e) => reject(e));
      res.on("end", () => {
        settled = true;
        const status = res.statusCode ?? 0;
        const all = whole !== null ? whole.subarray(0, received) : chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received);
        resolve(new NodeResponse(status, new NodeResponseHeaders(res.rawHeaders), all));
        // Node's EventTarget takes several microseconds to remove a listener: not before the
        // application has seen the response.
        if (signal) setImmediate(() => signal.removeEventListener("abort", onAbort));
      });
    };
    const req = (https ? httpsRequest : httpRequest)(url, { method: init.method ?? "GET", headers, agent: https ? httpsAgent : httpAgent }, onResponse);
    let settled = false;
    const onAbort = () => {
      if (!settled) req.destroy(abortError(signal));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    req.on("error", (e) => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      // A keep-alive socket the server closed while it sat idle fails the next request before it
      // was processed: send it once more (the pattern Node's docs recommend), but only a request
      // that may be repeated. A long-poll or a publish the server may have processed fails
      // instead: the client then replays what a lost long-poll may have carried, and a publish is
      // never made twice.
      const code = (e as { code?: string }).code;
      if (mayRetry && init.repeatable === true && req.reusedSocket && (code === "ECONNRESET" || code === "EPIPE")) {
        attempt(input, init, false).then(resolve, reject);
        return;
      }
      reject(e);
    });
    req.end(body);
  });
}
