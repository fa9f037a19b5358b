/**
 * Authenticators: how the client obtains an access token and the instance URL.
 *
 * The OAuth requests are built, sent and checked by the wasm shell (`src/auth`, `src/wasm`);
 * these classes hold the configuration and expose the results as the seed does
 * (`instanceUrl`, `tokenType`, `accessToken`, `issuedAt`, `id`, ...). Secrets are kept in private
 * fields: they are not enumerable, not in `JSON.stringify`, and never in an error message.
 * @module
 */

import { oauthToken, jwtSigningInput, jwtAssertion, checkUrl } from "./wasm/sfstream.js";
import { AuthenticationError, fromWasmError, loginFailure } from "./errors.js";
import { checkOptionKeys } from "./options.js";

/** What an authenticator yields. */
export interface TokenInfo {
  accessToken: string;
  instanceUrl: string;
  tokenType?: string | undefined;
  /**
   * The identity URL the token came with (`https://<host>/id/<orgId>/<userId>`): the native and
   * edge replay storages keep each org's and user's markers apart by it.
   */
  id?: string | null | undefined;
  issuedAt?: string | null | undefined;
  signature?: string | null | undefined;
  scope?: string | null | undefined;
}

/** Anything that can produce a token: the classes below, or your own object. */
export interface Authenticator {
  /**
   * A token. The client passes `signal`, which aborts when it no longer needs the token (it was
   * closed during the login, or the login outlived `connectionTimeout`): a login that makes a
   * request should stop it then. An authenticator may ignore it.
   */
  authenticate(signal?: AbortSignal): Promise<TokenInfo>;
  /** API version used for the CometD endpoint, e.g. "62.0". */
  readonly apiVersion?: string | undefined;
  /** Allow a plain-http instance URL on a non-loopback host (default false). */
  readonly allowInsecureHttp?: boolean | undefined;
}

/** The default API version of the CometD endpoint. */
export const DEFAULT_API_VERSION = "62.0";
/** Salesforce's production login host. */
export const LOGIN_URL = "https://login.salesforce.com";
/** Salesforce's sandbox login host. */
export const SANDBOX_LOGIN_URL = "https://test.salesforce.com";

/** Options shared by the OAuth authenticators. */
export interface OAuthOptions {
  /** Token endpoint host. Default `https://login.salesforce.com`; a My Domain or a local emulator URL works too. */
  loginUrl?: string | undefined;
  /** Shortcut for `loginUrl: "https://test.salesforce.com"`. */
  sandbox?: boolean | undefined;
  /** API version of the CometD endpoint. Default "62.0". */
  apiVersion?: string | undefined;
  /** Allow plain `http://` to a host other than loopback. Off by default: tokens must not cross a network in clear. */
  allowInsecureHttp?: boolean | undefined;
}

function checkBoolean(name: string, v: unknown): void {
  if (v !== undefined && typeof v !== "boolean") throw new TypeError(`${name} must be a boolean`);
}

/** Validate a URL option in the Rust core's terms (re-thrown as a TypeError of this realm). */
function validateUrl(url: string, option: string, allowInsecureHttp: boolean): void {
  const problem = urlProblem(url, option, allowInsecureHttp);
  if (problem !== null) throw new TypeError(problem);
}

const OAUTH_KEYS = ["loginUrl", "sandbox", "apiVersion", "allowInsecureHttp"] as const;

function requireString(name: string, v: unknown): string {
  if (typeof v !== "string" || v.length === 0) throw new TypeError(`${name} must be a non-empty string`);
  return v;
}

/**
 * Why `token` cannot be sent as the credentials of an `Authorization` header, or null when it can.
 * An access token is printable ASCII without spaces (Salesforce's `00D…!…` tokens and RFC 6750's
 * `b64token` are); anything else makes `fetch` refuse the header, so no request would leave the
 * process at all. The reason never quotes the token.
 */
function headerTokenProblem(token: string): string | null {
  if (token.length === 0) return "is empty";
  if (/^[\x21-\x7e]+$/.test(token)) return null;
  const tail = "an access token is printable ASCII without spaces (it goes into the Authorization header)";
  if (/\s/.test(token)) return `contains whitespace: ${tail}`;
  if (/[\x00-\x1f\x7f]/.test(token)) return `contains a control character: ${tail}`;
  return `contains a non-ASCII character: ${tail}`;
}

/** Why `tokenType` cannot be an HTTP authentication scheme (RFC 9110 `token`), or null. */
function tokenTypeProblem(tokenType: string): string | null {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(tokenType) ? null : "is not an HTTP authentication scheme such as Bearer";
}

/** Why `url` is not a usable URL option (the Rust core's rules), or null. */
function urlProblem(url: string, option: string, allowInsecureHttp: boolean): string | null {
  try {
    checkUrl(url, option, allowInsecureHttp);
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : `${option} is not a valid URL`;
  }
}

interface CheckedTokenInfo {
  accessToken: string;
  instanceUrl: string;
  tokenType: string;
  id: string | null;
}

/** An identity URL as Salesforce issues it with a token: `https://<host>/id/<orgId>/<userId>`. */
const IDENTITY_URL = /^https?:\/\/[^/\s]+\/id\/[0-9A-Za-z]{15,18}\/[0-9A-Za-z]{15,18}\/?$/;

/**
 * Check what an {@link AccessTokenAuthenticator}'s source gave: each field must be usable in the
 * request it goes into. Surrounding whitespace is removed first (a token read from a file usually
 * ends with a newline), as the core does for URLs; a trailing `/` of the instance URL too. Returns
 * the cleaned fields, or `[field, reason]` naming the first unusable one (never quoting a token).
 */
function checkTokenInfo(info: TokenInfo, allowInsecureHttp: boolean): CheckedTokenInfo | [string, string] {
  if (typeof info.accessToken !== "string" || info.accessToken.trim() === "") return ["accessToken", "must be a non-empty string"];
  const accessToken = info.accessToken.trim();
  const tokenProblem = headerTokenProblem(accessToken);
  if (tokenProblem !== null) return ["accessToken", tokenProblem];
  if (typeof info.instanceUrl !== "string" || info.instanceUrl.trim() === "") return ["instanceUrl", "must be a non-empty string"];
  const instanceUrl = info.instanceUrl.trim().replace(/\/+$/, "");
  const bad = urlProblem(instanceUrl, "instanceUrl", allowInsecureHttp);
  if (bad !== null) return ["instanceUrl", bad.replace(/^instanceUrl /, "")];
  if (info.tokenType !== undefined && typeof info.tokenType !== "string") return ["tokenType", "must be a string"];
  const tokenType = info.tokenType === undefined || info.tokenType.trim() === "" ? "Bearer" : info.tokenType.trim();
  const typeProblem = tokenTypeProblem(tokenType);
  if (typeProblem !== null) return ["tokenType", typeProblem];
  // The identity URL names the org and the user: the native and edge storages keep each user's
  // markers apart by it.
  let id: string | null = null;
  if (info.id !== undefined && info.id !== null) {
    if (typeof info.id !== "string" || !IDENTITY_URL.test(info.id.trim())) return ["id", "must be the identity URL the token came with (https://<host>/id/<orgId>/<userId>)"];
    id = info.id.trim();
  }
  return { accessToken, instanceUrl, tokenType, id };
}

function checkApiVersion(v: unknown): string {
  if (v === undefined) return DEFAULT_API_VERSION;
  if (typeof v !== "string" || !/^\d{2,3}\.0$/.test(v) || Number(v) < 37) {
    throw new TypeError(`apiVersion must be a string like "62.0" (37.0 or later), got ${JSON.stringify(v)}`);
  }
  return v;
}

interface TokenResult {
  accessToken: string;
  instanceUrl: string;
  id: string | null;
  tokenType: string;
  issuedAt: string | null;
  signature: string | null;
  scope: string | null;
  refreshToken: string | null;
}

/**
 * What an {@link AuthenticatorBase} sends to Salesforce's token endpoint: one of the OAuth 2.0
 * grants it supports (the fields are sent form-encoded under their OAuth names).
 */
export type OAuthGrant =
  | { grantType: "password"; clientId: string; clientSecret: string; username: string; password: string }
  | { grantType: "refresh_token"; clientId: string; clientSecret?: string; refreshToken: string }
  | { grantType: "client_credentials"; clientId: string; clientSecret: string }
  | { grantType: "urn:ietf:params:oauth:grant-type:jwt-bearer"; assertion: string };

/**
 * Common base of the OAuth authenticators: configuration, the token request, and the results of
 * the last successful authentication as public attributes. Extend it for a login of your own
 * (for example one that reads its secret from a vault before each login): implement
 * {@link AuthenticatorBase.grant}, and {@link AuthenticatorBase.refreshTokenReceived} if the
 * grant yields refresh tokens worth keeping. The base class POSTs the grant to `loginUrl`'s
 * token endpoint, checks the answer and raises {@link AuthenticationError} on failure.
 */
export abstract class AuthenticatorBase implements Authenticator {
  readonly loginUrl: string;
  readonly apiVersion: string;
  readonly allowInsecureHttp: boolean;
  /** Instance URL of the last successful authentication. */
  instanceUrl: string | null = null;
  /** Token type (`Bearer`). */
  tokenType: string | null = null;
  /** Identity URL. */
  id: string | null = null;
  /** Issue time, epoch milliseconds as a string. */
  issuedAt: string | null = null;
  /** Salesforce's signature of `id` + `issuedAt`. */
  signature: string | null = null;
  /** Granted scopes. */
  scope: string | null = null;
  #accessToken: string | null = null;

  /**
   * @param options the {@link OAuthOptions}, and the subclass's own options
   * @param keys the names of the subclass's own options (any other key is a `TypeError`)
   */
  constructor(options: OAuthOptions = {}, keys: readonly string[] = []) {
    checkOptionKeys(options, [...OAUTH_KEYS, ...keys], new.target.name);
    checkBoolean("sandbox", options.sandbox);
    checkBoolean("allowInsecureHttp", options.allowInsecureHttp);
    if (options.loginUrl !== undefined && options.sandbox) {
      throw new TypeError("pass either loginUrl or sandbox, not both");
    }
    this.allowInsecureHttp = options.allowInsecureHttp === true;
    this.loginUrl = options.loginUrl !== undefined ? requireString("loginUrl", options.loginUrl) : options.sandbox ? SANDBOX_LOGIN_URL : LOGIN_URL;
    validateUrl(this.loginUrl, "loginUrl", this.allowInsecureHttp);
    this.apiVersion = checkApiVersion(options.apiVersion);
  }

  /** The access token of the last successful authentication (kept in memory only). */
  get accessToken(): string | null {
    return this.#accessToken;
  }

  /**
   * The grant to send, asked for before each login (`open()`, and each re-login when Salesforce
   * invalidates the token). What it throws fails the login as an {@link AuthenticationError}.
   */
  protected abstract grant(): Promise<OAuthGrant>;

  /**
   * Called (and awaited) with the refresh token when the token endpoint returns one; the default
   * does nothing. It must not throw.
   */
  protected refreshTokenReceived(_token: string): void | Promise<void> {}

  /** POST the grant to the token endpoint; `signal` aborts the request. */
  async authenticate(signal?: AbortSignal): Promise<TokenInfo> {
    let grant: OAuthGrant;
    try {
      grant = await this.grant();
    } catch (e) {
      throw loginFailure("the grant could not be made", e);
    }
    let r: TokenResult;
    try {
      r = (await oauthToken(this.loginUrl, grant, this.allowInsecureHttp, signal)) as TokenResult;
    } catch (e) {
      throw fromWasmError(e);
    }
    // The core refuses control characters and spaces; a non-ASCII character or another kind of
    // whitespace would make fetch refuse the header just as surely.
    const problem = headerTokenProblem(r.accessToken);
    if (problem !== null) throw new AuthenticationError(`token response field 'access_token' is invalid: ${problem}`);
    this.#accessToken = r.accessToken;
    this.instanceUrl = r.instanceUrl;
    this.tokenType = r.tokenType;
    this.id = r.id;
    this.issuedAt = r.issuedAt;
    this.signature = r.signature;
    this.scope = r.scope;
    if (r.refreshToken) await this.refreshTokenReceived(r.refreshToken);
    return { accessToken: r.accessToken, instanceUrl: r.instanceUrl, tokenType: r.tokenType, id: r.id, issuedAt: r.issuedAt, signature: r.signature, scope: r.scope };
  }

  /** A redacted summary, safe to log. */
  toJSON(): Record<string, unknown> {
    return { type: this.constructor.name, loginUrl: this.loginUrl, apiVersion: this.apiVersion, instanceUrl: this.instanceUrl };
  }
}

/** Options of {@link PasswordAuthenticator}. */
export interface PasswordAuthenticatorOptions extends OAuthOptions {
  consumerKey: string;
  consumerSecret: string;
  username: string;
  /** The password, followed by the security token where the org requires one. */
  password: string;
}

/**
 * OAuth 2.0 username-password flow. Salesforce retires it on 20 February 2027: prefer
 * {@link JwtBearerAuthenticator} or {@link ClientCredentialsAuthenticator}.
 */
export class PasswordAuthenticator extends AuthenticatorBase {
  /** OAuth client id (the consumer key). */
  readonly clientId: string;
  /** Salesforce username. */
  readonly username: string;
  readonly #secret: string;
  readonly #password: string;
  constructor(options: PasswordAuthenticatorOptions) {
    super(options, ["consumerKey", "consumerSecret", "username", "password"]);
    this.clientId = requireString("consumerKey", options.consumerKey);
    this.#secret = requireString("consumerSecret", options.consumerSecret);
    this.username = requireString("username", options.username);
    this.#password = requireString("password", options.password);
  }
  protected async grant(): Promise<OAuthGrant> {
    return { grantType: "password", clientId: this.clientId, clientSecret: this.#secret, username: this.username, password: this.#password };
  }
}

/** Options of {@link RefreshTokenAuthenticator}. */
export interface RefreshTokenAuthenticatorOptions extends OAuthOptions {
  consumerKey: string;
  /** Required unless the connected app waives the secret for refresh. */
  consumerSecret?: string | undefined;
  refreshToken: string;
  /**
   * Called with the new refresh token when the token endpoint returns one other than the token in
   * use (refresh-token rotation). Save it where `refreshToken` came from: after a rotation the old
   * token is invalid, and a process started with it again fails with `invalid_grant`. Awaited
   * before `authenticate()` resolves, so before `Client.open()` resolves or a re-authentication
   * completes. If it throws or rejects, the login still succeeds with the new token in memory (the
   * `refreshToken` property; the next rotation calls it again, with the newer token) and a one-line
   * warning, with no token in it, goes to `console.warn`; catch inside the callback to handle
   * failures your way.
   */
  onRefreshToken?: ((refreshToken: string) => void | Promise<void>) | undefined;
}

/** What a callback threw, for a message: its name and message, secrets replaced, one line. */
function describeThrown(e: unknown, secrets: readonly (string | null)[]): string {
  let text: string;
  try {
    text = e instanceof Error ? `${e.name}: ${e.message}` : typeof e === "string" ? e : `a thrown ${e === null ? "null" : typeof e}`;
  } catch {
    text = "an unreadable error";
  }
  for (const s of secrets) if (s) text = text.split(s).join("<redacted>");
  text = text.replace(/\s+/g, " ").trim();
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/**
 * OAuth 2.0 refresh-token flow. When the token endpoint returns a new refresh token (rotation),
 * it replaces the old one in memory and is handed to `onRefreshToken` to be saved.
 */
export class RefreshTokenAuthenticator extends AuthenticatorBase {
  readonly clientId: string;
  readonly #secret: string | null;
  #refreshToken: string;
  readonly #onRefreshToken: ((refreshToken: string) => void | Promise<void>) | null;
  constructor(options: RefreshTokenAuthenticatorOptions) {
    super(options, ["consumerKey", "consumerSecret", "refreshToken", "onRefreshToken"]);
    this.clientId = requireString("consumerKey", options.consumerKey);
    this.#secret = options.consumerSecret === undefined ? null : requireString("consumerSecret", options.consumerSecret);
    this.#refreshToken = requireString("refreshToken", options.refreshToken);
    if (options.onRefreshToken !== undefined && typeof options.onRefreshToken !== "function") {
      throw new TypeError("onRefreshToken must be a function");
    }
    this.#onRefreshToken = options.onRefreshToken ?? null;
  }
  /** The refresh token in use (the latest one the token endpoint returned). */
  get refreshToken(): string {
    return this.#refreshToken;
  }
  protected async grant(): Promise<OAuthGrant> {
    const g: OAuthGrant = { grantType: "refresh_token", clientId: this.clientId, refreshToken: this.#refreshToken };
    if (this.#secret !== null) g.clientSecret = this.#secret;
    return g;
  }
  /** Keeps the newest refresh token, and hands it to `onRefreshToken`. */
  protected override async refreshTokenReceived(token: string): Promise<void> {
    if (token === this.#refreshToken) return;
    const old = this.#refreshToken;
    this.#refreshToken = token;
    const save = this.#onRefreshToken;
    if (save === null) return;
    try {
      await save(token);
    } catch (e) {
      // The login itself succeeded: failing it would stop a running stream over a bookkeeping error.
      if (typeof console !== "undefined") {
        console.warn(
          `sfstream: RefreshTokenAuthenticator: onRefreshToken failed (${describeThrown(e, [token, old, this.#secret])}); ` +
            "the login goes on with the new refresh token in memory, but the refresh token saved before was rotated out and is no longer valid",
        );
      }
    }
  }
}

/** Options of {@link ClientCredentialsAuthenticator}. */
export interface ClientCredentialsAuthenticatorOptions extends OAuthOptions {
  consumerKey: string;
  consumerSecret: string;
}

/** OAuth 2.0 client-credentials flow (My Domain login URL only; the app runs as its "Run As" user). */
export class ClientCredentialsAuthenticator extends AuthenticatorBase {
  readonly clientId: string;
  readonly #secret: string;
  constructor(options: ClientCredentialsAuthenticatorOptions) {
    super(options, ["consumerKey", "consumerSecret"]);
    this.clientId = requireString("consumerKey", options.consumerKey);
    this.#secret = requireString("consumerSecret", options.consumerSecret);
  }
  protected async grant(): Promise<OAuthGrant> {
    return { grantType: "client_credentials", clientId: this.clientId, clientSecret: this.#secret };
  }
}

/** Options of {@link JwtBearerAuthenticator}. */
export interface JwtBearerAuthenticatorOptions extends OAuthOptions {
  consumerKey: string;
  username: string;
  /** The RSA private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). */
  privateKey: string;
  /**
   * `aud` claim: an http(s) URL (a trailing `/` is dropped). Default: what Salesforce expects for
   * the login URL (`https://login.salesforce.com` for production and its My Domains,
   * `https://test.salesforce.com` for sandboxes, the site URL for an Experience Cloud site: see
   * {@link JwtBearerAuthenticator}). Set it where that guess is wrong, e.g. a login host that is
   * not `*.salesforce.com` but is no Experience Cloud site either.
   */
  audience?: string | undefined;
  /** Lifetime of the assertion in seconds. Default 180. */
  assertionLifetime?: number | undefined;
}

function pemToDer(pem: string): Uint8Array {
  const m = /-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/.exec(pem);
  if (!m || m[1] === undefined) {
    throw new TypeError("privateKey must be a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----); convert a PKCS#1 key with `openssl pkcs8 -topk8 -nocrypt`");
  }
  const b64 = m[1].replace(/\s+/g, "");
  let bin: string;
  try {
    bin = atob(b64);
  } catch {
    throw new TypeError("privateKey is not valid PEM: its body is not base64");
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The `aud` claim Salesforce expects for `loginUrl` (see {@link JwtBearerAuthenticator}). */
function jwtAudience(loginUrl: string): string {
  let u: URL;
  try {
    u = new URL(loginUrl.trim());
  } catch {
    throw new TypeError("loginUrl is not a valid URL");
  }
  const host = u.hostname.toLowerCase();
  if (
    host === "test.salesforce.com" ||
    /\.(sandbox|scratch)\.my\.salesforce\.com$/.test(host) ||
    /^[^.]+--[^.]+\.(cs\d+\.)?my\.salesforce\.com$/.test(host) ||
    /^cs\d+\.salesforce\.com$/.test(host)
  ) {
    return SANDBOX_LOGIN_URL;
  }
  if (host === "salesforce.com" || host.endsWith(".salesforce.com")) return LOGIN_URL;
  return u.origin + u.pathname.replace(/\/+$/, "");
}

/**
 * OAuth 2.0 JWT bearer flow: an RS256 assertion signed with WebCrypto.
 *
 * The assertion's `aud` (the `audience` property; the `audience` option overrides it) is
 * what Salesforce expects for the login URL, which is not always the login URL:
 *
 * - `https://test.salesforce.com` for a sandbox: `test.salesforce.com`, a My Domain
 *   `*.sandbox.my.salesforce.com` or `*.scratch.my.salesforce.com`, a legacy sandbox My Domain
 *   `name--sandbox.my.salesforce.com` (or `name--sandbox.csNN.my.salesforce.com`), `csNN.salesforce.com`;
 * - `https://login.salesforce.com` for any other `*.salesforce.com` host: `login.salesforce.com`
 *   and production My Domains (`*.my.salesforce.com`, `*.develop.my.salesforce.com`, ...);
 * - otherwise the login URL itself, path included, without a trailing `/`: an Experience Cloud site
 *   (`https://acme.my.site.com/portal`) or a local emulator (`http://127.0.0.1:8090`).
 *
 * Salesforce refuses any other audience (`invalid_grant`: audience is invalid), a My Domain URL
 * included.
 */
export class JwtBearerAuthenticator extends AuthenticatorBase {
  readonly clientId: string;
  readonly username: string;
  readonly audience: string;
  readonly assertionLifetime: number;
  readonly #der: Uint8Array;
  #key: Promise<CryptoKey> | null = null;
  constructor(options: JwtBearerAuthenticatorOptions) {
    super(options, ["consumerKey", "username", "privateKey", "audience", "assertionLifetime"]);
    this.clientId = requireString("consumerKey", options.consumerKey);
    this.username = requireString("username", options.username);
    this.#der = pemToDer(requireString("privateKey", options.privateKey));
    if (options.audience !== undefined) {
      const audience = requireString("audience", options.audience).trim().replace(/\/+$/, "");
      // Not a destination (nothing is sent to it), so plain http is fine anywhere.
      validateUrl(audience, "audience", true);
      this.audience = audience;
    } else {
      this.audience = jwtAudience(this.loginUrl);
    }
    const life = options.assertionLifetime ?? 180;
    if (typeof life !== "number" || !Number.isInteger(life) || life <= 0 || life > 3600) {
      throw new TypeError("assertionLifetime must be an integer number of seconds between 1 and 3600");
    }
    this.assertionLifetime = life;
  }
  protected async grant(): Promise<OAuthGrant> {
    const subtle = globalThis.crypto?.subtle;
    if (!subtle) throw new AuthenticationError("WebCrypto (crypto.subtle) is not available in this runtime");
    if (this.#key === null) {
      const der = this.#der;
      this.#key = subtle.importKey("pkcs8", der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["sign"]);
    }
    let key: CryptoKey;
    try {
      key = await this.#key;
    } catch (e) {
      this.#key = null;
      throw new AuthenticationError("privateKey could not be imported as an RSA PKCS#8 key", {}, { cause: e });
    }
    const input = jwtSigningInput(this.clientId, this.username, this.audience, Math.floor(Date.now() / 1000), this.assertionLifetime);
    const sig = new Uint8Array(await subtle.sign("RSASSA-PKCS1-v1_5", key, new TextEncoder().encode(input)));
    return { grantType: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: jwtAssertion(input, sig) };
  }
}

/** The members of a {@link TokenInfo}: what a fixed token given to {@link AccessTokenAuthenticator} may hold. */
const TOKEN_INFO_KEYS: readonly string[] = ["accessToken", "instanceUrl", "tokenType", "id", "issuedAt", "signature", "scope"];

/** Options of {@link AccessTokenAuthenticator}. */
export type AccessTokenSource = TokenInfo | ((signal?: AbortSignal) => Promise<TokenInfo> | TokenInfo);

/**
 * A token you already have (for example from a session, or from your own OAuth code), or an
 * async function that returns a fresh one; the function is called again when Salesforce
 * invalidates the token, with the client's `signal` (see {@link Authenticator.authenticate}).
 *
 * The token must be printable ASCII without spaces (it goes into the `Authorization` header);
 * whitespace around it, such as the newline a file read with `readFileSync` ends with, is removed.
 * A fixed token that is still unusable is a `TypeError` when constructed; one a function returns
 * makes `authenticate()` (and so `Client.open()`) reject with an {@link AuthenticationError}. The
 * same holds for `instanceUrl` (an http(s) URL; plain http only to loopback hosts unless
 * `allowInsecureHttp`), `tokenType` (an HTTP scheme, default `Bearer`) and `id` (optional: the
 * identity URL the token came with, `https://<host>/id/<orgId>/<userId>`). No error quotes the token.
 *
 * Give `id` when several users share an instance and a native or edge replay storage: those
 * storages keep markers apart by the org and user it names. Without it they know only the
 * instance's host, so every user of that instance shares one set of markers (one user's
 * progress would make another skip events) unless each client gets its own `namespace`.
 */
export class AccessTokenAuthenticator implements Authenticator {
  readonly apiVersion: string;
  instanceUrl: string | null = null;
  tokenType: string | null = null;
  readonly #source: ((signal?: AbortSignal) => Promise<TokenInfo> | TokenInfo) | CheckedTokenInfo;
  #accessToken: string | null = null;
  /** Allow a plain-http instance URL on a non-loopback host. */
  readonly allowInsecureHttp: boolean;
  constructor(source: AccessTokenSource, options: { apiVersion?: string | undefined; allowInsecureHttp?: boolean | undefined } = {}) {
    checkOptionKeys(options, ["apiVersion", "allowInsecureHttp"], "AccessTokenAuthenticator");
    checkBoolean("allowInsecureHttp", options.allowInsecureHttp);
    this.allowInsecureHttp = options.allowInsecureHttp === true;
    if (typeof source === "function") {
      this.#source = source;
    } else {
      if (source === null || typeof source !== "object") throw new TypeError("source must be { accessToken, instanceUrl } or a function returning it");
      for (const key of Object.keys(source)) {
        if (TOKEN_INFO_KEYS.includes(key)) continue;
        const where = key === "apiVersion" || key === "allowInsecureHttp" ? `: ${key} is an option, it goes in the second argument` : "";
        throw new TypeError(`source has an unknown key ${JSON.stringify(key)} (a token is a TokenInfo: { accessToken, instanceUrl, tokenType?, id?, ... })${where}`);
      }
      const checked = checkTokenInfo(source, this.allowInsecureHttp);
      if (Array.isArray(checked)) throw new TypeError(`${checked[0]} ${checked[1]}`);
      this.#source = checked;
      // Known from the start: no login changes them.
      this.#accessToken = checked.accessToken;
      this.instanceUrl = checked.instanceUrl;
      this.tokenType = checked.tokenType;
    }
    this.apiVersion = checkApiVersion(options.apiVersion);
  }
  get accessToken(): string | null {
    return this.#accessToken;
  }
  /** The token, from the function source (which gets `signal`) or the fixed one. */
  async authenticate(signal?: AbortSignal): Promise<TokenInfo> {
    let info: CheckedTokenInfo;
    if (typeof this.#source === "function") {
      let got: TokenInfo;
      try {
        got = await this.#source(signal);
      } catch (e) {
        throw new AuthenticationError("the access-token function failed", {}, { cause: e });
      }
      if (got === null || typeof got !== "object") {
        throw new AuthenticationError("the access-token source returned no accessToken/instanceUrl");
      }
      const checked = checkTokenInfo(got, this.allowInsecureHttp);
      if (Array.isArray(checked)) {
        const [field, reason] = checked;
        const what = field === "accessToken" ? "an invalid access token" : `an invalid ${field}`;
        throw new AuthenticationError(`the access-token function returned ${what}: ${field} ${reason}`);
      }
      info = checked;
    } else {
      info = this.#source;
    }
    this.#accessToken = info.accessToken;
    this.instanceUrl = info.instanceUrl;
    this.tokenType = info.tokenType;
    return { accessToken: info.accessToken, instanceUrl: info.instanceUrl, tokenType: info.tokenType, id: info.id };
  }
  toJSON(): Record<string, unknown> {
    return { type: "AccessTokenAuthenticator", apiVersion: this.apiVersion, instanceUrl: this.instanceUrl };
  }
}
