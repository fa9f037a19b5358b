// Minimal ambient declarations for the runtime-specific entry points, so the build needs no
// @types packages. Not emitted: the published .d.ts files do not reference these modules.
declare module "node:fs" {
  export function readFileSync(path: URL): Uint8Array;
}

declare module "node:http" {
  export interface IncomingMessage {
    statusCode?: number;
    rawHeaders: string[];
    headers: Record<string, string | string[] | undefined>;
    on(event: "data", listener: (chunk: import("node:buffer").Buffer) => void): this;
    on(event: "end", listener: () => void): this;
    on(event: "error", listener: (err: Error) => void): this;
  }
  export interface ClientRequest {
    reusedSocket: boolean;
    on(event: "error", listener: (err: Error) => void): this;
    destroy(error?: Error): this;
    end(body?: string): this;
  }
  export interface RequestOptions {
    method?: string;
    headers?: Record<string, string>;
    agent?: Agent;
  }
  export class Agent {
    constructor(options?: { keepAlive?: boolean; maxSockets?: number });
  }
  export function request(url: URL, options: RequestOptions, callback: (res: IncomingMessage) => void): ClientRequest;
}

declare module "node:https" {
  import type { ClientRequest, IncomingMessage, RequestOptions } from "node:http";
  export class Agent {
    constructor(options?: { keepAlive?: boolean; maxSockets?: number });
  }
  export function request(url: URL, options: RequestOptions, callback: (res: IncomingMessage) => void): ClientRequest;
}

declare module "node:buffer" {
  export class Buffer extends Uint8Array {
    static byteLength(s: string): number;
    static concat(list: Buffer[], totalLength?: number): Buffer;
    static allocUnsafe(size: number): Buffer;
    subarray(start?: number, end?: number): Buffer;
    toString(encoding?: "utf8"): string;
  }
}

declare module "node:timers" {
  export function setImmediate(callback: () => void): unknown;
}
