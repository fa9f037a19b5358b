// Deno entry point: Deno reads the wasm bytes from the file next to this module.
import { initSync, setFetch } from "./wasm/sfstream.js";

declare const Deno: { readFileSync(path: URL): Uint8Array };
initSync({ module: Deno.readFileSync(new URL("./wasm/sfstream_bg.wasm", import.meta.url)) });

/** What the shell passes to `fetch`: `repeatable` when sending the request twice is harmless. */
interface ShellInit extends RequestInit {
  repeatable?: boolean;
  duplex?: "half";
}

const encoder = new TextEncoder();

/**
 * Deno's `fetch` sends a request a second time when the reused connection it went out on is
 * closed or reset before the response's head arrives, if its body can be sent again (a string
 * can, a stream cannot). A long-poll the server answered with events, or a publish it made,
 * must not be sent twice: the events would be lost with no sign, the event published twice. So
 * the requests the shell does not mark repeatable (`/meta/connect`, publishes) go with their body
 * as a stream, and a lost reply reaches the client as the network error it is (the client then
 * starts a new session that replays, as in Node; a publish fails with a `TransportError`).
 */
function denoFetch(input: string, init: ShellInit): Promise<Response> {
  if (init.repeatable === true || typeof init.body !== "string") return fetch(input, init);
  const bytes = encoder.encode(init.body);
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  const streamed: ShellInit = { ...init, body, duplex: "half" };
  return fetch(input, streamed);
}
setFetch(denoFetch);

export * from "./index.js";
