// Must NOT compile: run.mjs asserts tsc rejects this file with exactly these errors.
import { AuthenticatorBase, SalesforceStreamingClient, ServerError } from "sfstream";

const client = new SalesforceStreamingClient({ consumerKey: "k", consumerSecret: "s", username: "u", password: "p" });
await client.subscribe(["/topic/A"]); // TS2345: a string is expected
client.open("now"); // TS2554: no argument expected
const e = new ServerError("x");
const code: string = e.errorCode; // TS2322: errorCode is number | null
export { code };
export class NoGrant extends AuthenticatorBase {} // TS2515: grant() is not implemented
