// Compiled with exactOptionalPropertyTypes: an option given as `undefined` (an unset environment
// variable, a value passed on) means "the default" at run time, so the types must take it too.
import {
  Client,
  SalesforceStreamingClient,
  AccessTokenAuthenticator,
  PasswordAuthenticator,
  JwtBearerAuthenticator,
  RefreshTokenAuthenticator,
  LocalStorageReplayStorage,
  IndexedDbReplayStorage,
  MemoryReplayStorage,
  WorkersKvReplayStorage,
  SharedTabClient,
  type WorkersKvLike,
} from "sfstream";
import { createRelay } from "sfstream/relay";
import { toNodeHandler } from "sfstream/relay/node";

declare const env: { readonly [name: string]: string | undefined };
declare const kv: WorkersKvLike;
declare const maybeSignal: AbortSignal | undefined;
declare const maybeNumber: number | undefined;

const pw = new PasswordAuthenticator({ consumerKey: "k", consumerSecret: "s", username: "u", password: "p", loginUrl: env.LOGIN_URL, sandbox: undefined, apiVersion: env.API_VERSION, allowInsecureHttp: undefined });
new JwtBearerAuthenticator({ consumerKey: "k", username: "u", privateKey: "-----BEGIN PRIVATE KEY-----", loginUrl: env.LOGIN_URL, audience: env.AUDIENCE, assertionLifetime: maybeNumber });
new RefreshTokenAuthenticator({ consumerKey: "k", refreshToken: "r", consumerSecret: env.SECRET, onRefreshToken: undefined });
const at = new AccessTokenAuthenticator({ accessToken: "t", instanceUrl: "https://x.my.salesforce.com", tokenType: undefined, id: undefined }, { apiVersion: env.API_VERSION, allowInsecureHttp: undefined });
const client = new Client(at, {
  replay: undefined,
  replayFallback: undefined,
  connectionTimeout: maybeNumber,
  maxPendingCount: maybeNumber,
  apiVersion: env.API_VERSION,
  networkAllowance: undefined,
  ackPolicy: undefined,
  jsonParse: undefined,
  jsonStringify: undefined,
  onStatus: undefined,
  logger: undefined,
});
new SalesforceStreamingClient({ consumerKey: "k", consumerSecret: "s", username: "u", password: "p", loginUrl: env.LOGIN_URL, maxPendingCount: maybeNumber });
new Client(pw, { replay: new MemoryReplayStorage({ defaultReplay: undefined, namespace: env.NS }) });
new LocalStorageReplayStorage({ prefix: env.PREFIX });
new IndexedDbReplayStorage({ database: env.DB });
new WorkersKvReplayStorage(kv, { prefix: env.PREFIX });
new SharedTabClient(at, { shared: undefined, connectionTimeout: maybeNumber });
async function consume(): Promise<void> {
  await client.receive({ signal: maybeSignal });
  for await (const m of client.messages({ signal: maybeSignal })) void m;
  for await (const b of client.batches({ maxSize: maybeNumber, signal: maybeSignal })) void b;
}
void consume;
const relay = createRelay({
  authenticator: pw,
  allowedOrigins: ["https://app.example.com"],
  channels: ["/topic/*"],
  authorize: () => true,
  allowPublish: undefined,
  apiVersion: env.API_VERSION,
  path: env.RELAY_PATH,
  maxSessions: maybeNumber,
  sessionIdleTimeout: maybeNumber,
  loginTimeout: maybeNumber,
});
toNodeHandler(relay, { baseUrl: env.BASE_URL, maxBodyBytes: maybeNumber });
