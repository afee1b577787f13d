import assert from "node:assert/strict";
import {
  ConfigError,
  DEFAULT_PROCESSING_GUARANTEE,
  definePipeline,
  processingGuarantee,
  RetryableError,
  startPipeline,
} from "../../pipeline/mod.ts";
import { waitUntilDrained } from "../../pipeline/run.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import { doubleStage, json, numbersSpec } from "../_fixtures.ts";
import type { NumValue } from "../_fixtures.ts";
import { retryPolicy } from "../../pipeline/retry.ts";

Deno.test("processingGuarantee() defaults to at_least_once and refuses an unknown guarantee", () => {
  assert.equal(DEFAULT_PROCESSING_GUARANTEE, "at_least_once");
  assert.equal(processingGuarantee(), "at_least_once");
  assert.equal(processingGuarantee("at_least_once"), "at_least_once");
  assert.equal(processingGuarantee("exactly_once"), "exactly_once");
  assert.throws(
    () => processingGuarantee("maybe"),
    (error: unknown) => error instanceof ConfigError && error.field === "PROCESSING_GUARANTEE",
  );
});

Deno.test("a stage with retry tiers runs exactly_once and drains: its tiers are committed past their control records", async () => {
  const transport = createEmbeddedTransport({ retryBackoffMs: 5 });
  try {
    // Odd numbers fail until their third attempt: the first try, then one try per tier.
    const stage = doubleStage(({ n }, context) => {
      if (n % 2 === 1 && context.attempt < 3) {
        return Promise.reject(new RetryableError(`Injected failure: ${n} not yet`));
      }
      return Promise.resolve({ n: 2 * n });
    });
    const pipeline = definePipeline(numbersSpec({
      stage,
      retry: retryPolicy({ attempts: 1, tiers: [{ delayMs: 1 }, { delayMs: 2 }] }),
    }));
    const running = await startPipeline(pipeline, { transport, guarantee: "exactly_once" });
    try {
      await running.producer.send(
        Array.from({ length: 20 }, (_, n) => ({ topic: "in", key: `k${n}`, value: `{"n":${n}}` })),
      );
      await waitUntilDrained(pipeline, transport, { timeoutMs: 10_000, pollMs: 2 });
    } finally {
      await running.stop();
    }
    const out = transport.records("out").map((r) => json<NumValue>(r).n);
    assert.deepEqual(out.sort((a, b) => a - b), Array.from({ length: 20 }, (_, n) => 2 * n));
    assert.equal(
      transport.records("in.retry.2").length,
      10,
      "each odd number went through both tiers",
    );
  } finally {
    await transport.close();
  }
});
