// The Node relay as docs/deploy.md shows it, compiled against @types/node: Node's own request
// and response objects must fit the adapter's types (no cast).
import { createServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { AccessTokenAuthenticator } from "sfstream";
import { createRelay } from "sfstream/relay";
import { toNodeHandler } from "sfstream/relay/node";

const relay = createRelay({
  authenticator: new AccessTokenAuthenticator({ accessToken: "00Dx!token", instanceUrl: "https://example.my.salesforce.com" }),
  allowedOrigins: ["https://app.example.com"],
  channels: ["/event/Order__e"],
  authorize: (request: Request) => request.headers.get("authorization") === "Bearer app-session",
});
createServer(toNodeHandler(relay)).listen(8787);
createHttpsServer({}, toNodeHandler(relay, { baseUrl: "https://relay.example.com" })).listen(8443);
