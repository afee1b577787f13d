import assert from "node:assert/strict";
import { DefinitionError } from "../../pipeline/errors.ts";
import { seededRandom } from "../../pipeline/random.ts";
import {
  backoffDelay,
  REFERENCE_RETRY,
  retryPolicy,
  retryTopicName,
  TIERED_RETRY,
  validateRetryPolicy,
} from "../../pipeline/retry.ts";
import type { RetryPolicy } from "../../pipeline/retry.ts";

const never = () => {
  throw new Error("random() must not be called without jitter");
};

Deno.test("REFERENCE_RETRY makes 3 attempts 1 s apart without jitter, then the DLQ", () => {
  assert.equal(REFERENCE_RETRY.attempts, 3);
  assert.equal(REFERENCE_RETRY.jitter, false);
  assert.deepEqual(REFERENCE_RETRY.tiers, []);
  // Delays after attempts 1 and 2 (there is no delay after the last attempt).
  assert.deepEqual([1, 2].map((a) => backoffDelay(REFERENCE_RETRY, a, never)), [1000, 1000]);
  assert.ok(Object.isFrozen(REFERENCE_RETRY) && Object.isFrozen(REFERENCE_RETRY.tiers));
});

Deno.test("TIERED_RETRY adds 5 s and 30 s tiers after jittered in-place attempts", () => {
  assert.deepEqual(TIERED_RETRY.tiers, [{ delayMs: 5000 }, { delayMs: 30000 }]);
  assert.equal(TIERED_RETRY.jitter, true);
  validateRetryPolicy(TIERED_RETRY);
});

Deno.test("backoffDelay() grows exponentially and stops at the cap", () => {
  const policy = retryPolicy({
    initialDelayMs: 100,
    multiplier: 2,
    maxDelayMs: 5000,
    jitter: false,
  });
  const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => backoffDelay(policy, attempt, never));
  assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
});

Deno.test("backoffDelay() with multiplier 1 is a constant delay", () => {
  const policy = retryPolicy({ initialDelayMs: 250, multiplier: 1, jitter: false });
  assert.deepEqual([1, 2, 10].map((a) => backoffDelay(policy, a, never)), [250, 250, 250]);
});

Deno.test("backoffDelay() does not overflow on a huge attempt number", () => {
  const policy = retryPolicy({ jitter: false, maxDelayMs: 10_000 });
  assert.equal(backoffDelay(policy, 5000, never), 10_000);
});

Deno.test("backoffDelay() with full jitter draws whole ms in [0, computed delay]", () => {
  const policy = retryPolicy({
    initialDelayMs: 100,
    multiplier: 2,
    maxDelayMs: 1000,
    jitter: true,
  });
  const random = seededRandom(42);
  for (const [attempt, bound] of [[1, 100], [3, 400], [6, 1000]]) {
    const draws = Array.from({ length: 2000 }, () => backoffDelay(policy, attempt, random));
    assert.ok(
      draws.every((d) => Number.isInteger(d) && d >= 0 && d <= bound),
      `attempt ${attempt}`,
    );
    // Spread over the whole range, not clustered at the top (which would be no jitter).
    assert.ok(Math.min(...draws) <= bound * 0.02, `min for attempt ${attempt}`);
    assert.ok(Math.max(...draws) >= bound * 0.98, `max for attempt ${attempt}`);
    const mean = draws.reduce((sum, d) => sum + d, 0) / draws.length;
    assert.ok(Math.abs(mean - bound / 2) < bound * 0.05, `mean ${mean} for attempt ${attempt}`);
  }
});

Deno.test("backoffDelay() with jitter reaches both ends of the range", () => {
  const policy = retryPolicy({ initialDelayMs: 400, maxDelayMs: 400, jitter: true });
  assert.equal(backoffDelay(policy, 1, () => 0), 0);
  assert.equal(backoffDelay(policy, 1, () => 0.9999999), 400);
});

Deno.test("backoffDelay() with jitter stays within a fractional delay", () => {
  const policy = retryPolicy({ initialDelayMs: 1.5, maxDelayMs: 1.5, jitter: true });
  assert.ok(backoffDelay(policy, 1, () => 0.9999999) <= 1.5);
});

Deno.test("backoffDelay() is the same for the same seed", () => {
  const draw = (seed: number) => {
    const random = seededRandom(seed);
    return [1, 2, 3, 1, 2, 3].map((a) => backoffDelay(TIERED_RETRY, a, random));
  };
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
});

Deno.test("retryPolicy() applies documented defaults and freezes a copy of the tiers", () => {
  const tiers = [{ delayMs: 2000 }];
  const policy = retryPolicy({ tiers });
  assert.deepEqual(policy, {
    attempts: 3,
    initialDelayMs: 100,
    multiplier: 2,
    maxDelayMs: 10_000,
    jitter: true,
    tiers: [{ delayMs: 2000 }],
  });
  tiers[0].delayMs = 1;
  assert.equal(policy.tiers[0].delayMs, 2000);
  assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy.tiers));
});

const invalid: [Partial<RetryPolicy>, string, string][] = [
  [{ attempts: 0 }, "attempts", "an integer of at least 1: current value is 0"],
  [{ attempts: Number.NaN }, "attempts", "an integer of at least 1: current value is NaN"],
  [{ initialDelayMs: -5 }, "initialDelayMs", "a finite number of 0 or more: current value is -5"],
  [
    { initialDelayMs: Number.POSITIVE_INFINITY, maxDelayMs: Number.POSITIVE_INFINITY },
    "initialDelayMs",
    "a finite number of 0 or more: current value is Infinity",
  ],
  [{ multiplier: 0 }, "multiplier", "a finite number of 1 or more: current value is 0"],
  [
    { multiplier: Number.POSITIVE_INFINITY },
    "multiplier",
    "a finite number of 1 or more: current value is Infinity",
  ],
  [
    { initialDelayMs: 500, maxDelayMs: 100 },
    "maxDelayMs",
    "a finite number of at least 'initialDelayMs': current value is 100",
  ],
  [
    { tiers: [{ delayMs: Number.NaN }] },
    "tiers[0].delayMs",
    "a finite number of 0 or more: current value is NaN",
  ],
];

for (const [options, field, rule] of invalid) {
  Deno.test(`retryPolicy() refuses a bad '${field}': ${rule}`, () => {
    assert.throws(() => retryPolicy(options), (error: unknown) => {
      assert.ok(error instanceof DefinitionError);
      assert.equal(error.message, `Cannot use retry policy as 'retry.${field}' must be ${rule}`);
      assert.equal(error.field, `retry.${field}`);
      assert.equal(error.stage, undefined);
      return true;
    });
  });
}

Deno.test("validateRetryPolicy() names the stage when given one", () => {
  assert.throws(() => validateRetryPolicy({ ...REFERENCE_RETRY, attempts: 0 }, "pay"), {
    message: `Cannot use stage "pay" as 'retry.attempts' must be an integer of at least 1: ` +
      `current value is 0`,
    stage: "pay",
    field: "retry.attempts",
  });
});

Deno.test("retryTopicName() appends .retry.<tier>", () => {
  assert.equal(retryTopicName("orders", 1), "orders.retry.1");
  assert.equal(retryTopicName("orders", 2), "orders.retry.2");
});
