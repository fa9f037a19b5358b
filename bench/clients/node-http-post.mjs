// A minimal fetch-like POST over node:http with a keep-alive agent, for the "ceiling-http" client:
// the same bare loop as the ceiling, on the transport CometD's Node adapter (and sfstream in Node)
// use. Returns { status, headers.getSetCookie(), text() }; nothing else of fetch is needed.
import { Agent, request } from "node:http";

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

export function httpPost(url, { headers = {}, body = "", signal } = {}) {
  return new Promise((resolve, reject) => {
    const req = request(new URL(url), { method: "POST", agent, headers: { ...headers, "content-length": Buffer.byteLength(body) } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const setCookie = res.headers["set-cookie"] ?? [];
        resolve({ status: res.statusCode, headers: { getSetCookie: () => setCookie }, text: async () => text });
      });
    });
    req.on("error", reject);
    signal?.addEventListener("abort", () => req.destroy(new Error("aborted")), { once: true });
    req.end(body);
  });
}
