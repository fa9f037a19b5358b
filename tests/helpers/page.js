// Helpers shared by the test pages that run in Chromium (tests/browser/page/scenarios.js,
// tests/storage/page/storage.js). Each runner copies this file next to its page as helpers.js,
// since every page is served from its own sfemu --www folder.

/** Throw unless `cond` holds. */
export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

/** The control API of sfemu, same origin: GET without a body, POST with one. */
export async function control(path, body) {
  const res = await fetch(`/_sfemu/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`control ${path}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
