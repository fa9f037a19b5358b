// Three tabs of one origin in one Chromium share one Salesforce connection (SharedTabClient): the
// leader tab holds it (sfemu's stats show ONE streaming client), the others follow over
// BroadcastChannel. Closing the leader tab, a follower takes over (Web Locks) and resumes from the
// shared IndexedDB markers: every event published meanwhile reaches the remaining tabs, each once,
// in order. `shared: false` gives a tab a connection of its own. Run by run.mjs against its Deno relay.
// The later checks each use a browser context of their own (its own IndexedDB, locks and
// BroadcastChannels) and a relay of their own in node:http (`tabsRelay`), which allows publishing on
// /u/Tabs_* and accepts only the session tokens the check lets in, so a check can expire a tab's session.
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { until, CREDENTIALS } from "../helpers/sfemu.mjs";

const CHANNEL = "/event/Relay_Tabs__e";
// A channel with no event before the leader changes: the takeover must not lose what is published
// on it during the switch (no marker and no seen event to resume from).
const QUIET = "/event/Relay_Quiet__e";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The packed package's relay in node:http, in front of sfemu: publish allowed, sessions in `sessions`. */
async function startTabsRelay(emu, pageOrigin) {
  const { PasswordAuthenticator } = await import("sfstream");
  const { createRelay } = await import("sfstream/relay");
  const { toNodeHandler } = await import("sfstream/relay/node");
  const sessions = new Set();
  const relay = createRelay({
    authenticator: new PasswordAuthenticator({ ...CREDENTIALS, loginUrl: emu.url }),
    allowedOrigins: [pageOrigin],
    channels: ["/event/Tabs_*", "/u/Tabs_*"],
    allowPublish: true,
    authorize: (request) => sessions.has((request.headers.get("authorization") ?? "").replace(/^Bearer /, "")),
  });
  const server = createServer(toNodeHandler(relay));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    sessions,
    /** A new session token the relay accepts. */
    session() {
      const t = `tabs-${randomBytes(12).toString("hex")}`;
      sessions.add(t);
      return t;
    },
    close() {
      server.closeAllConnections?.();
      server.close();
    },
  };
}

export async function runTabs({ check, assert, browser, launchWithBfcache, emu, relayUrl, pageOrigin, session }) {
  const context = await browser.newContext();
  const pages = [];
  const errors = [];
  let tabsRelay = null;
  const newTab = async (ctx = context) => {
    const page = await ctx.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${pageOrigin}/tabs.html`);
    await page.waitForFunction(() => window.tabTest !== undefined, null, { timeout: 20000 });
    pages.push(page);
    return page;
  };
  const state = (p) => p.evaluate(() => window.tabTest.state());
  const clients = async () => (await emu.control("stats")).clients;
  /** Open `page`'s client through the tabs relay with a session of its own (returned as `session`). */
  const openVia = async (page, channels, options = {}, hooks = {}) => {
    const session = tabsRelay.session();
    const o = await page.evaluate(([u, s, c, o, h]) => window.tabTest.open(u, s, c, o, h), [tabsRelay.url, session, channels, options, hooks]);
    return { ...o, session };
  };
  /** Run `fn(ctx)` in a fresh browser context (own IndexedDB, locks, BroadcastChannels), through the tabs relay. */
  async function isolated(fn, inBrowser = browser) {
    tabsRelay ??= await startTabsRelay(emu, pageOrigin);
    const ctx = await inBrowser.newContext();
    try {
      await fn(ctx);
    } finally {
      for (const p of ctx.pages()) await p.evaluate(() => window.tabTest?.close()).catch(() => {});
      await ctx.close().catch(() => {});
      await until(async () => (await clients()) === 0, { timeout: 15000, what: "no streaming client left after the check" }).catch(() => {});
    }
  }
  /**
   * In `ctx`: a leads `ch`, b follows with a session the relay then forgets, and a closes: b's
   * takeovers fail for its connectionTimeout (3 s), then b fails. Returns b.
   */
  async function failedFollower(ctx, ch) {
    const [a, b] = [await newTab(ctx), await newTab(ctx)];
    assert((await openVia(a, [ch])).role === "leader", "a leads");
    const ob = await openVia(b, [ch], { connectionTimeout: 3000 });
    assert(ob.role === "follower", "b follows");
    tabsRelay.sessions.delete(ob.session);
    await a.evaluate(() => window.tabTest.close());
    await a.close();
    await until(async () => (await state(b)).failure !== null, { timeout: 15000, what: "b's receive() to reject" }).catch(async (e) => {
      throw new Error(`${e.message}: ${JSON.stringify(await state(b))}`);
    });
    return b;
  }
  /** Received replay ids of `channel` in `page`. */
  const idsOf = async (page, channel) => (await state(page)).got.filter((e) => e.channel === channel).map((e) => e.replayId);

  function checkAll(all, ranges, what, channel = CHANNEL) {
    const got = all.filter((e) => e.channel === channel);
    const ids = got.map((e) => e.replayId);
    const total = ranges.reduce((n, r) => n + r.published, 0);
    assert(all.every((e) => e.channel === CHANNEL || e.channel === QUIET), `${what}: channel`);
    assert(ids.length === total, `${what}: ${ids.length} of ${total} events (${ids})`);
    assert(ids.every((id, i) => i === 0 || id > ids[i - 1]), `${what}: in order, no duplicates (${ids})`);
    assert(ids[0] === ranges[0].firstReplayId && ids.at(-1) === ranges.at(-1).lastReplayId, `${what}: span ${ids[0]}..${ids.at(-1)}`);
    for (const r of ranges) assert(ids.includes(r.firstReplayId) && ids.includes(r.lastReplayId), `${what}: has ${r.firstReplayId}..${r.lastReplayId}`);
  }

  /** A browser with the back/forward cache on (playwright-core's default turns it off). */
  let bfBrowser = null;
  const withBfcache = async (fn) => {
    bfBrowser ??= await launchWithBfcache();
    await isolated(fn, bfBrowser);
  };
  /** Navigate `page` to another page of the origin; true if the page left went into the back/forward cache. */
  const away = async (page) => {
    await page.goto(`${pageOrigin}/other.html`);
    return (await page.evaluate(() => window.lastPagehide)) === "true";
  };

  try {
    await until(async () => (await clients()) === 0, { timeout: 20000, what: "no streaming client before the tabs" });
    const [t1, t2, t3] = [await newTab(), await newTab(), await newTab()];

    await check("tabs: the browser entry exports SharedTabClient", async () => {
      assert(await t1.evaluate(() => window.tabTest.exported), "sfstream (browser entry) exports SharedTabClient");
    });

    const published = [];
    await check("tabs: three tabs, one leader, ONE streaming client in sfemu; every tab receives (the third with batches() of at most 2)", async () => {
      const o1 = await t1.evaluate(([u, s, c]) => window.tabTest.open(u, s, c), [relayUrl, session, [CHANNEL, QUIET]]);
      const o2 = await t2.evaluate(([u, s, c]) => window.tabTest.open(u, s, c), [relayUrl, session, [CHANNEL, QUIET]]);
      const o3 = await t3.evaluate(([u, s, c]) => window.tabTest.open(u, s, c, {}, { batchSize: 2 }), [relayUrl, session, [CHANNEL, QUIET]]);
      assert(o1.role === "leader" && o2.role === "follower" && o3.role === "follower", `roles ${JSON.stringify([o1, o2, o3])}`);
      assert(o1.key === o2.key && o2.key === o3.key, "one election key");
      await new Promise((r) => setTimeout(r, 500));
      const stats = await emu.control("stats");
      assert(stats.clients === 1, `sfemu counts ${stats.clients} streaming clients: ${JSON.stringify(stats.sessions)}`);
      assert(stats.sessions.filter((s) => s.subscriptions.includes(CHANNEL)).length === 1, "one session subscribed");
      published.push(await emu.control("publish", { channel: CHANNEL, count: 5 }));
      for (const [i, t] of [t1, t2, t3].entries()) {
        await until(async () => (await state(t)).got.filter((e) => e.channel === CHANNEL).length >= 5, { timeout: 15000, what: `tab ${i + 1} to receive 5 events` });
        checkAll((await state(t)).got, published, `tab ${i + 1}`);
      }
    });

    await check("tabs: a follower's subscribe outside the relay allowlist fails with the relay's error", async () => {
      const r = await t2.evaluate(() => window.tabTest.subscribeForbidden("/topic/Forbidden"));
      assert(!r.ok && r.name === "ServerError" && r.error === "403::Channel not allowed by relay", JSON.stringify(r));
    });

    await check("tabs: closing the leader tab, a follower takes over and every event published meanwhile arrives", async () => {
      await t1.close();
      // Published while the leadership moves: no tab holds the connection for a moment.
      published.push(await emu.control("publish", { channel: CHANNEL, count: 5 }));
      const quiet = [await emu.control("publish", { channel: QUIET, count: 3 })];
      const leader = await until(async () => {
        const [s2, s3] = [await state(t2), await state(t3)];
        return s2.role === "leader" ? { tab: t2, other: t3, s: s2 } : s3.role === "leader" ? { tab: t3, other: t2, s: s3 } : null;
      }, { timeout: 15000, what: "a follower to take over" });
      assert(leader.s.roles.join(",") === "follower,leader", `roles of the new leader: ${leader.s.roles}`);
      published.push(await emu.control("publish", { channel: CHANNEL, count: 5 }));
      for (const [name, t] of [["new leader", leader.tab], ["follower", leader.other]]) {
        await until(async () => (await state(t)).got.filter((e) => e.channel === CHANNEL).length >= 15, { timeout: 20000, what: `${name} to receive 15 events` }).catch(async (e) => {
          throw new Error(`${e.message}: published ${JSON.stringify(published)}; tab ${JSON.stringify(await state(t))}; markers ${JSON.stringify(await t.evaluate(() => window.tabTest.markers()))}; sfemu ${JSON.stringify((await emu.control("stats")).sessions)}`);
        });
        await new Promise((r) => setTimeout(r, 300));
        const s = await state(t);
        assert(s.failure === null, `${name}: ${s.failure}`);
        checkAll(s.got, published, name);
        await until(async () => (await state(t)).got.filter((e) => e.channel === QUIET).length >= 3, { timeout: 10000, what: `${name} to receive the quiet channel's 3 events` });
        checkAll((await state(t)).got, quiet, `${name} (quiet channel)`, QUIET);
      }
      assert((await state(leader.other)).role === "follower", "the other tab still follows");
      // The new leader keeps the shared marker in IndexedDB (what the next takeover resumes from).
      await until(async () => {
        const m = Object.entries(await leader.tab.evaluate(() => window.tabTest.markers())).find(([k]) => k.endsWith(CHANNEL));
        return m && JSON.parse(m[1]).replayId === published.at(-1).lastReplayId;
      }, { timeout: 5000, what: "the shared IndexedDB marker to reach the last event" });
      // The dead leader's session goes (disconnected or swept); one client remains.
      await until(async () => (await clients()) === 1, { timeout: 30000, what: "one streaming client after the takeover" });
    });

    await check("tabs: shared:false gives a tab its own connection", async () => {
      const t4 = await newTab();
      const o = await t4.evaluate(([u, s, c]) => window.tabTest.open(u, s, c, { shared: false }), [relayUrl, session, [CHANNEL, QUIET]]);
      assert(o.role === "standalone", JSON.stringify(o));
      assert((await clients()) === 2, "a second streaming client");
      await t4.evaluate(() => window.tabTest.close());
      await until(async () => (await clients()) === 1, { timeout: 10000, what: "the standalone client to disconnect" });
      const closed = (await state(t4)).statuses.filter((x) => x === "closed").length;
      assert(closed === 1, `one closed status, not ${closed}`);
    });

    await check("tabs: closing every tab client disconnects the one connection", async () => {
      for (const p of pages.filter((p) => !p.isClosed())) await p.evaluate(() => window.tabTest.close());
      await until(async () => (await clients()) === 0, { timeout: 15000, what: "no streaming client" });
    });
    /** Publish `count` events on `channel` dated `ago` ms in the past (sfemu's clock moved back meanwhile). */
    async function publishDated(channel, count, ago) {
      await emu.control("clock", { advanceMs: -ago });
      try {
        return await emu.control("publish", { channel, count });
      } finally {
        await emu.control("clock", { advanceMs: ago });
      }
    }
    /**
     * Wait until `page` has received on `channel` exactly the events of `ranges` (sfemu publish
     * results; replay ids grow by random steps), once each and in order, and nothing more after a moment.
     */
    async function expectRanges(page, channel, ranges, what) {
      const total = ranges.reduce((n, r) => n + r.published, 0);
      const show = async () => `got ${await idsOf(page, channel)}, want ${ranges.map((r) => `${r.published} in ${r.firstReplayId}..${r.lastReplayId}`).join(" + ")}`;
      await until(async () => (await idsOf(page, channel)).length >= total, { timeout: 15000, what }).catch(async (e) => {
        throw new Error(`${e.message}: ${await show()}; ${JSON.stringify(await state(page))}`);
      });
      await sleep(300);
      const ids = await idsOf(page, channel);
      const inRanges = ids.every((id) => ranges.some((r) => id >= r.firstReplayId && id <= r.lastReplayId));
      const ends = ranges.every((r) => ids.includes(r.firstReplayId) && ids.includes(r.lastReplayId));
      const ordered = ids.every((id, i) => i === 0 || id > ids[i - 1]);
      assert(ids.length === total && inRanges && ends && ordered, `${what}: ${await show()}`);
    }

    await check("tabs: a page opened later resumes from the stored marker: events published meanwhile, dated minutes ago, all arrive", async () => {
      const ch = "/event/Tabs_Resume__e";
      await isolated(async (ctx) => {
        const a = await newTab(ctx);
        assert((await openVia(a, [ch])).role === "leader", "the first tab leads");
        const first = await emu.control("publish", { channel: ch, count: 2 });
        await expectRanges(a, ch, [first], "the first page");
        // Leaving the page stores the marker (the leader's Client.close()).
        await a.evaluate(() => window.tabTest.close());
        await a.close();
        // While no page is open (the next morning, say), events are published: dated 10 minutes ago.
        const gap = await publishDated(ch, 3, 10 * 60_000);
        // A page of the same origin opens over the same IndexedDB and resumes after the stored marker.
        const b = await newTab(ctx);
        assert((await openVia(b, [ch])).role === "leader", "the new page leads");
        const after = await emu.control("publish", { channel: ch, count: 1 });
        await expectRanges(b, ch, [gap, after], "the page opened later");
      });
    });

    await check("tabs: open()'s login is bounded by connectionTimeout and aborted by close(), its signal with it", async () => {
      await isolated(async (ctx) => {
        const a = await newTab(ctx);
        const r = await a.evaluate((url) => window.tabTest.hangingLogin(url), relayUrl);
        assert(r.signalPassed, `the authenticator gets an AbortSignal: ${JSON.stringify(r)}`);
        assert(r.deadline.instanceOf?.AuthenticationError && /connectionTimeout/.test(r.deadline.message), `at the deadline: ${JSON.stringify(r.deadline)}`);
        assert(r.deadline.ms < 3000 && r.deadline.aborted, `within connectionTimeout, its login aborted: ${JSON.stringify(r.deadline)}`);
        assert(r.closed.instanceOf?.ClientInvalidOperation && r.closed.aborted, `close() during the login: ${JSON.stringify(r.closed)}`);
      });
    });

    await check("tabs: return() while steps of messages() or batches() wait: they end, the next message goes to the next receive(), none is lost", async () => {
      const ch = "/u/Tabs_Return";
      await isolated(async (ctx) => {
        const a = await newTab(ctx);
        await openVia(a, [ch], {}, { consume: false });
        for (const kind of ["messages", "batches"]) {
          const r = await a.evaluate((k) => window.tabTest.returnWhileWaiting(k), kind);
          assert(r.done === true && r.value === null, `${kind}: the waiting steps ended empty: ${JSON.stringify(r)}`);
          const p = await emu.control("publish", { channel: ch, count: 1 });
          const m = await a.evaluate(() => window.tabTest.receiveOne(5000));
          assert(m.replayId === p.firstReplayId, `${kind}: the message after return() went to receive(): ${JSON.stringify(m)} vs ${p.firstReplayId}`);
        }
      });
    });

    await check("tabs: replay: ALL_EVENTS delivers every retained event, also those older than a minute", async () => {
      const ch = "/event/Tabs_All__e";
      const old = await publishDated(ch, 3, 10 * 60_000);
      const recent = await emu.control("publish", { channel: ch, count: 1 });
      await isolated(async (ctx) => {
        const a = await newTab(ctx);
        assert((await openVia(a, [ch], { replay: -2 /* ReplayOption.ALL_EVENTS */ })).role === "leader", "the tab leads");
        await expectRanges(a, ch, [old, recent], "ALL_EVENTS");
      });
    });

    await check("tabs: a takeover keeps what is published during the switch on a channel only a follower wants", async () => {
      const busy = "/event/Tabs_Busy__e";
      const mine = "/event/Tabs_FollowerOnly__e";
      await isolated(async (ctx) => {
        const [a, b, c] = [await newTab(ctx), await newTab(ctx), await newTab(ctx)];
        assert((await openVia(a, [busy])).role === "leader", "a leads");
        assert((await openVia(b, [busy])).role === "follower", "b follows (and is next in the lock queue)");
        assert((await openVia(c, [mine])).role === "follower", "c follows");
        // a disconnects (its session is gone from sfemu), then its page closes.
        await a.evaluate(() => window.tabTest.close());
        await a.close();
        // Published while b takes over: no marker and no event on c's channel yet, and b never wanted it.
        const during = await emu.control("publish", { channel: mine, count: 2 });
        await until(async () => (await state(b)).role === "leader", { timeout: 15000, what: "b to take over" });
        await until(async () => (await emu.control("stats")).sessions.some((x) => x.subscriptions.includes(mine)), { timeout: 15000, what: "b's connection to subscribe c's channel" });
        const after = await emu.control("publish", { channel: mine, count: 1 });
        await expectRanges(c, mine, [during, after], "the follower's channel");
      });
    });

    await check("tabs: errors keep their class and fields from the leader tab to the others", async () => {
      const ch = "/event/Tabs_Errors__e";
      await isolated(async (ctx) => {
        const [a, b] = [await newTab(ctx), await newTab(ctx)];
        const oa = await openVia(a, [ch]);
        assert(oa.role === "leader", "a leads");
        assert((await openVia(b, [ch])).role === "follower", "b follows");
        // A call the relay refuses, answered to b by a: ServerError with its parsed fields.
        const refused = await b.evaluate(() => window.tabTest.call("subscribe", "/event/Not_Allowed__e"));
        assert(!refused.ok && refused.instanceOf.ServerError && refused.errorCode === 403 && refused.errorMessage === "Channel not allowed by relay", `refused subscribe: ${JSON.stringify(refused)}`);
        // a's session expires: the relay answers 401 and a's connection fails with AuthenticationError.
        tabsRelay.sessions.delete(oa.session);
        await until(async () => (await state(b)).failure !== null, { timeout: 20000, what: "the follower's receive() to fail" });
        const sa = await state(a);
        const sb = await state(b);
        assert(sa.failureError?.instanceOf.AuthenticationError, `the leader's own failure: ${JSON.stringify(sa.failureError)}`);
        const e = sb.failureError;
        assert(e?.name === "AuthenticationError" && e.instanceOf.AuthenticationError && e.instanceOf.SfstreamError, `the follower's receive() rejects with an AuthenticationError: ${JSON.stringify(e)}`);
        assert(sb.statuses.some((x) => x.startsWith("failed: AuthenticationError")), `the follower's failed status carries an AuthenticationError: ${sb.statuses}`);
        // The connection is gone: a call from b fails as a ClientInvalidOperation (iterateMessages ends on it).
        const late = await b.evaluate(() => window.tabTest.call("subscribe", "/event/Tabs_Late__e"));
        assert(!late.ok && late.name === "ClientInvalidOperation" && late.instanceOf.ClientInvalidOperation, `a call after the failure: ${JSON.stringify(late)}`);
      });
    });

    await check("tabs: close() called from the role status listener leaves no connection open", async () => {
      await isolated(async (ctx) => {
        const a = await newTab(ctx);
        const o = await openVia(a, ["/event/Tabs_Role__e"], {}, { closeOnRole: "leader" });
        assert((await state(a)).closed, `the tab is closed: ${JSON.stringify(o)}`);
        // The Client that open() started for the leader role must be closed with the tab.
        await until(async () => (await clients()) === 0, { timeout: 10000, what: "no streaming client left" }).catch(async (e) => {
          throw new Error(`${e.message}: sfemu ${JSON.stringify((await emu.control("stats")).sessions)}; tab ${JSON.stringify(await state(a))}`);
        });
      });
    });

    await check("tabs: close() called from the follower role status listener: open() rejects, the tab is closed", async () => {
      await isolated(async (ctx) => {
        const [a, b] = [await newTab(ctx), await newTab(ctx)];
        assert((await openVia(a, ["/event/Tabs_Lead__e"])).role === "leader", "a leads");
        // Before: open() resolved on a closed tab, and the closed tab's subscriptions and calls
        // still went to the leader after its goodbye.
        const o = await openVia(b, [], {}, { closeOnRole: "follower" });
        assert(o.error?.instanceOf?.ClientInvalidOperation, `open(): ${JSON.stringify(o)}`);
        assert((await state(b)).closed, "b is closed");
      });
    });

    await check("tabs: a takeover that cannot connect (session expired) goes back to following and retries; then one leader, every tab receives", async () => {
      const ch = "/event/Tabs_Takeover__e";
      await isolated(async (ctx) => {
        const [a, b] = [await newTab(ctx), await newTab(ctx)];
        assert((await openVia(a, [ch])).role === "leader", "a leads");
        const ob = await openVia(b, [ch]);
        assert(ob.role === "follower", "b follows");
        // b's session expires: the relay refuses it, so b's takeover cannot connect.
        tabsRelay.sessions.delete(ob.session);
        await a.evaluate(() => window.tabTest.close());
        await a.close();
        await until(async () => (await state(b)).statuses.includes("takeoverFailed"), { timeout: 15000, what: "b's takeover to fail and be reported" }).catch(async (e) => {
          throw new Error(`${e.message}: ${JSON.stringify(await state(b))}`);
        });
        const failed = await state(b);
        assert(failed.role === "follower" && failed.failure === null, `b follows again, not failed: ${JSON.stringify(failed)}`);
        // The takeover's connection closing is not the tab closing.
        assert(!failed.statuses.includes("closed"), `b's statuses: ${failed.statuses}`);
        // The app's token function now hands out a fresh session; a new tab opens meanwhile.
        await b.evaluate((t) => window.tabTest.setToken(t), tabsRelay.session());
        const c = await newTab(ctx);
        await openVia(c, [ch]);
        const roles = async () => [(await state(b)).role, (await state(c)).role].sort().join(",");
        await until(async () => (await roles()) === "follower,leader", { timeout: 15000, what: "one leader (b's retry or c) and one follower" }).catch(async (e) => {
          throw new Error(`${e.message}: roles ${await roles()}; b ${JSON.stringify(await state(b))}`);
        });
        await until(async () => (await clients()) === 1, { timeout: 10000, what: "one streaming client" });
        const p = await emu.control("publish", { channel: ch, count: 3 });
        await expectRanges(b, ch, [p], "b");
        await expectRanges(c, ch, [p], "c");
        assert((await roles()) === "follower,leader", `still one leader: ${await roles()}`);
      });
    });

    await check("tabs: a tab whose takeovers keep failing for connectionTimeout fails like a Client: failed status, receive() and calls reject", async () => {
      const ch = "/event/Tabs_GiveUp__e";
      await isolated(async (ctx) => {
        const b = await failedFollower(ctx, ch);
        const sb = await state(b);
        assert(sb.failureError.instanceOf.AuthenticationError, `b fails with the takeover's error: ${JSON.stringify(sb.failureError)}`);
        assert(sb.statuses.includes("takeoverFailed") && sb.statuses.some((x) => x.startsWith("failed: AuthenticationError")), `statuses: ${sb.statuses}`);
        assert(sb.role !== "leader", `b does not pose as the leader: ${sb.role}`);
        const late = await b.evaluate(() => window.tabTest.call("subscribe", "/event/Tabs_Late__e"));
        assert(!late.ok && late.instanceOf.ClientInvalidOperation, `a call after the failure: ${JSON.stringify(late)}`);
        assert((await clients()) === 0, "no connection left behind");
      });
    });

    await check("tabs: a leader restarted with close() not awaited, then open(): a second close() waits for the first, open() leads again, the tab receives", async () => {
      const ch = "/event/Tabs_Restart__e";
      await isolated(async (ctx) => {
        const a = await newTab(ctx);
        assert((await openVia(a, [ch])).role === "leader", "a leads");
        // Before: open() rejected "closed" (the first close() ended by closing the new session)
        // and the tab stayed closed; the second close() resolved while the first still ran.
        const r = await a.evaluate(() => window.tabTest.restart());
        assert(r.opened === "open" && r.closed === false && r.role === "leader", JSON.stringify(r));
        await a.evaluate(([c]) => window.tabTest.call("subscribe", c), [ch]);
        const p = await emu.control("publish", { channel: ch, count: 2 });
        await expectRanges(a, ch, [p], "a");
      });
    });

    await check("tabs: a follower's publish() in flight when the leader closes goes to the next leader and resolves", async () => {
      const ch = "/u/Tabs_Handover";
      await isolated(async (ctx) => {
        const [a, b] = [await newTab(ctx), await newTab(ctx)];
        assert((await openVia(a, [])).role === "leader", "a leads");
        assert((await openVia(b, [])).role === "follower", "b follows");
        await emu.control("delay", { ms: 1500, count: 2 });
        const call = b.evaluate(([c]) => window.tabTest.call("publish", c, "handover"), [ch]);
        await sleep(300);
        await a.evaluate(() => window.tabTest.close());
        // Before: it rejected with the leader's "the client is closed" (and may have been made).
        const r = await call;
        assert(r.ok, `publish: ${JSON.stringify(r)}`);
        const sb = await state(b);
        assert(sb.role === "leader", "b took over");
        // The old leader's connection closing is a handover, not b's `closed` (b heard it before).
        assert(!sb.statuses.includes("closed"), `b's statuses: ${sb.statuses}`);
      });
    });

    await check("tabs: a 'failed' listener that sets a good token, then close() and open(), gets a working tab", async () => {
      const ch = "/event/Tabs_Reopen__e";
      await isolated(async (ctx) => {
        const [a, b] = [await newTab(ctx), await newTab(ctx)];
        assert((await openVia(a, [ch])).role === "leader", "a leads");
        const ob = await openVia(b, [ch], { connectionTimeout: 3000 }, { tokenOnFailed: tabsRelay.session() });
        assert(ob.role === "follower", "b follows");
        tabsRelay.sessions.delete(ob.session); // b's takeovers fail until its listener sets the good token
        await a.evaluate(() => window.tabTest.close());
        await a.close();
        // Before: the failure was recorded after the listener's open() had cleared it: the tab
        // neither led nor followed, and that open() rejected after leaderTimeout.
        await until(async () => !["pending", null].includes(await b.evaluate(() => window.tabTest.reopened())), { timeout: 20000, what: "the listener's open() to settle" });
        const r = await b.evaluate(() => window.tabTest.reopened());
        assert(r === "open", `the listener's open(): ${r}`);
        await b.evaluate(([c]) => window.tabTest.call("subscribe", c), [ch]);
        const p = await emu.control("publish", { channel: ch, count: 1 });
        const m = await b.evaluate((ms) => window.tabTest.receiveOne(ms), 8000);
        assert(m.channel === ch && m.replayId === p.firstReplayId, JSON.stringify(m));
      });
    });

    await check("tabs: a follower's publish() in flight while another tab opens is published once", async () => {
      const ch = "/u/Tabs_Notes";
      await isolated(async (ctx) => {
        const [a, b] = [await newTab(ctx), await newTab(ctx)];
        assert((await openVia(a, [])).role === "leader", "a leads");
        assert((await openVia(b, [])).role === "follower", "b follows");
        const published = async () => (await emu.control("stats")).channels[ch]?.published ?? 0;
        const before = await published();
        // sfemu holds the next CometD requests (the leader's publish among them) for 1.5 s...
        await emu.control("delay", { ms: 1500, count: 3 });
        const call = b.evaluate(([c]) => window.tabTest.call("publish", c, "once"), [ch]);
        await sleep(300);
        // ... while a third tab opens: its hello makes the leader announce itself again.
        const c = await newTab(ctx);
        assert((await openVia(c, [])).role === "follower", "c follows");
        const r = await call;
        assert(r.ok, `publish: ${JSON.stringify(r)}`);
        assert(r.ms > 1000, `the publish was in flight while the third tab opened (${Math.round(r.ms)} ms)`);
        await sleep(2500); // a second publish, if any, is through sfemu's delay by now
        const n = (await published()) - before;
        assert(n === 1, `one publish() call, ${n} events published in sfemu`);
      });
    });

    const subscribedInSfemu = async (channel) => (await emu.control("stats")).sessions.some((x) => x.subscriptions.includes(channel));

    await check("tabs: closing a follower's page says goodbye: the connection unsubscribes what only it wanted", async () => {
      const ch = "/event/Tabs_Shared__e";
      const only = "/event/Tabs_OnlyMine__e";
      await isolated(async (ctx) => {
        const [a, f] = [await newTab(ctx), await newTab(ctx)];
        assert((await openVia(a, [ch])).role === "leader", "a leads");
        assert((await openVia(f, [ch, only])).role === "follower", "f follows");
        assert(await subscribedInSfemu(only), "the connection subscribed f's channel");
        await f.close(); // the browser fires pagehide (not persisted)
        await until(async () => !(await subscribedInSfemu(only)), { timeout: 10000, what: "the connection to unsubscribe the closed follower's channel" });
        assert(await subscribedInSfemu(ch), "the channel the leader wants stays subscribed");
      });
    });

    await check("tabs: a leader entering the back/forward cache hands over, and follows again when restored", async () => {
      const ch = "/event/Tabs_Bfcache__e";
      await isolated(async (ctx) => {
        const [a, b] = [await newTab(ctx), await newTab(ctx)];
        assert((await openVia(a, [ch])).role === "leader", "a leads");
        assert((await openVia(b, [ch])).role === "follower", "b follows");
        // What the browser fires when the page goes into the back/forward cache (it may come back).
        await a.evaluate(() => window.dispatchEvent(new PageTransitionEvent("pagehide", { persisted: true })));
        await until(async () => (await state(b)).role === "leader", { timeout: 15000, what: "b to take over from the cached page" });
        await until(async () => (await clients()) === 1, { timeout: 10000, what: "one streaming client (the cached page's disconnected)" });
        const sa = await state(a);
        assert(!sa.closed && sa.failure === null, `the cached page's client is not closed: ${JSON.stringify(sa)}`);
        const p1 = await emu.control("publish", { channel: ch, count: 2 });
        await expectRanges(b, ch, [p1], "the new leader");
        // Restored from the cache: a joins again, as a follower of b.
        await a.evaluate(() => window.dispatchEvent(new PageTransitionEvent("pageshow", { persisted: true })));
        await until(async () => (await state(a)).role === "follower", { timeout: 15000, what: "the restored page to follow" }).catch(async (e) => {
          throw new Error(`${e.message}: ${JSON.stringify(await state(a))}`);
        });
        await until(async () => (await subscribedInSfemu(ch)) && (await clients()) === 1, { timeout: 10000, what: "one client, subscribed" });
        const p2 = await emu.control("publish", { channel: ch, count: 2 });
        await expectRanges(a, ch, [p2], "the restored page");
        await expectRanges(b, ch, [p1, p2], "the leader");
      });
    });

    await check("tabs: a leader page put in the back/forward cache by a navigation: another tab leads at once", async () => {
      const ch = "/event/Tabs_BfLeader__e";
      await withBfcache(async (ctx) => {
        const [a, b] = [await newTab(ctx), await newTab(ctx)];
        assert((await openVia(a, [ch])).role === "leader", "a leads");
        assert((await openVia(b, [ch])).role === "follower", "b follows");
        const p1 = await emu.control("publish", { channel: ch, count: 2 });
        await expectRanges(b, ch, [p1], "b, a leading");
        assert(await away(a), "a's page went into the back/forward cache");
        // Before: the page was frozen before its connection had closed, still holding the leader
        // lock; b followed no one until the cached page was evicted.
        await until(async () => (await state(b)).role === "leader", { timeout: 10000, what: "b to lead while a's page is cached" }).catch(async (e) => {
          throw new Error(`${e.message}: ${JSON.stringify(await state(b))}`);
        });
        const p2 = await emu.control("publish", { channel: ch, count: 2 });
        await expectRanges(b, ch, [p1, p2], "b, leading");
        await until(async () => (await clients()) === 1, { timeout: 10000, what: "one streaming client" });
      });
    });

    await check("tabs: a follower's publish() in flight when its page goes into the back/forward cache is published once", async () => {
      const ch = "/u/Tabs_BfPublish";
      await withBfcache(async (ctx) => {
        const [a, b] = [await newTab(ctx), await newTab(ctx)];
        assert((await openVia(a, [ch])).role === "leader", "a leads");
        assert((await openVia(b, [])).role === "follower", "b follows");
        await emu.control("delay", { ms: 1500, count: 2 });
        await b.evaluate(([c]) => window.tabTest.startCall("publish", c, "once"), [ch]);
        await sleep(200);
        assert(await away(b), "b's page went into the back/forward cache");
        await sleep(2000); // the leader publishes, and answers while b's page is cached
        await b.goBack({ waitUntil: "commit" }); // a page restored from the cache fires no load
        await b.waitForFunction(() => window.tabTest !== undefined);
        const sb = await state(b);
        assert(sb.shown.includes(true), `b's page came back from the cache: ${JSON.stringify(sb)}`);
        const r = await b.evaluate(() => window.tabTest.pendingCall());
        assert(r.ok, `publish: ${JSON.stringify(r)}`);
        await sleep(1500);
        const n = (await state(a)).got.filter((e) => e.channel === ch).length;
        // Before: b sent the call again when it came back, and the leader published it twice.
        assert(n === 1, `published ${n} times`);
      });
    });

    await check("tabs: open() then close() in one task on a failed tab: the tab stays closed, with no connection", async () => {
      const ch = "/event/Tabs_RestartClose__e";
      await isolated(async (ctx) => {
        const b = await failedFollower(ctx, ch);
        await b.evaluate((t) => window.tabTest.setToken(t), tabsRelay.session());
        // Before: close() gave back the restart's own close of the failed session, and open()
        // went on to lead: a connection the application believed closed.
        const r = await b.evaluate(() => window.tabTest.openThenClose());
        assert(r.closed === true && r.role === null && r.opened.startsWith("ClientInvalidOperation"), JSON.stringify(r));
        await sleep(1000);
        assert((await clients()) === 0, `no connection left: ${await clients()}`);
      });
    });

    if (errors.length) console.log(`# tab page errors (informational): ${errors.join(" | ")}`);
  } finally {
    await bfBrowser?.close().catch(() => {});
    await context.close().catch(() => {});
    tabsRelay?.close();
  }
}
