// Lifetimes: what the package keeps alive, measured with the collector itself (the real package
// against sfemu as its own process).
// * A client the application has dropped is collected once it is closed, or if it was never
//   opened; an open client whose only reference is its `for await` loop keeps running.
// * open()/close() cycles leave nothing behind in the shell.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Client, SalesforceStreamingClient, AccessTokenAuthenticator } from "sfstream";
// The package's own wasm glue, the module instance its Node entry loaded (not an export: read
// here only to count the references the shell holds).
const { initSync } = await import(new URL("../node_modules/sfstream/dist/wasm/sfstream.js", import.meta.url).href);
import { CREDENTIALS } from "../helpers/sfemu.mjs";
import { sfemuForFile } from "../helpers/fixture.mjs";

const emu = sfemuForFile(["--hold-timeout", "3000"]);
const login = () => ({ ...CREDENTIALS, loginUrl: emu.url });

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");

/** Full collections with turns of the event loop between them, so finalizers run. */
async function collect() {
  for (let k = 0; k < 4; k++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Counts the objects registered with `track()` that the collector has reclaimed. */
function reclaimed() {
  const r = { count: 0 };
  const registry = new FinalizationRegistry(() => r.count++);
  r.track = (o) => registry.register(o, null);
  return r;
}

describe("clients the application dropped are collected", () => {
  test("clients never opened", async () => {
    const r = reclaimed();
    for (let i = 0; i < 200; i++) {
      r.track(new Client(new AccessTokenAuthenticator({ accessToken: "00Dx!t", instanceUrl: emu.url })));
    }
    await collect();
    // Before: none was (the shell's table held each client's host, whose callbacks held the client).
    assert.ok(r.count >= 190, `${r.count} of 200 collected`);
  });

  test("clients opened, subscribed, given an event and closed", { timeout: 60000 }, async () => {
    const r = reclaimed();
    const ch = "/topic/LifetimeClosed";
    for (let i = 0; i < 20; i++) {
      const c = new SalesforceStreamingClient(login());
      r.track(c);
      await c.open();
      await c.subscribe(ch);
      await emu.control("publish", { channel: ch, count: 1 });
      await c.receive({ signal: AbortSignal.timeout(5000) });
      await c.close();
    }
    await collect();
    assert.ok(r.count >= 18, `${r.count} of 20 collected`);
  });

  // A token function or a JSON parser made in a scope where a closure also uses the client
  // (`req.on("close", () => client.close())`) shares that scope's context, so it holds the client.
  for (const what of ["token function", "jsonParse"]) {
    test(`closed clients whose ${what} was made where the client is used`, { timeout: 60000 }, async () => {
      const r = reclaimed();
      const ch = "/topic/LifetimeScope";
      for (let i = 0; i < 10; i++) {
        const token = async () => ({ accessToken: (await emu.control("token", {})).access_token, instanceUrl: emu.url });
        const c =
          what === "token function"
            ? new Client(new AccessTokenAuthenticator(token))
            : new Client(new AccessTokenAuthenticator(await token()), { jsonParse: (text) => JSON.parse(text) });
        const closeIt = () => c.close();
        r.track(c);
        await c.open();
        await c.subscribe(ch);
        await emu.control("publish", { channel: ch, count: 1 });
        await c.receive({ signal: AbortSignal.timeout(5000) });
        await closeIt();
      }
      await collect();
      // Before: none was (the shell, a root, held the authenticator and the parser).
      assert.ok(r.count >= 9, `${r.count} of 10 collected`);
    });
  }

  test("an open client held only by its for-await loop keeps receiving until the loop closes it", { timeout: 30000 }, async () => {
    const { got, r } = await loopAsOnlyReference("/topic/LifetimeLoop");
    assert.equal(got.length, 3, `received ${got.length}`);
    await collect();
    assert.equal(r.count, 1, "collected once its loop closed it and ended");
  });
});

describe("a close() that settles after the client was opened again does not end the new session", () => {
  test("close() not awaited, then open(): the loop that is the client's only reference keeps receiving", { timeout: 30000 }, async () => {
    const { got } = await loopAsOnlyReference("/topic/LifetimeReopen", (c) => void c.close()); // settles after open() was accepted
    assert.equal(got.length, 3, `received ${got.length}`);
  });
});

/**
 * Open a client (after `beforeOpen(client)`), subscribe to `ch` and consume it in a `for await`
 * loop that closes it after 3 events; drop every other reference, then publish 3 events with
 * full collections in between. Resolves once the loop ended, to what it received and the
 * count of clients collected.
 */
async function loopAsOnlyReference(ch, beforeOpen = () => {}) {
  const r = reclaimed();
  const got = [];
  let loop;
  {
    const c = new SalesforceStreamingClient(login());
    r.track(c);
    beforeOpen(c);
    await c.open();
    await c.subscribe(ch);
    loop = (async () => {
      for await (const m of c) {
        got.push(m.data.event.replayId);
        if (got.length === 3) await c.close();
      }
    })();
  }
  // Nothing but the loop (and what the package roots) refers to the client now.
  await collect();
  for (let i = 0; i < 3; i++) {
    await emu.control("publish", { channel: ch, count: 1 });
    await collect();
  }
  await loop;
  return { got, r };
}

test("open()/close() cycles of one client leave no shell callback behind", { timeout: 60000 }, async () => {
  // The wasm-bindgen table of JS values the shell holds: one entry per live reference.
  const table = initSync({ module: new Uint8Array(0) }).__wbindgen_externrefs;
  assert.ok(table instanceof WebAssembly.Table, "the shell's reference table");
  const live = () => {
    let n = 0;
    for (let i = 0; i < table.length; i++) {
      const v = table.get(i);
      if (v !== undefined && v !== null && v !== true && v !== false) n++;
    }
    return n;
  };
  const c = new SalesforceStreamingClient(login()); // connectionTimeout: the default 10 s deadline
  await c.open();
  await c.close();
  await collect();
  const before = live();
  for (let i = 0; i < 60; i++) {
    await c.open();
    await c.close();
  }
  await collect();
  // Before: one closure per open() (its login deadline, never called when the login won).
  assert.ok(live() - before < 10, `${live() - before} more references after 60 cycles`);
});
