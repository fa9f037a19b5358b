/**
 * `sfstream/relay/node`: run the relay of `sfstream/relay` on Node's `http` (or `https`) server.
 *
 * ```js
 * import { createServer } from "node:http";
 * import { createRelay } from "sfstream/relay";
 * import { toNodeHandler } from "sfstream/relay/node";
 * createServer(toNodeHandler(createRelay({ ... }))).listen(8787);
 * ```
 *
 * The types below describe the parts of `IncomingMessage` and `ServerResponse` the adapter uses,
 * so the package needs no `@types/node`; Node's own objects fit them.
 * @module
 */

import { checkOptionKeys } from "./options.js";
import type { RelayHandler } from "./relay.js";

/** The parts of `http.IncomingMessage` the adapter uses. */
export interface NodeRequestLike extends AsyncIterable<Uint8Array | string> {
  method?: string | undefined;
  url?: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  /** The connection: a `tls.TLSSocket` (whose `encrypted` is true) means the request came over https. */
  socket?: object | null;
}

/** The parts of `http.ServerResponse` the adapter uses. */
export interface NodeResponseLike {
  statusCode: number;
  readonly writableEnded: boolean;
  setHeader(name: string, value: string | readonly string[]): unknown;
  end(chunk?: Uint8Array): unknown;
  on(event: "close", listener: () => void): unknown;
}

/** Options of {@link toNodeHandler}. */
export interface NodeHandlerOptions {
  /** Base URL the relay is reached at (default: `http(s)://` + the `Host` header). */
  baseUrl?: string | undefined;
  /**
   * Most bytes of a request body handed to the handler (default 65536); past them its body stream
   * fails. The body is streamed, read only as far as the handler reads it: the relay refuses a body
   * over 32,768 bytes itself (413 with its CORS headers) and stops reading there, so at the default
   * this bound is never reached with the relay.
   */
  maxBodyBytes?: number | undefined;
}

const encoder = new TextEncoder();

/** Whether `socket` is a TLS socket (Node's `TLSSocket.encrypted`; a plain `net.Socket` has no such member). */
function isEncrypted(socket: object | null | undefined): boolean {
  return socket != null && "encrypted" in socket && socket.encrypted === true;
}

/** `RequestInit` with `duplex`, which a streamed request body needs (Node, Deno), not yet in TypeScript's DOM lib. */
interface StreamingRequestInit extends RequestInit {
  duplex: "half";
}

/** The body of `req` as a web stream, read from the socket only as the handler pulls it. */
function bodyStream(req: NodeRequestLike, limit: number, read: { toEnd: boolean }): ReadableStream<Uint8Array> {
  const chunks = req[Symbol.asyncIterator]();
  let size = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await chunks.next();
        if (next.done === true) {
          read.toEnd = true;
          controller.close();
          return;
        }
        const b = typeof next.value === "string" ? encoder.encode(next.value) : next.value;
        size += b.byteLength;
        if (size > limit) {
          controller.error(new RangeError(`request body over maxBodyBytes (${limit})`));
          return;
        }
        controller.enqueue(b);
      },
    },
    { highWaterMark: 0 },
  );
}

/** A `(req, res)` listener for `http.createServer` that runs `relay`. */
export function toNodeHandler(relay: RelayHandler, options: NodeHandlerOptions = {}): (req: NodeRequestLike, res: NodeResponseLike) => Promise<void> {
  if (typeof relay !== "function") throw new TypeError("relay must be the handler returned by createRelay()");
  checkOptionKeys(options, ["baseUrl", "maxBodyBytes"]);
  const limit = options.maxBodyBytes ?? 65536;
  if (typeof limit !== "number" || !Number.isFinite(limit) || limit <= 0) throw new TypeError("maxBodyBytes must be a positive number");
  if (options.baseUrl !== undefined && (typeof options.baseUrl !== "string" || !URL.canParse(options.baseUrl))) {
    throw new TypeError("baseUrl must be an absolute URL string");
  }
  return async (req, res) => {
    const controller = new AbortController();
    res.on("close", () => {
      if (!res.writableEnded) controller.abort();
    });
    try {
      const host = typeof req.headers.host === "string" ? req.headers.host : "localhost";
      const base = options.baseUrl ?? `${isEncrypted(req.socket) ? "https" : "http"}://${host}`;
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined || k.startsWith(":")) continue;
        if (Array.isArray(v)) for (const x of v) headers.append(k, x);
        else headers.set(k, v);
      }
      const method = req.method ?? "GET";
      // The body is streamed, not buffered here: the relay reads it with its own cap and answers an
      // oversized one itself (413 with its CORS headers, which only it knows).
      const init: StreamingRequestInit = { method, headers, signal: controller.signal, duplex: "half" };
      const read = { toEnd: true };
      if (method !== "GET" && method !== "HEAD") {
        read.toEnd = false;
        init.body = bodyStream(req, limit, read);
      }
      const response = await relay(new Request(new URL(req.url ?? "/", base), init));
      res.statusCode = response.status;
      response.headers.forEach((value, name) => {
        res.setHeader(name, value);
      });
      // Answered before the whole body was read (413, 401, ...): the rest of it is still on the
      // connection, which cannot carry another request. Close it once the answer is sent.
      if (!read.toEnd) res.setHeader("Connection", "close");
      res.end(new Uint8Array(await response.arrayBuffer()));
    } catch {
      if (controller.signal.aborted || res.writableEnded) return;
      res.statusCode = 500;
      res.setHeader("Content-Type", "text/plain");
      res.end(new TextEncoder().encode("relay error"));
    }
  };
}
