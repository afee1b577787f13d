/**
 * The fault suite's verdict on hand-made evidence: each broken promise fails its check, and
 * at-least-once duplicates are counted, not failed. No broker, no permissions.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { KcatRecord } from "../../chaos/_kcat.ts";
import { orderJson, POISON_HEADER, poisonRecords } from "../../chaos/poison.ts";
import { verify } from "../../chaos/verify.ts";
import type { ChaosCheck, Evidence } from "../../chaos/verify.ts";

const CREATED = "2026-01-01T00:00:00.000Z";
const INPUT = "orders";
const DLQ = "orders.dlq";

let offset = 0;
function record(
  topic: string,
  key: string | null,
  payload: string | null,
  headers: Record<string, string> = {},
): KcatRecord {
  return { topic, partition: 0, offset: offset++, key, payload, headers };
}

function payment(id: string): KcatRecord {
  return record("payments", id, JSON.stringify({ event_type: "PaymentProcessed", order_id: id }));
}

function letter(original: KcatRecord, errorType: string): KcatRecord {
  return record(
    DLQ,
    original.key,
    JSON.stringify({
      original_topic: original.topic,
      original_partition: original.partition,
      original_offset: original.offset,
      key: original.key,
      value: original.payload,
      error_type: errorType,
      error_reason: `Cannot accept record: ${errorType}`,
    }),
  );
}

/** Three orders: o-1 and o-2 paid, o-3 dead-lettered, everything as promised. */
function evidence(): Evidence & {
  input: KcatRecord[];
  payments: KcatRecord[];
  deadLetters: KcatRecord[];
} {
  const input = ["o-1", "o-2", "o-3"].map((id, i) => record(INPUT, id, orderJson(id, i, CREATED)));
  const payments = [payment("o-1"), payment("o-2")];
  return {
    guarantee: "at_least_once",
    sent: ["o-1", "o-2", "o-3"],
    input,
    retry: [],
    payments,
    paymentsUncommitted: payments,
    deadLetters: [letter(input[2], "RetriesExhaustedError")],
    poison: [],
    poisonNotWritten: {},
    ledger: { "o-1": [{}], "o-2": [{}] },
    lag: { partitions: [{ topic: INPUT, partition: 0, lag: 0 }] },
    exits: [{ name: "payments#1", code: 0 }],
  };
}

function status(checks: ChaosCheck[], prefix: string): string {
  const found = checks.find((c) => c.check.startsWith(prefix));
  assert.ok(found, `a check "${prefix}…" in ${checks.map((c) => c.check).join(", ")}`);
  return found.status;
}

Deno.test("verify() passes a run that kept every promise", () => {
  const checks = verify(evidence());
  assert.deepEqual(checks.filter((c) => c.status !== "pass"), []);
});

Deno.test("verify() fails an order without an outcome and one with two", () => {
  const lost = evidence();
  lost.payments.pop();
  assert.equal(status(verify(lost), "one outcome per order"), "fail");
  const both = evidence();
  both.payments.push(payment("o-3"));
  assert.equal(status(verify(both), "one outcome per order"), "fail");
});

Deno.test("verify() counts a duplicate PaymentProcessed at least once, fails it exactly once", () => {
  const twice = evidence();
  twice.payments.push(payment("o-1"));
  assert.equal(status(verify(twice), "one PaymentProcessed"), "info");
  assert.equal(
    status(verify({ ...twice, guarantee: "exactly_once" }), "one PaymentProcessed"),
    "fail",
  );
});

Deno.test("verify() fails a key charged twice or a dead-lettered order that was charged", () => {
  assert.equal(
    status(verify({ ...evidence(), ledger: { "o-1": [{}, {}], "o-2": [{}] } }), "each order"),
    "fail",
  );
  assert.equal(
    status(verify({ ...evidence(), ledger: { "o-1": [{}], "o-2": [{}], "o-3": [{}] } }), "each"),
    "fail",
  );
  assert.equal(
    status(verify({ ...evidence(), ledger: { unavailable: "no gateway" } }), "each order"),
    "not available",
  );
});

Deno.test("verify() fails lag left on a partition and a service that did not stop cleanly", () => {
  const stuck = { ...evidence(), lag: { partitions: [{ topic: INPUT, partition: 0, lag: 1 }] } };
  assert.equal(status(verify(stuck), "lag 0"), "fail");
  assert.equal(
    status(verify({ ...evidence(), exits: [{ name: "payments#1", code: 137 }] }), "services"),
    "fail",
  );
});

Deno.test("verify() wants each poison record dead-lettered with the error type it is owed", () => {
  const poison = poisonRecords({ prefix: "p", laterOrderIds: ["o-1", "o-2"], now: 0 });
  const json = poison.find((p) => p.kind === "invalid-json")!;
  const mismatch = poison.find((p) => p.kind === "key-mismatch")!;
  const base = evidence();
  const written = [json, mismatch].map((p) =>
    record(INPUT, p.message.key, p.message.value as string, { [POISON_HEADER]: p.kind })
  );
  base.input.push(...written);
  const good = {
    ...base,
    poison: [json, mismatch],
    deadLetters: [
      ...base.deadLetters,
      letter(written[0], "ValidationError"),
      letter(written[1], "KeyMismatchError"),
    ],
  };
  assert.deepEqual(verify(good).filter((c) => c.status !== "pass"), []);
  // The runtime of today pays the mismatched record under its own key instead.
  const paidInstead = {
    ...base,
    poison: [json, mismatch],
    deadLetters: [...base.deadLetters, letter(written[0], "ValidationError")],
    payments: [...base.payments, payment("o-2")],
  };
  const checks = verify(paidInstead);
  assert.equal(status(checks, "poison: key-mismatch"), "fail");
  assert.equal(status(checks, "poison: invalid-json"), "pass");
  const wrongType = {
    ...good,
    deadLetters: [...base.deadLetters, letter(written[0], "PoisonRecordError")],
  };
  assert.equal(status(verify(wrongType), "poison: invalid-json"), "fail");
});

Deno.test("verify() wants a forged retry record's order to get one outcome", () => {
  const poison = poisonRecords({ prefix: "p", laterOrderIds: ["o-1", "o-2"], now: 0 });
  const forged = poison.find((p) => p.kind === "forged-due-at")!;
  const base = evidence();
  const written = record("orders.retry.1", forged.message.key, forged.message.value as string, {
    [POISON_HEADER]: forged.kind,
  });
  const stuck = { ...base, retry: [written], poison: [forged] };
  assert.equal(status(verify(stuck), "poison: forged-due-at"), "fail");
  const paid = { ...stuck, payments: [...base.payments, payment("p-forged-due-at")] };
  assert.equal(status(verify(paid), "poison: forged-due-at"), "pass");
  assert.equal(status(verify(paid), "one PaymentProcessed"), "pass");
});
