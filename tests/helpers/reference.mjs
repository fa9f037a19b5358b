// A reference consumer for the layers that check "nothing lost": it replays ALL_EVENTS of a
// channel from sfemu through the packed package (imported as "sfstream", as users get it).
import { SalesforceStreamingClient, ReplayOption } from "sfstream";
import { CREDENTIALS } from "./sfemu.mjs";

/** The replay ids of everything on `channel` up to `last`, in the order sfemu retains them. */
export async function allIds(url, channel, last) {
  const ref = new SalesforceStreamingClient({ ...CREDENTIALS, loginUrl: url, replay: ReplayOption.ALL_EVENTS, maxPendingCount: 0 });
  await ref.open();
  try {
    await ref.subscribe(channel);
    const ids = [];
    const signal = AbortSignal.timeout(60000);
    while (ids.at(-1) !== last) ids.push((await ref.receive({ signal })).data.event.replayId);
    return ids;
  } finally {
    await ref.close();
  }
}
