// A signed relay session token for the tests' authorize() hook: base64url(JSON payload) + "." +
// base64url(HMAC-SHA256(secret, payload)). WebCrypto only, so the same module runs in Node, Deno and
// workerd. (What an application would do after its own login; the relay only calls authorize().)
const enc = new TextEncoder();
const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const unb64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const key = (secret) => crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);

export async function mintSession(secret, payload) {
  const body = b64url(enc.encode(JSON.stringify(payload)));
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", await key(secret), enc.encode(body)));
  return `${body}.${b64url(sig)}`;
}

/** True when `authorization` is `Bearer <token>` with a valid signature and an unexpired `exp` (ms). */
export async function verifySession(authorization, secret) {
  const m = /^Bearer ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(authorization ?? "");
  if (!m) return false;
  let ok;
  try {
    ok = await crypto.subtle.verify("HMAC", await key(secret), unb64url(m[2]), enc.encode(m[1]));
  } catch {
    return false;
  }
  if (!ok) return false;
  const payload = JSON.parse(new TextDecoder().decode(unb64url(m[1])));
  return typeof payload.exp === "number" && payload.exp > Date.now();
}
