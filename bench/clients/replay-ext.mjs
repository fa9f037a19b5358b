// Salesforce's documented replay pattern (`ext.replay: true` on the handshake, `ext.replay:
// {channel: replayId}` on the subscribe, the last replay id remembered), written for the bench as
// a CometD extension and as a Faye extension. Shared by the Node and the browser runs.

export class CometdReplayExtension {
  constructor(channel, replayId) {
    this.channel = channel;
    this.replayId = replayId;
  }
  incoming(message) {
    if (message.channel === this.channel) {
      const id = message.data?.event?.replayId;
      if (typeof id === "number") this.replayId = id;
    }
    return message;
  }
  outgoing(message) {
    if (message.channel === "/meta/handshake") {
      message.ext = { ...(message.ext || {}), replay: true };
    } else if (message.channel === "/meta/subscribe" && message.subscription === this.channel) {
      message.ext = { ...(message.ext || {}), replay: { [this.channel]: this.replayId } };
    }
    return message;
  }
}

export class FayeReplayExtension {
  constructor(channel, replayId) {
    this.inner = new CometdReplayExtension(channel, replayId);
  }
  incoming(message, callback) {
    callback(this.inner.incoming(message));
  }
  outgoing(message, callback) {
    callback(this.inner.outgoing(message));
  }
}
