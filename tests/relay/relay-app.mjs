// The relay the tests deploy, identical in Deno and workerd: a password authenticator against sfemu
// (server side only), the test page's origin, a channel allowlist, and authorize() verifying the
// signed session token. `onToken` reports every Salesforce token the relay obtains to the harness,
// which then asserts that none of them ever reaches the browser.
import { verifySession } from "./session.mjs";

export const ALLOWED_CHANNELS = ["/event/Relay_*", "/topic/RelayAllowed"];

export function makeRelay({ createRelay, PasswordAuthenticator, sfemuUrl, credentials, secret, pageOrigin, onToken }) {
  const inner = new PasswordAuthenticator({ ...credentials, loginUrl: sfemuUrl });
  const authenticator = {
    apiVersion: inner.apiVersion,
    async authenticate() {
      const t = await inner.authenticate();
      await onToken(t.accessToken);
      return t;
    },
  };
  return createRelay({
    authenticator,
    allowedOrigins: [pageOrigin],
    channels: ALLOWED_CHANNELS,
    authorize: (request) => verifySession(request.headers.get("authorization"), secret),
  });
}
