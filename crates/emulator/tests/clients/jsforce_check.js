// jsforce against the emulator.
//
// Usage:
//   node jsforce_check.js URL login|crud|query
//   node jsforce_check.js URL streaming CHANNEL EXPECT [TRIGGER_JSON]
//
// URL is the emulator's base URL (http://127.0.0.1:PORT), its login URL and
// instance URL alike; jsforce takes it as `loginUrl` (a documented option),
// so nothing in the library is changed. Prints one JSON object to stdout for
// crates/emulator/tests/third_party_clients.rs to assert on; anything
// unexpected throws, and the process exits non-zero.
//
// streaming: subscribes with conn.streaming (faye underneath) to CHANNEL, a
// PushTopic name (jsforce adds /topic/) or a channel such as /u/notes; once
// the subscription is confirmed, makes the REST call TRIGGER_JSON describes,
// {"method": "POST", "path": "sobjects/Contact", "body": {...}} (path
// relative to /services/data/vXX.X/), and collects EXPECT messages.
"use strict";

const jsforce = require("jsforce");

const USERNAME = "emulator@example.com";
const PASSWORD = "password";
const SECURITY_TOKEN = "token";
const CONSUMER_KEY = "emulator-consumer-key";
const CONSUMER_SECRET = "emulator-consumer-secret";
const VERSION = "62.0";
const RECEIVE_TIMEOUT_MS = 30000;

function soapConnection(url) {
  return new jsforce.Connection({ loginUrl: url, version: VERSION });
}

async function soapLogin(url) {
  const conn = soapConnection(url);
  const userInfo = await conn.login(USERNAME, PASSWORD + SECURITY_TOKEN);
  return { conn, userInfo };
}

function errorOf(err) {
  return {
    name: err.name,
    errorCode: err.errorCode,
    message: err.message,
    fields: err.fields,
  };
}

async function expectError(promise) {
  try {
    const value = await promise;
    throw new Error(`expected an error, got ${JSON.stringify(value)}`);
  } catch (err) {
    if (err.message && err.message.startsWith("expected an error")) throw err;
    return errorOf(err);
  }
}

async function login(url) {
  const out = {};
  const soap = await soapLogin(url);
  out.soap = {
    userInfo: soap.userInfo,
    instanceUrl: soap.conn.instanceUrl,
    accessToken: soap.conn.accessToken,
    identity: await soap.conn.identity(),
  };

  const oauth = new jsforce.Connection({
    oauth2: { loginUrl: url, clientId: CONSUMER_KEY, clientSecret: CONSUMER_SECRET },
    version: VERSION,
  });
  const oauthUser = await oauth.login(USERNAME, PASSWORD + SECURITY_TOKEN);
  out.oauth = {
    userInfo: oauthUser,
    instanceUrl: oauth.instanceUrl,
    accessToken: oauth.accessToken,
    limitsKeys: Object.keys(await oauth.limits()).sort(),
  };

  out.soapBadPassword = await expectError(soapConnection(url).login(USERNAME, "wrong"));
  out.oauthBadSecret = await expectError(
    new jsforce.Connection({
      oauth2: { loginUrl: url, clientId: CONSUMER_KEY, clientSecret: "wrong" },
      version: VERSION,
    }).login(USERNAME, PASSWORD + SECURITY_TOKEN),
  );
  return out;
}

async function crud(url) {
  const { conn } = await soapLogin(url);
  const out = {};
  const Contact = conn.sobject("Contact");
  const created = await Contact.create({ FirstName: "Grace", LastName: "Hopper" });
  out.create = created;
  const fetched = await Contact.retrieve(created.id);
  out.retrieve = {
    Id: fetched.Id,
    FirstName: fetched.FirstName,
    LastName: fetched.LastName,
    attributes: fetched.attributes,
  };
  out.update = await Contact.update({ Id: created.id, Title: "Rear Admiral" });
  out.afterUpdate = (await Contact.retrieve(created.id)).Title;

  const Account = conn.sobject("Account");
  out.upsertCreate = await Account.upsert({ Name: "Initech", External_Id__c: "INI-1" }, "External_Id__c");
  out.upsertUpdate = await Account.upsert({ Name: "Initech 2", External_Id__c: "INI-1" }, "External_Id__c");
  out.destroy = await Contact.destroy(created.id);
  out.retrieveDeleted = await expectError(Contact.retrieve(created.id));
  out.badField = await expectError(Contact.create({ LastName: "X", NoSuchField: 1 }));

  const described = await Contact.describe();
  out.describe = {
    name: described.name,
    keyPrefix: described.keyPrefix,
    fieldNames: described.fields.map((f) => f.name).sort(),
  };
  const global = await conn.describeGlobal();
  out.describeGlobalNames = global.sobjects.map((s) => s.name).sort();
  out.limits = (await conn.limits()).DailyApiRequests;
  return out;
}

async function query(url) {
  const { conn } = await soapLogin(url);
  const out = {};
  const Contact = conn.sobject("Contact");
  const ids = [];
  for (const first of ["E", "A", "D", "B", "C"]) {
    ids.push((await Contact.create({ FirstName: first, LastName: "Paging" })).id);
  }
  const soql = "SELECT Id, FirstName FROM Contact WHERE LastName = 'Paging' ORDER BY FirstName";
  const page = await conn.query(soql, { autoFetch: false });
  out.firstPage = {
    totalSize: page.totalSize,
    done: page.done,
    count: page.records.length,
    nextRecordsUrl: page.nextRecordsUrl || null,
  };
  const all = await conn.query(soql).run({ autoFetch: true, maxFetch: 100 });
  out.autoFetch = { totalSize: all.totalSize, firstNames: all.records.map((r) => r.FirstName) };
  const found = await Contact.find({ LastName: "Paging" }, ["Id", "FirstName"])
    .sort("FirstName")
    .execute({ autoFetch: true });
  out.find = found.map((r) => r.FirstName);
  out.badQuery = await expectError(conn.query("SELECT Nope FROM Contact"));
  return out;
}

async function streaming(url, channel, expect, triggerSpec) {
  const { conn } = await soapLogin(url);
  const out = { messages: [] };
  const streamingChannel = channel.startsWith("/u/")
    ? conn.streaming.channel(channel)
    : conn.streaming.topic(channel);
  let finish;
  const received = new Promise((resolve) => {
    finish = resolve;
  });
  const subscription = streamingChannel.subscribe((message) => {
    out.messages.push(message);
    if (out.messages.length >= expect) finish();
  });
  // A faye Subscription is thenable: it settles when /meta/subscribe is answered.
  await subscription;
  out.subscribed = true;
  if (triggerSpec) {
    const method = (triggerSpec.method || "POST").toUpperCase();
    out.trigger = await conn.request({
      method,
      url: `/services/data/v${VERSION}/${triggerSpec.path}`,
      body: triggerSpec.body === undefined ? undefined : JSON.stringify(triggerSpec.body),
      headers: { "Content-Type": "application/json" },
    });
  }
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => {
      out.timedOut = true;
      resolve();
    }, RECEIVE_TIMEOUT_MS);
  });
  await Promise.race([received, timeout]);
  clearTimeout(timer);
  subscription.cancel();
  return out;
}

async function main() {
  const [url, section, ...rest] = process.argv.slice(2);
  const sections = { login, crud, query };
  let out;
  if (section === "streaming" && (rest.length === 2 || rest.length === 3)) {
    const trigger = rest[2] ? JSON.parse(rest[2]) : null;
    out = await streaming(url.replace(/\/$/, ""), rest[0], Number(rest[1]), trigger);
  } else if (sections[section] && rest.length === 0) {
    out = await sections[section](url.replace(/\/$/, ""));
  } else {
    console.error("usage: jsforce_check.js URL login|crud|query");
    console.error("       jsforce_check.js URL streaming CHANNEL EXPECT [TRIGGER_JSON]");
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(out) + "\n");
  // faye keeps a timer alive after cancel; the checks are done.
  process.exit(0);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  if (err && err.errorCode) console.error(`errorCode: ${err.errorCode}`);
  process.exit(1);
});
