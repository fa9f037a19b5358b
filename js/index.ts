/**
 * sfstream: a Salesforce Streaming API client (CometD long-polling) for browsers, Node, Deno
 * and Cloudflare Workers. Import it from `sfstream`: the package's `exports` map picks the
 * entry point that loads the WebAssembly module the right way for each runtime.
 * @module
 */

export { Client, SalesforceStreamingClient } from "./client.js";
export type { BatchOptions, ClientOptions, ClientStats, Logger, Message, ReceiveOptions, ReconnectReason, SalesforceStreamingClientOptions, StatusEvent } from "./client.js";
export {
  AccessTokenAuthenticator,
  AuthenticatorBase,
  ClientCredentialsAuthenticator,
  DEFAULT_API_VERSION,
  JwtBearerAuthenticator,
  LOGIN_URL,
  PasswordAuthenticator,
  RefreshTokenAuthenticator,
  SANDBOX_LOGIN_URL,
} from "./auth.js";
export type {
  AccessTokenSource,
  Authenticator,
  ClientCredentialsAuthenticatorOptions,
  JwtBearerAuthenticatorOptions,
  OAuthGrant,
  OAuthOptions,
  PasswordAuthenticatorOptions,
  RefreshTokenAuthenticatorOptions,
  TokenInfo,
} from "./auth.js";
export { ConstantReplayId, CorruptReplayMarkerError, DefaultMappingStorage, MappingStorage, ReplayMarker, ReplayMarkerStorage, ReplayOption } from "./replay.js";
export type { MapLike, ReplayStart } from "./replay.js";
export {
  DenoKvReplayStorage,
  DurableObjectReplayStorage,
  IndexedDbReplayStorage,
  LocalStorageReplayStorage,
  MemoryReplayStorage,
  NativeReplayStorage,
  WorkersKvReplayStorage,
} from "./storage.js";
export type { DenoKvLike, DurableObjectStorageLike, NativeStorageOptions, ReplayConfig, WorkersKvLike } from "./storage.js";
export {
  AiosfstreamException,
  AuthenticationError,
  ClientError,
  ClientInvalidOperation,
  ServerError,
  SfstreamError,
  TransportConnectionClosed,
  TransportError,
  TransportInvalidOperation,
  TransportTimeoutError,
} from "./errors.js";
export type { ServerResponse } from "./errors.js";
export { SharedTabClient } from "./tabs.js";
export type { SharedTabClientOptions, SharedTabStatus, TabRole } from "./tabs.js";
