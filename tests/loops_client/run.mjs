// The official Loops JavaScript client (npm `loops`, pinned in package.json) against LoopSync's API.
//
// Run by test_official_client.py against pytest-django's live server, which sets up the team, its key,
// a mailing list, a transactional email, an active loop and an unsubscribed contact first, then checks
// in the database what these calls did. Only the client's public `apiRoot` is changed: every request
// is exactly what the client sends to Loops.
//
// Prints one JSON line at the end: {"ok": true, "client": "loops@x.y.z", "steps": [...]}; on the first
// failing step prints {"ok": false, "step": ..., "error": ...} and exits 1.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { APIError, LoopsClient } from "loops";

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set (run through tests/loops_client/test_official_client.py)`);
    process.exit(2);
  }
  return value;
}

const API_ROOT = env("LOOPS_API_ROOT"); // e.g. http://localhost:12345/api/
const TEAM_NAME = env("LOOPSYNC_TEAM_NAME");
const LIST_ID = env("LOOPSYNC_LIST_ID");
const LIST_NAME = env("LOOPSYNC_LIST_NAME");
const SUPPRESSED_EMAIL = env("LOOPSYNC_SUPPRESSED_EMAIL"); // a contact the test created unsubscribed
const TRANSACTIONAL_ID = env("LOOPSYNC_TRANSACTIONAL_ID");
const EVENT_NAME = env("LOOPSYNC_EVENT_NAME"); // triggers an active loop
const IDEMPOTENCY_KEY = env("LOOPSYNC_IDEMPOTENCY_KEY");

const EMAIL = "ada@example.org";
const USER_ID = "user_ada_1815";
const CLIENT_VERSION = JSON.parse(
  readFileSync(new URL("./node_modules/loops/package.json", import.meta.url), "utf8"),
).version;

const loops = new LoopsClient(env("LOOPS_API_KEY"));
loops.apiRoot = API_ROOT;

const steps = [];
async function step(name, run) {
  try {
    await run();
  } catch (error) {
    let detail = error instanceof APIError ? ` (HTTP ${error.statusCode}: ${JSON.stringify(error.json ?? error.rawBody)})` : "";
    if (error.cause) detail += ` (cause: ${error.cause.message || error.cause})`;
    console.error(`FAILED at "${name}": ${error.stack || error}${detail}`);
    console.log(JSON.stringify({ ok: false, step: name, error: `${error.message}${detail}`, steps }));
    process.exit(1);
  }
  steps.push(name);
}

// The call must fail with an APIError of this status, in Loops' error shape.
async function rejectsWith(call, statusCode) {
  await assert.rejects(call, (error) => {
    assert.ok(error instanceof APIError, `expected an APIError, got ${error}`);
    assert.equal(error.statusCode, statusCode, `HTTP ${error.statusCode}: ${JSON.stringify(error.json)}`);
    assert.equal(error.json?.success, false);
    assert.equal(typeof error.json?.message, "string");
    assert.ok(error.json.message.length > 0);
    return true;
  });
}

function assertContact(contact, expected) {
  for (const key of ["id", "email", "source", "userGroup"]) {
    assert.equal(typeof contact[key], "string", `contact.${key} is a string`);
  }
  for (const key of ["firstName", "lastName", "userId", "optInStatus"]) {
    assert.ok(key in contact, `contact.${key} is present`);
  }
  assert.equal(typeof contact.subscribed, "boolean");
  assert.equal(typeof contact.mailingLists, "object");
  assert.ok(contact.mailingLists !== null && !Array.isArray(contact.mailingLists));
  for (const [key, value] of Object.entries(expected)) {
    assert.deepEqual(contact[key], value, `contact.${key}`);
  }
}

let contactId;
let suppressedId;
let quotaBefore;

await step("testApiKey", async () => {
  assert.deepEqual(await loops.testApiKey(), { success: true, teamName: TEAM_NAME });
});

await step("testApiKey with a wrong key: 401", async () => {
  const stranger = new LoopsClient("ls_not-a-key");
  stranger.apiRoot = API_ROOT;
  await rejectsWith(stranger.testApiKey(), 401);
});

await step("createContact", async () => {
  const answer = await loops.createContact({
    email: EMAIL,
    properties: { firstName: "Ada", plan: "pro", seats: 3 },
    mailingLists: { [LIST_ID]: true },
  });
  assert.equal(answer.success, true);
  assert.equal(typeof answer.id, "string");
  assert.ok(answer.id.length > 0);
  contactId = answer.id;
});

await step("createContact again: 409", async () => {
  await rejectsWith(loops.createContact({ email: EMAIL, properties: { firstName: "Other" } }), 409);
});

await step("updateContact", async () => {
  const answer = await loops.updateContact({
    email: EMAIL,
    userId: USER_ID,
    properties: { lastName: "Lovelace", plan: "team" },
  });
  assert.deepEqual(answer, { success: true, id: contactId });
});

const updated = {
  id: contactId,
  email: EMAIL,
  firstName: "Ada",
  lastName: "Lovelace",
  userId: USER_ID,
  subscribed: true,
  source: "API",
  plan: "team",
  seats: 3,
  mailingLists: { [LIST_ID]: true },
};

await step("findContact by email", async () => {
  const found = await loops.findContact({ email: EMAIL });
  assert.ok(Array.isArray(found), "findContact answers a list");
  assert.equal(found.length, 1);
  assertContact(found[0], updated);
});

await step("findContact by userId", async () => {
  const found = await loops.findContact({ userId: USER_ID });
  assert.ok(Array.isArray(found));
  assert.equal(found.length, 1);
  assertContact(found[0], updated);
});

await step("updateContact by userId: leave the mailing list", async () => {
  const answer = await loops.updateContact({ userId: USER_ID, mailingLists: { [LIST_ID]: false } });
  assert.deepEqual(answer, { success: true, id: contactId });
  const [contact] = await loops.findContact({ email: EMAIL });
  assertContact(contact, { ...updated, mailingLists: {} });
});

function assertProperties(properties) {
  assert.ok(Array.isArray(properties));
  for (const property of properties) {
    assert.deepEqual(Object.keys(property).sort(), ["key", "label", "type"]);
    assert.ok(["string", "number", "boolean", "date"].includes(property.type), property.type);
    assert.equal(typeof property.label, "string");
  }
  return Object.fromEntries(properties.map((p) => [p.key, p.type]));
}

await step("listContactProperties", async () => {
  const types = assertProperties(await loops.listContactProperties());
  for (const key of ["email", "firstName", "lastName", "userId", "subscribed"]) {
    assert.ok(key in types, `the standard property ${key} is listed`);
  }
  assert.equal(types.subscribed, "boolean");
  assert.equal(types.plan, "string");
  assert.equal(types.seats, "number");
});

await step('listContactProperties("custom")', async () => {
  const types = assertProperties(await loops.listContactProperties("custom"));
  // Stripe's billing properties are built in (typed), then the team's own
  assert.equal(types.mrr, "number");
  assert.equal(types.trialEnd, "date");
  assert.equal(types.plan, "string");
  assert.equal(types.seats, "number");
  assert.equal(Object.keys(types).length, 15 + 2);
});

await step("listMailingLists", async () => {
  const lists = await loops.listMailingLists();
  assert.ok(Array.isArray(lists));
  const list = lists.find((l) => l.id === LIST_ID);
  assert.ok(list, `list ${LIST_ID} is in ${JSON.stringify(lists)}`);
  assert.deepEqual(list, { id: LIST_ID, name: LIST_NAME, description: "Product news, monthly.", isPublic: true });
});

function assertSuppression(answer, { email, isSuppressed }) {
  assert.deepEqual(Object.keys(answer).sort(), ["contact", "isSuppressed", "removalQuota"]);
  assert.equal(answer.contact.email, email);
  assert.equal(typeof answer.contact.id, "string");
  assert.ok("userId" in answer.contact);
  assert.equal(answer.isSuppressed, isSuppressed);
  assert.equal(typeof answer.removalQuota.limit, "number");
  assert.equal(typeof answer.removalQuota.remaining, "number");
  return answer;
}

await step("checkContactSuppression: subscribed contact", async () => {
  const answer = assertSuppression(await loops.checkContactSuppression({ email: EMAIL }), {
    email: EMAIL,
    isSuppressed: false,
  });
  assert.deepEqual(answer.contact, { id: contactId, email: EMAIL, userId: USER_ID });
});

await step("checkContactSuppression by userId", async () => {
  const answer = await loops.checkContactSuppression({ userId: USER_ID });
  assertSuppression(answer, { email: EMAIL, isSuppressed: false });
});

await step("checkContactSuppression: unknown contact: 404", async () => {
  await rejectsWith(loops.checkContactSuppression({ email: "nobody@example.org" }), 404);
});

await step("checkContactSuppression: unsubscribed contact", async () => {
  const answer = assertSuppression(await loops.checkContactSuppression({ email: SUPPRESSED_EMAIL }), {
    email: SUPPRESSED_EMAIL,
    isSuppressed: true,
  });
  assert.equal(answer.contact.userId, null);
  suppressedId = answer.contact.id;
  quotaBefore = answer.removalQuota;
  assert.ok(quotaBefore.remaining > 0);
});

await step("removeContactSuppression", async () => {
  const answer = await loops.removeContactSuppression({ email: SUPPRESSED_EMAIL });
  assert.equal(answer.success, true);
  assert.equal(typeof answer.message, "string");
  assert.deepEqual(answer.removalQuota, { limit: quotaBefore.limit, remaining: quotaBefore.remaining - 1 });
});

await step("checkContactSuppression after removal", async () => {
  const answer = assertSuppression(await loops.checkContactSuppression({ email: SUPPRESSED_EMAIL }), {
    email: SUPPRESSED_EMAIL,
    isSuppressed: false,
  });
  assert.equal(answer.contact.id, suppressedId);
});

await step("findContact: resubscribed", async () => {
  const found = await loops.findContact({ email: SUPPRESSED_EMAIL });
  assert.equal(found.length, 1);
  assertContact(found[0], { id: suppressedId, email: SUPPRESSED_EMAIL, subscribed: true, firstName: "Grace" });
});

const event = {
  email: SUPPRESSED_EMAIL,
  eventName: EVENT_NAME,
  contactProperties: { lastName: "Hopper" },
  eventProperties: { amount_formatted: "$42.00", seats: 5, annual: true },
  headers: { "Idempotency-Key": IDEMPOTENCY_KEY },
};

await step("sendEvent with an Idempotency-Key", async () => {
  assert.deepEqual(await loops.sendEvent(event), { success: true });
});

await step("sendEvent again with the same Idempotency-Key", async () => {
  assert.deepEqual(await loops.sendEvent(event), { success: true });
});

await step("sendTransactionalEmail: missing data variable: 400", async () => {
  await rejectsWith(
    loops.sendTransactionalEmail({ transactionalId: TRANSACTIONAL_ID, email: SUPPRESSED_EMAIL, dataVariables: {} }),
    400,
  );
});

await step("sendTransactionalEmail", async () => {
  const answer = await loops.sendTransactionalEmail({
    transactionalId: TRANSACTIONAL_ID,
    email: SUPPRESSED_EMAIL,
    dataVariables: { name: "Grace" },
  });
  assert.deepEqual(answer, { success: true });
});

await step("deleteContact", async () => {
  assert.deepEqual(await loops.deleteContact({ email: EMAIL }), { success: true, message: "Contact deleted." });
});

await step("findContact after delete", async () => {
  assert.deepEqual(await loops.findContact({ email: EMAIL }), []);
  assert.deepEqual(await loops.findContact({ userId: USER_ID }), []);
});

await step("deleteContact again: 404", async () => {
  await rejectsWith(loops.deleteContact({ email: EMAIL }), 404);
});

console.log(JSON.stringify({ ok: true, client: `loops@${CLIENT_VERSION}`, steps }));
