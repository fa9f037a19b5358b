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

import type { RelayHandler } from "./relay.js";

/** The parts of `http.IncomingMessage` the adapter uses. */
export interface NodeRequestLike extends AsyncIterable<Uint8Array | string> {
  method?: string | undefined;
  url?: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  socket?: { encrypted?: boolean } | null;
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
  baseUrl?: string;
  /** Largest request body read, in bytes (default 65536; the relay itself refuses more than 32768). */
  maxBodyBytes?: number;
}

/** A `(req, res)` listener for `http.createServer` that runs `relay`. */
export function toNodeHandler(relay: RelayHandler, options: NodeHandlerOptions = {}): (req: NodeRequestLike, res: NodeResponseLike) => Promise<void> {
  if (typeof relay !== "function") throw new TypeError("relay must be the handler returned by createRelay()");
  const limit = options.maxBodyBytes ?? 65536;
  return async (req, res) => {
    const controller = new AbortController();
    res.on("close", () => {
      if (!res.writableEnded) controller.abort();
    });
    try {
      const host = typeof req.headers.host === "string" ? req.headers.host : "localhost";
      const base = options.baseUrl ?? `${req.socket?.encrypted ? "https" : "http"}://${host}`;
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined || k.startsWith(":")) continue;
        if (Array.isArray(v)) for (const x of v) headers.append(k, x);
        else headers.set(k, v);
      }
      const method = req.method ?? "GET";
      let body: Uint8Array<ArrayBuffer> | null = null;
      if (method !== "GET" && method !== "HEAD") {
        const chunks: Uint8Array[] = [];
        let size = 0;
        for await (const c of req) {
          const b = typeof c === "string" ? new TextEncoder().encode(c) : c;
          size += b.length;
          if (size > limit) {
            res.statusCode = 413;
            res.setHeader("Content-Type", "text/plain");
            res.end(new TextEncoder().encode("Maximum Request Size Exceeded"));
            return;
          }
          chunks.push(b);
        }
        body = new Uint8Array(size);
        let at = 0;
        for (const c of chunks) {
          body.set(c, at);
          at += c.length;
        }
      }
      const init: RequestInit = { method, headers, signal: controller.signal };
      if (body !== null) init.body = body;
      const response = await relay(new Request(new URL(req.url ?? "/", base), init));
      res.statusCode = response.status;
      response.headers.forEach((value, name) => {
        res.setHeader(name, value);
      });
      res.end(new Uint8Array(await response.arrayBuffer()));
    } catch {
      if (controller.signal.aborted || res.writableEnded) return;
      res.statusCode = 500;
      res.setHeader("Content-Type", "text/plain");
      res.end(new TextEncoder().encode("relay error"));
    }
  };
}
