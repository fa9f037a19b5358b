// The relay in workerd (Miniflare): the same relay as a module worker. Each Salesforce token the relay
// obtains is reported to the harness through the REPORT service binding.
import { PasswordAuthenticator } from "sfstream";
import { createRelay } from "sfstream/relay";
import { makeRelay } from "./relay-app.mjs";

let relay = null;
export default {
  fetch(request, env) {
    relay ??= makeRelay({
      createRelay,
      PasswordAuthenticator,
      sfemuUrl: env.SFEMU_URL,
      credentials: JSON.parse(env.SF_CREDENTIALS),
      secret: env.SESSION_SECRET,
      pageOrigin: env.PAGE_ORIGIN,
      onToken: async (t) => {
        await env.REPORT.fetch("http://report/token", { method: "POST", body: t });
      },
    });
    return relay(request);
  },
};
