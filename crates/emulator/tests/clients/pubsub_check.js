// salesforce-pubsub-api-client (the widely used npm Pub/Sub client) against
// the emulator's Pub/Sub server.
//
// Usage: node pubsub_check.js LOGIN_URL PUBSUB_ENDPOINT CDC_TOPIC EVENT_TOPIC COUNT
//
// LOGIN_URL is the emulator's base URL (the client logs in with its
// documented username-password flow, jsforce underneath); PUBSUB_ENDPOINT is
// host:port of the emulator's TLS Pub/Sub server (the client only speaks
// TLS; `rejectUnauthorizedSsl: false` is its documented option for a
// self-signed certificate). The script:
//   1. subscribes to CDC_TOPIC from the earliest event and takes COUNT
//      events (the test changes records before starting it);
//   2. publishes one event on EVENT_TOPIC with a `Message__c` field;
//   3. prints {"events": [<the decoded events>], "publish": <the result>} as
//      one JSON line (BigInts as strings) for
//      crates/emulator/tests/third_party_clients.rs to assert on.
// Anything unexpected throws, and the process exits non-zero.
"use strict";

const PubSubApiClient = require("salesforce-pubsub-api-client").default;

const RECEIVE_TIMEOUT_MS = 30000;

const [loginUrl, endpoint, cdcTopic, eventTopic, countArg] = process.argv.slice(2);
const count = Number(countArg);
if (!eventTopic || !(count > 0)) {
  throw new Error("usage: pubsub_check.js LOGIN_URL PUBSUB_ENDPOINT CDC_TOPIC EVENT_TOPIC COUNT");
}

// The client logs a lot at info level; keep stdout for the summary.
const logger = {
  debug: () => {},
  info: (...a) => console.error(...a),
  warn: (...a) => console.error(...a),
  error: (...a) => console.error(...a),
};

function toJson(value) {
  return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v));
}

async function firstEvents(client, topic, count) {
  return new Promise((resolve, reject) => {
    const received = [];
    const timer = setTimeout(
      () => reject(new Error(`${received.length} of ${count} events on ${topic} within ${RECEIVE_TIMEOUT_MS} ms`)),
      RECEIVE_TIMEOUT_MS,
    );
    const callback = (subscription, callbackType, data) => {
      if (callbackType === "event") {
        received.push({ topic: subscription.topicName, event: data });
        if (received.length === count) {
          clearTimeout(timer);
          resolve(received);
        }
      } else if (callbackType === "error") {
        clearTimeout(timer);
        reject(new Error(`stream error: ${toJson(data)}`));
      }
    };
    // Returns nothing in 5.5.2; errors come through the callback.
    try {
      client.subscribeFromEarliestEvent(topic, callback, count);
    } catch (err) {
      clearTimeout(timer);
      reject(err);
    }
  });
}

async function main() {
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
    logger,
  );
  await client.connect();
  const events = await firstEvents(client, cdcTopic, count);
  const publish = await client.publish(eventTopic, {
    CreatedDate: Date.now(),
    CreatedById: "005000000000001AAA",
    Message__c: { string: "hello from node" },
  });
  client.close();
  console.log(toJson({ events, publish }));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err && err.stack ? err.stack : err);
    if (err && err.cause) console.error("cause:", err.cause);
    process.exit(1);
  },
);
