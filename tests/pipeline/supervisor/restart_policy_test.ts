import assert from "node:assert/strict";
import { ConfigError } from "../../../pipeline/errors.ts";
import {
  DEFAULT_RESTART_POLICY,
  RestartTracker,
  validateRestartPolicy,
} from "../../../pipeline/supervisor/restart_policy.ts";

Deno.test("RestartTracker doubles the delay per crash and caps it at maxDelayMs", () => {
  const tracker = new RestartTracker(DEFAULT_RESTART_POLICY);
  const delays = [0, 1, 2, 3, 4].map((i) => tracker.crashed(i * 10)?.delayMs);
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000]);
  const capped = new RestartTracker({ ...DEFAULT_RESTART_POLICY, maxRestarts: 10 });
  for (let i = 0; i < 6; i++) capped.crashed(i);
  assert.deepEqual(capped.crashed(7), { attempt: 7, delayMs: 10_000 });
});

Deno.test("RestartTracker gives up on the crash after maxRestarts within windowMs", () => {
  const tracker = new RestartTracker({ ...DEFAULT_RESTART_POLICY, maxRestarts: 2 });
  assert.deepEqual(tracker.crashed(0), { attempt: 1, delayMs: 500 });
  assert.deepEqual(tracker.crashed(1000), { attempt: 2, delayMs: 1000 });
  assert.equal(tracker.crashed(2000), null);
  assert.equal(tracker.recentCrashes, 3);
});

Deno.test("RestartTracker forgets crashes older than windowMs", () => {
  const tracker = new RestartTracker({ ...DEFAULT_RESTART_POLICY, maxRestarts: 2 });
  tracker.crashed(0);
  tracker.crashed(1000);
  // Both earlier crashes left the window: this one is a first restart again.
  assert.deepEqual(tracker.crashed(61_001), { attempt: 1, delayMs: 500 });
  assert.deepEqual(tracker.crashed(61_002), { attempt: 2, delayMs: 1000 });
  assert.equal(tracker.crashed(61_003), null);
});

Deno.test("validateRestartPolicy() names the field out of range", () => {
  validateRestartPolicy(DEFAULT_RESTART_POLICY);
  validateRestartPolicy({ ...DEFAULT_RESTART_POLICY, initialDelayMs: 0, maxRestarts: 0 });
  for (
    const [field, value] of [
      ["initialDelayMs", -1],
      ["multiplier", 0.5],
      ["maxDelayMs", Number.NaN],
      ["maxRestarts", 1.5],
      ["windowMs", 0],
      ["outageToleranceMs", -1],
    ] as const
  ) {
    assert.throws(
      () => validateRestartPolicy({ ...DEFAULT_RESTART_POLICY, [field]: value }),
      (error: unknown) =>
        error instanceof ConfigError && error.field === `restart.${field}` &&
        error.message.includes(`'${field}'`),
    );
  }
});

Deno.test("RestartTracker rides out retriable crashes for outageToleranceMs, then gives up", () => {
  const tracker = new RestartTracker({
    ...DEFAULT_RESTART_POLICY,
    maxRestarts: 2,
    outageToleranceMs: 30_000,
  });
  // A broker outage: far more crashes than maxRestarts, none counted towards it.
  const delays = [0, 500, 1500, 3500, 7500, 15_500, 25_500].map((at) =>
    tracker.crashed(at, true)?.delayMs
  );
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  assert.equal(tracker.recentCrashes, 0);
  // Past the tolerance without a start: given up.
  assert.equal(tracker.crashed(30_001, true), null);
});

Deno.test("RestartTracker starts a new outage after a start, and still counts other crashes", () => {
  const tracker = new RestartTracker({
    ...DEFAULT_RESTART_POLICY,
    maxRestarts: 2,
    outageToleranceMs: 30_000,
  });
  tracker.crashed(0, true);
  tracker.crashed(20_000, true);
  tracker.started();
  assert.deepEqual(tracker.crashed(40_000, true), { attempt: 1, delayMs: 500 });
  assert.deepEqual(tracker.crashed(41_000), { attempt: 1, delayMs: 500 });
  assert.deepEqual(tracker.crashed(42_000), { attempt: 2, delayMs: 1000 });
  assert.equal(tracker.crashed(43_000), null);
});
