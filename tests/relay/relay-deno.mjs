// The relay in Deno: Deno.serve on an ephemeral loopback port. Imports the packed package through
// its exports map ("sfstream" → dist/deno.js, "sfstream/relay" → dist/relay.js).
import { PasswordAuthenticator } from "sfstream";
import { createRelay } from "sfstream/relay";
import { makeRelay } from "./relay-app.mjs";

const env = (k) => Deno.env.get(k);
const relay = makeRelay({
  createRelay,
  PasswordAuthenticator,
  sfemuUrl: env("SFEMU_URL"),
  credentials: JSON.parse(env("SF_CREDENTIALS")),
  secret: env("SESSION_SECRET"),
  pageOrigin: env("PAGE_ORIGIN"),
  onToken: (t) => console.log(`TOKEN ${t}`),
});
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(`RELAY http://127.0.0.1:${port}`) }, relay);
