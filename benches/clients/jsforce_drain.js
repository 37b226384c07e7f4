// Drains a backlog with jsforce 3.10.16 streaming (faye's CometD client
// underneath), as jsforce documents it: OAuth2 password login, then
// conn.streaming.createClient([new StreamingExtension.Replay(channel, -2)])
// and fayeClient.subscribe(channel, callback).
//
// Usage: node jsforce_drain.js URL CHANNEL EVENTS
//
// Writes each message as one JSON line on stdout (like `sfstream listen`;
// lines are gathered and written 1,000 at a time), and exits after EVENTS
// messages, or fails after 600 s. URL is the emulator's base URL, given to
// jsforce as `loginUrl` (a documented option); nothing in the library is
// changed.
"use strict";

const jsforce = require("jsforce");
const { StreamingExtension } = require("jsforce/api/streaming");

const DEADLINE_MS = 600000;

async function main() {
  const [url, channel, eventsArg] = process.argv.slice(2);
  const events = Number(eventsArg);
  if (!url || !channel || !(events > 0)) {
    console.error("usage: jsforce_drain.js URL CHANNEL EVENTS");
    process.exit(2);
  }
  const conn = new jsforce.Connection({
    oauth2: {
      loginUrl: url.replace(/\/$/, ""),
      clientId: "emulator-consumer-key",
      clientSecret: "emulator-consumer-secret",
    },
    version: "62.0",
  });
  await conn.login("emulator@example.com", "passwordtoken");
  const deadline = setTimeout(() => {
    console.error("jsforce: not done after 600 s");
    process.exit(1);
  }, DEADLINE_MS);
  const fayeClient = conn.streaming.createClient([
    new StreamingExtension.Replay(channel, -2),
  ]);
  let received = 0;
  let lines = [];
  const flush = () => {
    if (lines.length) {
      process.stdout.write(lines.join(""));
      lines = [];
    }
  };
  await new Promise((resolve) => {
    fayeClient.subscribe(channel, (message) => {
      if (received >= events) return;
      lines.push(JSON.stringify(message) + "\n");
      received += 1;
      if (lines.length >= 1000) flush();
      if (received >= events) resolve();
    });
  });
  flush();
  clearTimeout(deadline);
  console.error(`jsforce: ${received} events`);
  // faye keeps its connect loop and timers alive; the run is done.
  process.stdout.write("", () => process.exit(0));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
