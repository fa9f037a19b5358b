// Node entry point: the wasm bytes are read from disk (Node's fetch has no file: URLs).
import { readFileSync } from "node:fs";
import { initSync, setFetch } from "./wasm/sfstream.js";
import { nodeFetch } from "./node-transport.js";

initSync({ module: readFileSync(new URL("./wasm/sfstream_bg.wasm", import.meta.url)) });
// Node 20's fetch (undici) costs a fraction of a millisecond per request more than node:http with
// a keep-alive agent; the long-poll and the OAuth requests use the latter.
setFetch(nodeFetch);

export * from "./index.js";
