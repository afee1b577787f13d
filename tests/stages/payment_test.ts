import assert from "node:assert/strict";
import { RejectedError, RetryableError } from "../../pipeline/errors.ts";
import { FakeClock } from "../../pipeline/testing/fake_clock.ts";
import type { StageContext } from "../../pipeline/stage.ts";
import { OrderPlacedV1, PaymentProcessedV1 } from "../../stages/events.ts";
import { createOrderGenerator } from "../../stages/generate_order.ts";
import {
  createPaymentGateway,
  GatewayUnavailableError,
  PaymentDeclinedError,
} from "../../stages/payment_gateway.ts";
import { createProcessPaymentStage } from "../../stages/process_payment.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

Deno.test("createOrderGenerator() makes the same valid orders for the same seed", () => {
  const make = (seed: number) => {
    const next = createOrderGenerator({ seed, now: () => 0 });
    return Array.from({ length: 50 }, next);
  };
  const a = make(3);
  assert.deepEqual(a, make(3));
  assert.notDeepEqual(a, make(4));
  for (const order of a) {
    OrderPlacedV1.parse(order);
    assert.match(order.order_id, UUID);
    assert.ok(order.amount >= 5 && order.amount < 500);
    assert.equal(order.created_at, "1970-01-01T00:00:00.000Z");
  }
  assert.equal(new Set(a.map((o) => o.order_id)).size, 50);
});

function charge(gateway: ReturnType<typeof createPaymentGateway>, key: string, attempt = 1) {
  return gateway.charge({ idempotencyKey: key, amount: 10, currency: "USD", attempt });
}

async function outcome(
  gateway: ReturnType<typeof createPaymentGateway>,
  key: string,
  attempt: number,
) {
  try {
    await charge(gateway, key, attempt);
    return "ok";
  } catch (error) {
    assert.ok(error instanceof GatewayUnavailableError);
    return "503";
  }
}

Deno.test("payment gateway failures depend only on seed, order and attempt", async () => {
  const draws = async (seed: number, keys: string[]) => {
    const gateway = createPaymentGateway({ failureRate: 0.5, seed });
    const results: string[] = [];
    for (const key of keys) results.push(await outcome(gateway, key, 1));
    return results;
  };
  const keys = Array.from({ length: 200 }, (_, i) => `order-${i}`);
  const forward = await draws(1, keys);
  const backward = (await draws(1, [...keys].reverse())).reverse();
  assert.deepEqual(forward, backward, "the call order does not change the draw");
  assert.notDeepEqual(forward, await draws(2, keys));
  const failures = forward.filter((r) => r === "503").length;
  assert.ok(failures > 70 && failures < 130, `failures ${failures} of 200 at rate 0.5`);
  // A different attempt of one order draws again.
  const gateway = createPaymentGateway({ failureRate: 0.5, seed: 1 });
  const perAttempt = [];
  for (let attempt = 1; attempt <= 20; attempt++) {
    perAttempt.push(await outcome(gateway, "order-x", attempt));
    if (perAttempt.at(-1) === "ok") break;
  }
  assert.equal(perAttempt.at(-1), "ok");
});

Deno.test("payment gateway failure rate 0 never fails and 1 always fails with a retryable 503", async () => {
  const never = createPaymentGateway({ failureRate: 0 });
  for (let i = 0; i < 50; i++) await charge(never, `o-${i}`);
  assert.equal(never.charges, 50);
  const always = createPaymentGateway({ failureRate: 1 });
  await assert.rejects(charge(always, "o-1", 3), (error: unknown) => {
    assert.ok(error instanceof RetryableError && error.retriable);
    assert.equal((error as Error).message, `Payment gateway answered 503 for "o-1" on attempt 3`);
    return true;
  });
  assert.equal(always.charges, 0);
});

Deno.test("payment gateway charges a key once: a second charge is a replay", async () => {
  const gateway = createPaymentGateway({ failureRate: 0 });
  const first = await charge(gateway, "order-1");
  const second = await charge(gateway, "order-1", 2);
  assert.equal(first.replayed, false);
  assert.equal(second.replayed, true);
  assert.equal(second.paymentId, first.paymentId);
  assert.equal(gateway.charges, 1);
  assert.equal(gateway.replays, 1);
});

Deno.test("payment gateway keeps a key keyTtlMs (24 h by default): later it charges again and memory holds no expired key", async () => {
  const clock = new FakeClock();
  const gateway = createPaymentGateway({ failureRate: 0, clock });
  const first = await charge(gateway, "order-1");
  clock.advance(24 * 3600_000 - 1);
  assert.equal((await charge(gateway, "order-1", 2)).paymentId, first.paymentId, "within 24 h");
  clock.advance(1);
  const again = await charge(gateway, "order-1", 3);
  assert.equal(again.replayed, false, "the key expired");
  assert.notEqual(again.paymentId, first.paymentId);
  const short = createPaymentGateway({ failureRate: 0, clock, keyTtlMs: 10 });
  await charge(short, "order-2");
  clock.advance(10);
  assert.equal((await charge(short, "order-2", 2)).replayed, false);
  assert.equal(short.charges, 2);
  for (const keyTtlMs of [0, -1, 1.5]) {
    assert.throws(
      () => createPaymentGateway({ keyTtlMs }),
      /'keyTtlMs' must be a positive integer/,
    );
  }
});

Deno.test("payment gateway declines above the limit with a fatal RejectedError", async () => {
  const gateway = createPaymentGateway({ failureRate: 0, declineAbove: 5 });
  await assert.rejects(charge(gateway, "order-1"), (error: unknown) => {
    assert.ok(error instanceof PaymentDeclinedError);
    assert.ok(error instanceof RejectedError);
    assert.equal(error.retriable, false);
    assert.match(error.message, /amount 10 USD is above the limit 5/);
    return true;
  });
  assert.equal(gateway.charges, 0);
});

Deno.test("payment gateway refuses a failure rate outside [0, 1]", () => {
  for (const failureRate of [-0.1, 1.5, Number.NaN]) {
    assert.throws(() => createPaymentGateway({ failureRate }), RangeError);
  }
});

Deno.test("payment gateway spends its latency on the injected clock", async () => {
  const clock = new FakeClock({ autoAdvance: true });
  const gateway = createPaymentGateway({ failureRate: 0, latencyMs: 25, clock });
  await charge(gateway, "order-1");
  assert.deepEqual(clock.sleeps, [25]);
});

function context(attempt: number, now: number): StageContext & { attributes: object } {
  const attributes = {};
  const clock = new FakeClock({ start: now });
  return {
    record: {
      topic: "orders",
      partition: 0,
      offset: 0,
      key: null,
      value: null,
      headers: {},
      timestamp: 0,
    },
    attempt,
    signal: new AbortController().signal,
    clock,
    attributes,
    setAttributes: (more) => Object.assign(attributes, more),
  };
}

Deno.test("process-payment emits a PaymentProcessed matching its schema", async () => {
  const gateway = createPaymentGateway({ failureRate: 0 });
  const stage = createProcessPaymentStage(gateway);
  const [order] = Array.from({ length: 1 }, createOrderGenerator({ seed: 5, now: () => 0 }));
  const ctx = context(2, Date.UTC(2025, 5, 1));
  const payment = await stage.handle(order, ctx);
  assert.ok(payment && !Array.isArray(payment));
  PaymentProcessedV1.parse(payment);
  assert.deepEqual({ ...payment, payment_id: "(id)" }, {
    event_type: "PaymentProcessed",
    event_version: 1,
    order_id: order.order_id,
    payment_id: "(id)",
    user_id: order.user_id,
    amount: order.amount,
    currency: order.currency,
    status: "succeeded",
    attempts: 2,
    order_created_at: order.created_at,
    processed_at: "2025-06-01T00:00:00.000Z",
  });
  assert.match((payment as { payment_id: string }).payment_id, /^pay_/);
  assert.deepEqual(ctx.attributes, {
    "order.id": order.order_id,
    "user.id": order.user_id,
    amount: order.amount,
  });
  assert.equal(stage.key!(order), order.order_id);
  assert.equal(stage.outputKey!(payment as never), order.order_id);
  assert.equal(stage.requireKey, true);
  assert.equal(stage.maxValueBytes, 64 * 1024);
});
