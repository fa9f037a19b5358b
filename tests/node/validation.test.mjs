// Bad input from the user: every option and argument of the public API is checked, and a bad one
// raises a TypeError whose message names it. One row per option/argument and bad value.
// (A row may carry a fourth element, "missing", to run as a node:test todo while the package does
// not validate it yet; none does today. RELIABILITY.md keeps the history.)
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  Client,
  SalesforceStreamingClient,
  PasswordAuthenticator,
  RefreshTokenAuthenticator,
  ClientCredentialsAuthenticator,
  JwtBearerAuthenticator,
  AccessTokenAuthenticator,
  ReplayMarker,
  MappingStorage,
  DefaultMappingStorage,
  ConstantReplayId,
  ReplayOption,
  MemoryReplayStorage,
  LocalStorageReplayStorage,
  IndexedDbReplayStorage,
  DenoKvReplayStorage,
  WorkersKvReplayStorage,
  DurableObjectReplayStorage,
  SharedTabClient,
} from "sfstream";
import { createRelay } from "sfstream/relay";
import { toNodeHandler } from "sfstream/relay/node";

const LOOP = "http://127.0.0.1:9";
const auth = () => new AccessTokenAuthenticator({ accessToken: "tok", instanceUrl: LOOP });
const client = () => new Client(auth());
const pw = { consumerKey: "key", consumerSecret: "secret", username: "u@example.com", password: "pw" };
const PEM = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----";
const jwt = { consumerKey: "key", username: "u@example.com", privateKey: PEM };
// The stores the edge storages wrap: only their shape is checked when constructed.
const denoKv = { get: async () => ({ value: null }), set: async () => {} };
const workersKv = { get: async () => null, put: async () => {} };
const doStorage = { get: async () => undefined, put: async () => {} };
const relayOptions = () => ({ authenticator: auth(), allowedOrigins: ["https://app.example.com"], channels: ["/topic/*"], authorize: () => true });

/** [what, name the error must contain, call, missing?] */
const rows = [
  // Client(authenticator, options)
  ["Client authenticator null", "authenticator", () => new Client(null)],
  ["Client authenticator without authenticate()", "authenticator", () => new Client({})],
  ["Client authenticator.authenticate not a function", "authenticator", () => new Client({ authenticate: 1 })],
  ["Client options not an object", "options", () => new Client(auth(), 5)],
  ["Client options null", "options", () => new Client(auth(), null)],
  ["Client unknown option", "maxPending", () => new Client(auth(), { maxPending: 5 })],
  ["Client replay number other than -1/-2", "replay", () => new Client(auth(), { replay: 5 })],
  ["Client replay string", "replay", () => new Client(auth(), { replay: "all" })],
  ["Client replay object without get/set", "replay", () => new Client(auth(), { replay: {} })],
  ["Client replayFallback 0", "replayFallback", () => new Client(auth(), { replayFallback: 0 })],
  ["Client replayFallback string", "replayFallback", () => new Client(auth(), { replayFallback: "new" })],
  ["Client connectionTimeout negative", "connectionTimeout", () => new Client(auth(), { connectionTimeout: -1 })],
  ["Client connectionTimeout NaN", "connectionTimeout", () => new Client(auth(), { connectionTimeout: NaN })],
  ["Client connectionTimeout Infinity", "connectionTimeout", () => new Client(auth(), { connectionTimeout: Infinity })],
  ["Client connectionTimeout string", "connectionTimeout", () => new Client(auth(), { connectionTimeout: "10" })],
  ["Client maxPendingCount fraction", "maxPendingCount", () => new Client(auth(), { maxPendingCount: 1.5 })],
  ["Client maxPendingCount string", "maxPendingCount", () => new Client(auth(), { maxPendingCount: "100" })],
  ["Client maxPendingCount NaN", "maxPendingCount", () => new Client(auth(), { maxPendingCount: NaN })],
  ["Client apiVersion without .0", "apiVersion", () => new Client(auth(), { apiVersion: "62" })],
  ["Client apiVersion number", "apiVersion", () => new Client(auth(), { apiVersion: 62 })],
  ["Client apiVersion below 37", "apiVersion", () => new Client(auth(), { apiVersion: "36.0" })],
  ["Client networkAllowance negative", "networkAllowance", () => new Client(auth(), { networkAllowance: -1 })],
  ["Client networkAllowance string", "networkAllowance", () => new Client(auth(), { networkAllowance: "1s" })],
  ["Client networkAllowance Infinity", "networkAllowance", () => new Client(auth(), { networkAllowance: Infinity })],
  ["Client onStatus not a function", "onStatus", () => new Client(auth(), { onStatus: 5 })],
  ["Client logger not a function", "logger", () => new Client(auth(), { logger: "console" })],
  // methods
  ["subscribe(channel) undefined", "channel", () => client().subscribe(undefined)],
  ["subscribe(channel) empty", "channel", () => client().subscribe("")],
  ["subscribe(channel) number", "channel", () => client().subscribe(5)],
  ["subscribe(channel) no leading slash", "channel", () => client().subscribe("topic/X")],
  ["subscribe(channel) /meta", "channel", () => client().subscribe("/meta/connect")],
  ["subscribe(channel) control character", "channel", () => client().subscribe("/topic/a\nb")],
  ["subscribe(channel) root wildcard", "channel", () => client().subscribe("/**")],
  ["subscribe(channel) too long", "channel", () => client().subscribe("/topic/" + "x".repeat(5000))],
  ["unsubscribe(channel) null", "channel", () => client().unsubscribe(null)],
  ["unsubscribe(channel) no leading slash", "channel", () => client().unsubscribe("x")],
  ["publish(channel) object", "channel", () => client().publish({}, {})],
  ["publish(channel) no leading slash", "channel", () => client().publish("u/x", {})],
  ["publish(data) undefined", "data", () => client().publish("/u/x", undefined)],
  ["publish(data) function", "data", () => client().publish("/u/x", () => 1)],
  ["publish(data) BigInt", "data", () => client().publish("/u/x", 1n)],
  ["publish(data) circular", "data", () => {
    const o = {};
    o.self = o;
    return client().publish("/u/x", o);
  }],
  ["receive({signal}) string", "signal", () => client().receive({ signal: "x" })],
  ["receive({signal}) plain object", "signal", () => client().receive({ signal: {} })],
  ["receive(options) null", "options", () => client().receive(null)],
  ["messages({signal}) number", "signal", () => client().messages({ signal: 5 }).next()],
  ["onStatus(listener) not a function", "listener", () => client().onStatus("x")],
  // SalesforceStreamingClient(options)
  ["SalesforceStreamingClient options null", "options", () => new SalesforceStreamingClient(null)],
  ["SalesforceStreamingClient unknown option", "colour", () => new SalesforceStreamingClient({ ...pw, colour: "red" })],
  ["SalesforceStreamingClient consumerKey missing", "consumerKey", () => new SalesforceStreamingClient({ ...pw, consumerKey: undefined })],
  ["SalesforceStreamingClient maxPendingCount", "maxPendingCount", () => new SalesforceStreamingClient({ ...pw, maxPendingCount: "x" })],
  // PasswordAuthenticator(options) (and the OAuth options every OAuth authenticator shares)
  ["PasswordAuthenticator options null", "options", () => new PasswordAuthenticator(null)],
  ["PasswordAuthenticator consumerKey empty", "consumerKey", () => new PasswordAuthenticator({ ...pw, consumerKey: "" })],
  ["PasswordAuthenticator consumerSecret number", "consumerSecret", () => new PasswordAuthenticator({ ...pw, consumerSecret: 5 })],
  ["PasswordAuthenticator username missing", "username", () => new PasswordAuthenticator({ ...pw, username: undefined })],
  ["PasswordAuthenticator password missing", "password", () => new PasswordAuthenticator({ ...pw, password: undefined })],
  ["PasswordAuthenticator loginUrl number", "loginUrl", () => new PasswordAuthenticator({ ...pw, loginUrl: 5 })],
  ["PasswordAuthenticator loginUrl and sandbox", "sandbox", () => new PasswordAuthenticator({ ...pw, loginUrl: LOOP, sandbox: true })],
  ["PasswordAuthenticator apiVersion", "apiVersion", () => new PasswordAuthenticator({ ...pw, apiVersion: "v62" })],
  ["PasswordAuthenticator loginUrl not a URL", "loginUrl", () => new PasswordAuthenticator({ ...pw, loginUrl: "not a url" })],
  ["PasswordAuthenticator loginUrl plain http to a remote host", "loginUrl", () => new PasswordAuthenticator({ ...pw, loginUrl: "http://example.com" })],
  ["PasswordAuthenticator sandbox not a boolean", "sandbox", () => new PasswordAuthenticator({ ...pw, sandbox: "yes" })],
  ["PasswordAuthenticator allowInsecureHttp not a boolean", "allowInsecureHttp", () => new PasswordAuthenticator({ ...pw, allowInsecureHttp: "yes" })],
  ["PasswordAuthenticator unknown option", "pasword", () => new PasswordAuthenticator({ ...pw, pasword: "x" })],
  // RefreshTokenAuthenticator
  ["RefreshTokenAuthenticator refreshToken missing", "refreshToken", () => new RefreshTokenAuthenticator({ consumerKey: "k" })],
  ["RefreshTokenAuthenticator consumerSecret number", "consumerSecret", () => new RefreshTokenAuthenticator({ consumerKey: "k", consumerSecret: 5, refreshToken: "r" })],
  ["RefreshTokenAuthenticator consumerKey missing", "consumerKey", () => new RefreshTokenAuthenticator({ refreshToken: "r" })],
  // ClientCredentialsAuthenticator
  ["ClientCredentialsAuthenticator consumerSecret missing", "consumerSecret", () => new ClientCredentialsAuthenticator({ consumerKey: "k" })],
  ["ClientCredentialsAuthenticator consumerKey number", "consumerKey", () => new ClientCredentialsAuthenticator({ consumerKey: 1, consumerSecret: "s" })],
  // JwtBearerAuthenticator
  ["JwtBearerAuthenticator privateKey not PEM", "privateKey", () => new JwtBearerAuthenticator({ ...jwt, privateKey: "abc" })],
  ["JwtBearerAuthenticator privateKey PKCS#1", "privateKey", () => new JwtBearerAuthenticator({ ...jwt, privateKey: "-----BEGIN RSA PRIVATE KEY-----\nAA\n-----END RSA PRIVATE KEY-----" })],
  ["JwtBearerAuthenticator username missing", "username", () => new JwtBearerAuthenticator({ ...jwt, username: undefined })],
  ["JwtBearerAuthenticator audience number", "audience", () => new JwtBearerAuthenticator({ ...jwt, audience: 5 })],
  ["JwtBearerAuthenticator assertionLifetime 0", "assertionLifetime", () => new JwtBearerAuthenticator({ ...jwt, assertionLifetime: 0 })],
  ["JwtBearerAuthenticator assertionLifetime fraction", "assertionLifetime", () => new JwtBearerAuthenticator({ ...jwt, assertionLifetime: 1.5 })],
  ["JwtBearerAuthenticator assertionLifetime too long", "assertionLifetime", () => new JwtBearerAuthenticator({ ...jwt, assertionLifetime: 7200 })],
  ["JwtBearerAuthenticator privateKey with invalid base64", "privateKey", () => new JwtBearerAuthenticator({ ...jwt, privateKey: "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----" })],
  // AccessTokenAuthenticator(source, options)
  ["AccessTokenAuthenticator source null", "source", () => new AccessTokenAuthenticator(null)],
  ["AccessTokenAuthenticator source number", "source", () => new AccessTokenAuthenticator(5)],
  ["AccessTokenAuthenticator accessToken empty", "accessToken", () => new AccessTokenAuthenticator({ accessToken: "", instanceUrl: LOOP })],
  ["AccessTokenAuthenticator instanceUrl missing", "instanceUrl", () => new AccessTokenAuthenticator({ accessToken: "t" })],
  ["AccessTokenAuthenticator apiVersion", "apiVersion", () => new AccessTokenAuthenticator({ accessToken: "t", instanceUrl: LOOP }, { apiVersion: "1.0" })],
  ["AccessTokenAuthenticator apiVersion in the token (an option: second argument)", "second argument", () => new AccessTokenAuthenticator({ accessToken: "t", instanceUrl: LOOP, apiVersion: "59.0" })],
  ["AccessTokenAuthenticator allowInsecureHttp in the token", "allowInsecureHttp", () => new AccessTokenAuthenticator({ accessToken: "t", instanceUrl: "http://10.0.0.5:8080", allowInsecureHttp: true })],
  ["AccessTokenAuthenticator an unknown key in the token", "acessToken", () => new AccessTokenAuthenticator({ accessToken: "t", instanceUrl: LOOP, acessToken: "x" })],
  ["AccessTokenAuthenticator instanceUrl not http(s)", "instanceUrl", () => new AccessTokenAuthenticator({ accessToken: "t", instanceUrl: "javascript:alert(1)" })],
  ["AccessTokenAuthenticator instanceUrl plain http to a remote host", "instanceUrl", () => new AccessTokenAuthenticator({ accessToken: "t", instanceUrl: "http://example.com" })],
  ["AccessTokenAuthenticator options not an object", "options", () => new AccessTokenAuthenticator(() => ({}), 5)],
  ["AccessTokenAuthenticator unknown option", "apiVersio", () => new AccessTokenAuthenticator({ accessToken: "t", instanceUrl: LOOP }, { apiVersio: "62.0" })],
  // replay
  ["MappingStorage mapping null", "mapping", () => new MappingStorage(null)],
  ["MappingStorage mapping without set", "mapping", () => new MappingStorage({ get() {} })],
  ["DefaultMappingStorage defaultId string", "defaultId", () => new DefaultMappingStorage(new Map(), "x")],
  ["DefaultMappingStorage defaultId -3", "defaultId", () => new DefaultMappingStorage(new Map(), -3)],
  ["DefaultMappingStorage defaultId fraction", "defaultId", () => new DefaultMappingStorage(new Map(), 1.5)],
  ["ConstantReplayId defaultId NaN", "defaultId", () => new ConstantReplayId(NaN)],
  ["ConstantReplayId defaultId unsafe integer", "defaultId", () => new ConstantReplayId(2 ** 60)],
  ["DefaultMappingStorage defaultId 0 (Salesforce refuses replay id 0)", "defaultId", () => new DefaultMappingStorage(new Map(), 0)],
  ["ConstantReplayId defaultId 0", "defaultId", () => new ConstantReplayId(0)],
  ["ReplayMarker replayId string", "replayId", () => new ReplayMarker(null, "x")],
  ["ReplayMarker replayId fraction", "replayId", () => new ReplayMarker(null, 1.5)],
  ["ReplayMarker date not a date", "date", () => new ReplayMarker("yesterday", 1)],
  // replay storages (storage.ts)
  ["MemoryReplayStorage unknown option", "namespce", () => new MemoryReplayStorage({ namespce: "a/b" })],
  ["LocalStorageReplayStorage unknown option prefx", "prefx", () => new LocalStorageReplayStorage({ prefx: "app/" })],
  ["LocalStorageReplayStorage database (IndexedDB's option)", "database", () => new LocalStorageReplayStorage({ database: "db" })],
  ["IndexedDbReplayStorage prefix (localStorage's option)", "prefix", () => new IndexedDbReplayStorage({ prefix: "app/" })],
  ["DenoKvReplayStorage prefix (not one of its options)", "prefix", () => new DenoKvReplayStorage(denoKv, { prefix: "app/" })],
  ["WorkersKvReplayStorage unknown option", "prefx", () => new WorkersKvReplayStorage(workersKv, { prefx: "app/" })],
  ["WorkersKvReplayStorage prefix number", "prefix", () => new WorkersKvReplayStorage(workersKv, { prefix: 5 })],
  ["DurableObjectReplayStorage unknown option", "defaultReplayId", () => new DurableObjectReplayStorage(doStorage, { defaultReplayId: -2 })],
  ["DurableObjectReplayStorage prefix object", "prefix", () => new DurableObjectReplayStorage(doStorage, { prefix: {} })],
  // SharedTabClient(authenticator, options)
  ["SharedTabClient unknown option", "bogus", () => new SharedTabClient(auth(), { bogus: 1 })],
  ["SharedTabClient ackPolicy (the leader acknowledges automatically)", "ackPolicy", () => new SharedTabClient(auth(), { ackPolicy: "manual" })],
  ["SharedTabClient a Client option of the wrong type, when constructed", "maxPendingCount", () => new SharedTabClient(auth(), { shared: false, maxPendingCount: "100" })],
  // createRelay(options) (sfstream/relay)
  ["createRelay unknown option", "bogus", () => createRelay({ ...relayOptions(), bogus: 1 })],
  ["createRelay misspelt option", "option channel", () => createRelay({ ...relayOptions(), channel: ["/topic/X"] })],
  // Origins that never match what browsers send (every request would be refused with 403).
  ["createRelay allowedOrigins with a trailing slash", '"https://app.example.com"', () => createRelay({ ...relayOptions(), allowedOrigins: ["https://app.example.com/"] })],
  ["createRelay allowedOrigins without a scheme", "allowedOrigins entry", () => createRelay({ ...relayOptions(), allowedOrigins: ["app.example.com"] })],
  ["createRelay allowedOrigins in upper case", '"https://app.example.com"', () => createRelay({ ...relayOptions(), allowedOrigins: ["https://APP.example.com"] })],
  ["createRelay allowedOrigins with a path", "allowedOrigins entry", () => createRelay({ ...relayOptions(), allowedOrigins: ["https://app.example.com/app"] })],
  ["createRelay allowedOrigins null (a sandboxed page's origin)", "allowedOrigins entry", () => createRelay({ ...relayOptions(), allowedOrigins: ["null"] })],
  // toNodeHandler(relay, options) (sfstream/relay/node)
  ["toNodeHandler unknown option", "option maxBody", () => toNodeHandler(createRelay(relayOptions()), { maxBody: 10 })],
  ["toNodeHandler null options", "options", () => toNodeHandler(createRelay(relayOptions()), null)],
  ["toNodeHandler baseUrl not a URL", "baseUrl", () => toNodeHandler(createRelay(relayOptions()), { baseUrl: "relay.example.com" })],
  ["toNodeHandler baseUrl a number", "baseUrl", () => toNodeHandler(createRelay(relayOptions()), { baseUrl: 8080 })],
];

async function outcome(call) {
  try {
    const r = call();
    if (r && typeof r.then === "function") {
      return await Promise.race([r.then(() => "resolved", (e) => e), new Promise((res) => setTimeout(() => res("pending"), 500))]);
    }
    return "returned";
  } catch (e) {
    return e;
  }
}

describe("every option and argument is validated with a TypeError naming it", () => {
  for (const [what, name, call, missing] of rows) {
    const opts = missing ? { todo: `not validated yet: ${what}` } : {};
    test(what, opts, async () => {
      const e = await outcome(call);
      assert.ok(e instanceof TypeError, `expected a TypeError, got ${e instanceof Error ? `${e.name}: ${e.message}` : e}`);
      assert.ok(e.message.includes(name), `the message names ${name}: ${e.message}`);
    });
  }
});

describe("valid values are accepted (the checks are not over-eager)", () => {
  test("every option at a valid value", () => {
    const c = new Client(auth(), {
      replay: new Map(),
      replayFallback: ReplayOption.ALL_EVENTS,
      connectionTimeout: null,
      maxPendingCount: 0,
      apiVersion: "37.0",
      networkAllowance: 0,
      onStatus: () => {},
      logger: () => {},
    });
    assert.equal(c.closed, true);
    new Client(auth(), { replay: ReplayOption.NEW_EVENTS, replayFallback: null, connectionTimeout: 0, maxPendingCount: -1 });
    new Client(auth(), { replay: new ConstantReplayId(-2) });
    new Client(auth(), { replay: { getReplayMarker: async () => null, setReplayMarker: async () => {} } });
    new PasswordAuthenticator({ ...pw, sandbox: true });
    new PasswordAuthenticator({ ...pw, loginUrl: "http://localhost:1", allowInsecureHttp: false });
    new RefreshTokenAuthenticator({ consumerKey: "k", refreshToken: "r" });
    new JwtBearerAuthenticator({ ...jwt, assertionLifetime: 3600, audience: "https://login.salesforce.com" });
    new AccessTokenAuthenticator(async () => ({ accessToken: "t", instanceUrl: LOOP }), { apiVersion: "62.0" });
    new DefaultMappingStorage(new Map(), 12345);
    new DefaultMappingStorage(new Map(), 1);
    new DefaultMappingStorage(new Map(), ReplayOption.ALL_EVENTS);
    new ConstantReplayId(ReplayOption.NEW_EVENTS);
    // The replay storages
    const common = { defaultReplay: ReplayOption.ALL_EVENTS, namespace: "org/user" };
    const memory = new MemoryReplayStorage(common);
    assert.deepEqual([memory.defaultReplay, memory.namespace], [ReplayOption.ALL_EVENTS, "org/user"]);
    assert.deepEqual([new MemoryReplayStorage().defaultReplay, new MemoryReplayStorage().namespace], [null, null]);
    assert.equal(new LocalStorageReplayStorage({ ...common, prefix: "" }).prefix, "");
    assert.equal(new LocalStorageReplayStorage().prefix, "sfstream/");
    assert.equal(new IndexedDbReplayStorage({ ...common, database: "db" }).database, "db");
    assert.equal(new DenoKvReplayStorage(denoKv, common).defaultReplay, ReplayOption.ALL_EVENTS);
    assert.equal(new WorkersKvReplayStorage(workersKv, { ...common, prefix: "app/" }).prefix, "app/");
    assert.equal(new WorkersKvReplayStorage(workersKv).prefix, "sfstream/");
    assert.equal(new DurableObjectReplayStorage(doStorage, { ...common, prefix: "" }).prefix, "");
    assert.equal(new DurableObjectReplayStorage(doStorage).prefix, "sfstream/");
    // Options left undefined are as good as absent.
    new WorkersKvReplayStorage(workersKv, { prefix: undefined, namespace: undefined });
    // SharedTabClient and createRelay
    new SharedTabClient(auth(), {
      shared: false,
      replay: ReplayOption.ALL_EVENTS,
      database: "db",
      key: "k",
      leaderTimeout: 1000,
      connectionTimeout: null,
      onStatus: () => {},
      replayFallback: ReplayOption.NEW_EVENTS,
      maxPendingCount: 10,
      apiVersion: "62.0",
      networkAllowance: 0,
      jsonParse: JSON.parse,
      jsonStringify: JSON.stringify,
      logger: () => {},
    });
    const relay = createRelay({
      ...relayOptions(),
      allowedOrigins: ["https://app.example.com", "http://localhost:5173", "http://127.0.0.1:8080", "https://xn--bcher-kva.example"],
      allowPublish: true,
      apiVersion: "62.0",
      path: "/cometd",
      maxSessions: 10,
      sessionIdleTimeout: 1000,
      loginTimeout: 1000,
    });
    assert.equal(typeof relay, "function");
    assert.equal(typeof toNodeHandler(relay, { baseUrl: "https://relay.example.com", maxBodyBytes: 1000 }), "function");
  });

  test("every option given as undefined means its default (what the types say under exactOptionalPropertyTypes)", async () => {
    const u = undefined;
    const pwAuth = new PasswordAuthenticator({ ...pw, loginUrl: u, sandbox: u, apiVersion: u, allowInsecureHttp: u });
    new RefreshTokenAuthenticator({ consumerKey: "k", refreshToken: "r", consumerSecret: u, onRefreshToken: u, loginUrl: u });
    new JwtBearerAuthenticator({ ...jwt, audience: u, assertionLifetime: u });
    const at = new AccessTokenAuthenticator({ accessToken: "t", instanceUrl: LOOP, tokenType: u, id: u }, { apiVersion: u, allowInsecureHttp: u });
    assert.equal(at.tokenType, "Bearer");
    const c = new Client(at, { replay: u, replayFallback: u, connectionTimeout: u, maxPendingCount: u, apiVersion: u, networkAllowance: u, ackPolicy: u, jsonParse: u, jsonStringify: u, onStatus: u, logger: u });
    assert.equal(c.closed, true);
    const signal = u;
    await assert.rejects(c.receive({ signal }), (e) => e.name === "ClientInvalidOperation");
    new Client(pwAuth, { replay: new MemoryReplayStorage({ defaultReplay: u, namespace: u }) });
    new LocalStorageReplayStorage({ prefix: u });
    new IndexedDbReplayStorage({ database: u });
    new WorkersKvReplayStorage(workersKv, { prefix: u, defaultReplay: u, namespace: u });
    new SharedTabClient(at, { shared: u, replay: u, database: u, key: u, leaderTimeout: u, connectionTimeout: u, onStatus: u });
    const relay = createRelay({ ...relayOptions(), allowPublish: u, apiVersion: u, path: u, maxSessions: u, sessionIdleTimeout: u, loginTimeout: u });
    assert.equal(typeof toNodeHandler(relay, { baseUrl: u, maxBodyBytes: u }), "function");
  });

  test("a fixed token may be any TokenInfo (an authenticator's result), and its fields are readable at once", async () => {
    const a = new AccessTokenAuthenticator({ accessToken: " 00Dx!t\n", instanceUrl: `${LOOP}/`, tokenType: "Bearer", id: "https://login.salesforce.com/id/00Dxx0000000001/005xx0000000001", issuedAt: "1700000000000", signature: "c2ln", scope: "api" });
    assert.equal(a.instanceUrl, LOOP);
    assert.equal(a.tokenType, "Bearer");
    assert.equal(a.accessToken, "00Dx!t");
    assert.equal((await a.authenticate()).instanceUrl, LOOP);
  });

  test("a message naming a bad option never echoes a secret value", () => {
    for (const make of [
      () => new PasswordAuthenticator({ ...pw, consumerKey: "", password: "hunter2-SECRET" }),
      () => new SalesforceStreamingClient({ ...pw, password: "hunter2-SECRET", maxPendingCount: "x" }),
      () => new RefreshTokenAuthenticator({ consumerKey: "k", refreshToken: "refresh-SECRET", consumerSecret: 7 }),
    ]) {
      assert.throws(make, (e) => e instanceof TypeError && !e.message.includes("SECRET"));
    }
  });
});
