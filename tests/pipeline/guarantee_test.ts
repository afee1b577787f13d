import assert from "node:assert/strict";
import {
  ConfigError,
  DEFAULT_PROCESSING_GUARANTEE,
  definePipeline,
  processingGuarantee,
  startPipeline,
  startStageMember,
} from "../../pipeline/mod.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import { numbersSpec } from "../_fixtures.ts";
import { retryPolicy } from "../../pipeline/retry.ts";

Deno.test("processingGuarantee() defaults to at_least_once and refuses what it cannot keep", () => {
  assert.equal(DEFAULT_PROCESSING_GUARANTEE, "at_least_once");
  assert.equal(processingGuarantee(), "at_least_once");
  assert.equal(processingGuarantee("at_least_once"), "at_least_once");
  assert.equal(processingGuarantee("exactly_once"), "exactly_once");
  const tiered = { stage: { name: "pay" }, retryTopics: ["orders.retry.1"] };
  assert.equal(processingGuarantee("exactly_once", { ...tiered, retryTopics: [] }), "exactly_once");
  assert.throws(
    () => processingGuarantee("exactly_once", tiered),
    (error: unknown) =>
      error instanceof ConfigError && error.field === "PROCESSING_GUARANTEE" &&
      error.stage === "pay" && /as it has retry tiers \(orders.retry.1\)/.test(error.message),
  );
  assert.throws(
    () => processingGuarantee("maybe"),
    (error: unknown) => error instanceof ConfigError && error.field === "PROCESSING_GUARANTEE",
  );
});

Deno.test("a member of a stage with retry tiers asked for exactly_once refuses to start, and creates no topic", async () => {
  const transport = createEmbeddedTransport();
  try {
    const pipeline = definePipeline(
      numbersSpec({ retry: retryPolicy({ tiers: [{ delayMs: 1000 }] }) }),
    );
    const refused = (error: unknown) =>
      error instanceof ConfigError && error.field === "PROCESSING_GUARANTEE";
    await assert.rejects(
      startPipeline(pipeline, { transport, guarantee: "exactly_once" }),
      refused,
    );
    await assert.rejects(transport.endOffsets("in"), "the input topic was not created");
    const producer = await transport.producer();
    await assert.rejects(
      startStageMember(pipeline.stages[0], { transport, producer, guarantee: "exactly_once" }),
      refused,
    );
    await producer.close();
  } finally {
    await transport.close();
  }
});
