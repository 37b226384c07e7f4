// Drains a Pub/Sub backlog with salesforce-pubsub-api-client 5.5.2 (the
// widely used Node client), as its README documents it: username-password
// login (jsforce underneath), then
// client.subscribeFromEarliestEvent(topic, callback) with no request count,
// which keeps the subscription going in batches of 100.
//
// Usage: node pubsub_drain.js LOGIN_URL PUBSUB_ENDPOINT TOPIC EVENTS
//
// PUBSUB_ENDPOINT is host:port of a TLS Pub/Sub server (the client only
// speaks TLS; `rejectUnauthorizedSsl: false` is its documented option for a
// self-signed certificate). Writes each decoded event as one JSON line on
// stdout (like `sfstream listen`; BigInts as strings, as its README says;
// lines gathered and written 1,000 at a time), and exits after EVENTS
// events, or fails after 600 s.
"use strict";

const PubSubApiClient = require("salesforce-pubsub-api-client").default;

const DEADLINE_MS = 600000;

const quiet = { debug() {}, info() {}, warn: console.error, error: console.error };

async function main() {
  const [loginUrl, endpoint, topic, eventsArg] = process.argv.slice(2);
  const events = Number(eventsArg);
  if (!loginUrl || !endpoint || !topic || !(events > 0)) {
    console.error("usage: pubsub_drain.js LOGIN_URL PUBSUB_ENDPOINT TOPIC EVENTS");
    process.exit(2);
  }
  const client = new PubSubApiClient(
    {
      authType: "username-password",
      loginUrl,
      username: "emulator@example.com",
      password: "password",
      userToken: "token",
      pubSubEndpoint: endpoint,
      rejectUnauthorizedSsl: false,
    },
    quiet,
  );
  await client.connect();
  const deadline = setTimeout(() => {
    console.error("pubsub client: not done after 600 s");
    process.exit(1);
  }, DEADLINE_MS);
  let received = 0;
  let lines = [];
  const flush = () => {
    if (lines.length) {
      process.stdout.write(lines.join(""));
      lines = [];
    }
  };
  const replacer = (_key, v) => (typeof v === "bigint" ? v.toString() : v);
  await new Promise((resolve, reject) => {
    // Returns nothing in 5.5.2; errors come through the callback.
    client.subscribeFromEarliestEvent(topic, (subscription, callbackType, data) => {
        if (callbackType === "event") {
          if (received >= events) return;
          lines.push(JSON.stringify({ channel: subscription.topicName, data }, replacer) + "\n");
          received += 1;
          if (lines.length >= 1000) flush();
          if (received >= events) resolve();
        } else if (callbackType === "error") {
          reject(new Error(JSON.stringify(data, replacer)));
        }
    });
  });
  flush();
  clearTimeout(deadline);
  client.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(1);
  },
);
