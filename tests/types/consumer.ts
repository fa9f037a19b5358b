// A consumer's TypeScript file using the whole public API of "sfstream". run.mjs type-checks it
// with moduleResolution "bundler" and "node16" against the PACKED package. Each `@ts-expect-error`
// line is a negative check: tsc fails ("unused directive") if that wrong call ever compiles.
import {
  AccessTokenAuthenticator,
  AiosfstreamException,
  AuthenticationError,
  AuthenticatorBase,
  Client,
  ClientCredentialsAuthenticator,
  ClientError,
  ClientInvalidOperation,
  ConstantReplayId,
  DEFAULT_API_VERSION,
  DefaultMappingStorage,
  JwtBearerAuthenticator,
  LOGIN_URL,
  MappingStorage,
  PasswordAuthenticator,
  RefreshTokenAuthenticator,
  ReplayMarker,
  ReplayMarkerStorage,
  ReplayOption,
  SANDBOX_LOGIN_URL,
  SalesforceStreamingClient,
  ServerError,
  SfstreamError,
  TransportConnectionClosed,
  TransportError,
  TransportInvalidOperation,
  TransportTimeoutError,
} from "sfstream";
import type {
  Authenticator,
  BatchOptions,
  ClientOptions,
  ClientStats,
  Logger,
  MapLike,
  Message,
  OAuthGrant,
  ReceiveOptions,
  ReconnectReason,
  SalesforceStreamingClientOptions,
  ServerResponse,
  StatusEvent,
  TokenInfo,
} from "sfstream";

class MyStorage extends ReplayMarkerStorage {
  readonly #stored = new Map<string, ReplayMarker>();
  async getReplayMarker(subscription: string): Promise<ReplayMarker | null> {
    return this.#stored.get(subscription) ?? null;
  }
  async setReplayMarker(subscription: string, marker: ReplayMarker): Promise<void> {
    this.#stored.set(subscription, marker);
  }
}

const myAuth: Authenticator = {
  apiVersion: "62.0",
  async authenticate(): Promise<TokenInfo> {
    return { accessToken: "token", instanceUrl: "https://example.my.salesforce.com" };
  },
};

// An authenticator that stops its request when the client no longer needs the token.
const cancellable: Authenticator = {
  async authenticate(signal?: AbortSignal): Promise<TokenInfo> {
    const r = await fetch("https://example.com/token", { signal });
    return (await r.json()) as TokenInfo;
  },
};
const fromFunction = new AccessTokenAuthenticator(async (signal?: AbortSignal) => {
  signal?.throwIfAborted();
  return { accessToken: "token", instanceUrl: "https://example.my.salesforce.com" };
});
void cancellable;
void fromFunction;

function describeStatus(s: StatusEvent): string {
  switch (s.type) {
    case "connected":
      return `connected after ${s.stats.handshakes} handshakes`;
    case "reconnecting": {
      const reason: ReconnectReason = s.reason;
      return `reconnecting (${reason}) attempt ${s.attempt} in ${s.delay} ms`;
    }
    case "replayFallback":
      return `${s.channel}: replay ${s.replayId} → ${s.fallback} (${s.reason})`;
    case "failed":
      return s.error.message;
    case "storageError":
      return `${s.channel}: ${s.message}`;
    default:
      // @ts-expect-error `reason` exists only on the narrowed variants
      return String(s.reason);
  }
}

function describeError(e: unknown): string {
  if (e instanceof ServerError) {
    const code: number | null = e.errorCode;
    const args: string[] = e.errorArgs;
    const response: ServerResponse | null = e.response;
    return `${code} ${args.join(",")} ${e.errorMessage} ${response?.channel}`;
  }
  if (e instanceof AuthenticationError) return `${e.error} ${e.errorDescription} ${e.status}`;
  if (e instanceof TransportTimeoutError || e instanceof TransportConnectionClosed || e instanceof TransportInvalidOperation) return e.message;
  if (e instanceof TransportError || e instanceof ClientInvalidOperation || e instanceof ClientError) return e.name;
  if (e instanceof AiosfstreamException) return "sfstream";
  return e instanceof SfstreamError ? "never" : String(e);
}

export async function main(signal: AbortSignal): Promise<number> {
  const logger: Logger = (level, message, status) => console.log(level, message, status.type);
  const options: SalesforceStreamingClientOptions = {
    consumerKey: "key",
    consumerSecret: "secret",
    username: "user@example.com",
    password: "password",
    loginUrl: LOGIN_URL,
    replay: new Map<string, unknown>(),
    replayFallback: ReplayOption.ALL_EVENTS,
    maxPendingCount: 100,
    connectionTimeout: null,
    logger,
    onStatus: (s) => console.log(describeStatus(s)),
  };
  await using client = new SalesforceStreamingClient(options);
  await client.open();
  await client.subscribe("/topic/InvoiceStatementUpdates");
  const reply: Record<string, unknown> = await client.publish("/u/Notifications", { text: "hi" });
  void reply;
  const receive: ReceiveOptions = { signal };
  const first: Message = await client.receive(receive);
  console.log(first.channel, first.data);
  let n = 0;
  for await (const m of client) {
    n += m.channel.length;
    if (n > 10) break;
  }
  for await (const m of client.messages({ signal })) console.log(m.data);
  const batching: BatchOptions = { maxSize: 500, signal };
  for await (const batch of client.batches(batching)) {
    const last: Message | undefined = batch[batch.length - 1];
    if (last) console.log(batch.length, last.channel);
  }
  const stop: () => void = client.onStatus((s) => console.log(s.type, s.at));
  stop();
  const stats: ClientStats = client.stats;
  const closed: boolean = client.closed;
  const subs: ReadonlySet<string> = client.subscriptions;
  const type: string | null = client.connectionType;
  const pending: number = client.pendingCount;
  const has: boolean = client.hasPendingMessages;
  console.log(stats.eventsDelivered, closed, subs.size, type, pending, has);
  await client.unsubscribe("/topic/InvoiceStatementUpdates");

  const map: MapLike = new Map<string, unknown>();
  const clientOptions: ClientOptions = { replay: new DefaultMappingStorage(map, ReplayOption.NEW_EVENTS) };
  const auths: Authenticator[] = [
    new PasswordAuthenticator({ consumerKey: "k", consumerSecret: "s", username: "u", password: "p", sandbox: true }),
    new RefreshTokenAuthenticator({ consumerKey: "k", refreshToken: "r", loginUrl: SANDBOX_LOGIN_URL }),
    new ClientCredentialsAuthenticator({ consumerKey: "k", consumerSecret: "s", loginUrl: "https://example.my.salesforce.com" }),
    new JwtBearerAuthenticator({ consumerKey: "k", username: "u", privateKey: "-----BEGIN PRIVATE KEY-----", apiVersion: DEFAULT_API_VERSION }),
    new AccessTokenAuthenticator({ accessToken: "t", instanceUrl: "https://example.my.salesforce.com" }),
    myAuth,
  ];
  // A login of one's own on the base class: the grant is the one hook to implement.
  class VaultAuthenticator extends AuthenticatorBase {
    constructor(readonly vault: () => Promise<string>) {
      super({ sandbox: true });
    }
    protected async grant(): Promise<OAuthGrant> {
      return { grantType: "client_credentials", clientId: "k", clientSecret: await this.vault() };
    }
  }
  auths.push(new VaultAuthenticator(async () => "s"));
  const base = auths[0];
  if (base instanceof AuthenticatorBase) console.log(base.instanceUrl, base.tokenType);
  for (const auth of auths) {
    const c = new Client(auth, clientOptions);
    try {
      await c.open();
    } catch (e) {
      console.log(describeError(e));
    } finally {
      await c.close();
    }
  }
  const storages = [new MyStorage(), new MappingStorage(new Map()), new ConstantReplayId(ReplayOption.ALL_EVENTS)];
  const marker: ReplayMarker | null = ReplayMarker.from({ replayId: 5, date: null });
  const m2 = new ReplayMarker("2024-05-01T10:00:00.000Z", 7);
  const json: { date: string | null; replayId: number } = m2.toJSON();
  console.log(storages.length, marker?.replayId, json);

  // Negative checks: each of these must be a type error.
  // @ts-expect-error maxSize is a number
  client.batches({ maxSize: "500" });
  // @ts-expect-error subscribe takes a channel name, not a number
  await client.subscribe(42);
  // @ts-expect-error consumerKey must be a string
  new SalesforceStreamingClient({ ...options, consumerKey: 1 });
  // @ts-expect-error the password authenticator needs a password
  new PasswordAuthenticator({ consumerKey: "k", consumerSecret: "s", username: "u" });
  // @ts-expect-error replay options are -1 and -2 only
  const bad: ReplayOption = 3;
  void bad;
  // @ts-expect-error there is no "websocket" reconnect reason
  const r: ReconnectReason = "websocket";
  void r;
  // @ts-expect-error receive() options take an AbortSignal
  await client.receive({ signal: true });
  return n;
}
