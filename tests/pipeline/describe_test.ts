import assert from "node:assert/strict";
import { definePipeline } from "../../pipeline/definition.ts";
import {
  describePipeline,
  describePipelineMermaid,
  describePipelineText,
} from "../../pipeline/describe.ts";
import { retryPolicy } from "../../pipeline/retry.ts";
import { doubleStage, Num, numbersSpec } from "../_fixtures.ts";

function tieredNumbers() {
  return definePipeline(numbersSpec({
    stage: doubleStage(undefined, { key: ({ n }) => String(n) }),
    concurrency: 2,
    retry: retryPolicy({ maxDelayMs: 1000, tiers: [{ delayMs: 1000 }, { delayMs: 5000 }] }),
  }));
}

Deno.test("describePipeline() gives plain data with roles, wiring and JSON schemas", () => {
  const description = describePipeline(tieredNumbers());
  // Plain data: survives a JSON round trip unchanged.
  assert.deepEqual(JSON.parse(JSON.stringify(description)), description);
  assert.deepEqual(
    description.topics.map((t) => [t.name, t.partitions, t.role]),
    [
      ["in", 2, "data"],
      ["out", 2, "data"],
      ["in.dlq", 1, "dead-letter"],
      ["in.retry.1", 2, "retry"],
      ["in.retry.2", 2, "retry"],
      ["doublers-double-changelog", 2, "changelog"],
    ],
  );
  assert.deepEqual(description.topics[0].schema.properties, { n: { type: "number" } });
  const dlqSchema = description.topics[2].schema as { required: string[] };
  for (const field of ["original_topic", "original_offset", "error_reason", "failed_at"]) {
    assert.ok(dlqSchema.required.includes(field), field);
  }
  assert.deepEqual(description.sources, [{ name: "feed", output: "in" }]);
  assert.deepEqual(description.stages, [{
    name: "double",
    input: "in",
    output: "out",
    group: "doublers",
    deadLetter: "in.dlq",
    concurrency: 2,
    retry: {
      attempts: 3,
      initialDelayMs: 100,
      multiplier: 2,
      maxDelayMs: 1000,
      jitter: true,
      tiers: [{ delayMs: 1000 }, { delayMs: 5000 }],
    },
    retryTopics: ["in.retry.1", "in.retry.2"],
    idempotent: true,
    changelog: "doublers-double-changelog",
  }]);
});

Deno.test("describePipelineText() prints one line per node", () => {
  assert.equal(
    describePipelineText(tieredNumbers()),
    `Pipeline "numbers"
  Topics:
    in (2 partitions, data)
    out (2 partitions, data)
    in.dlq (1 partition, dead-letter)
    in.retry.1 (2 partitions, retry)
    in.retry.2 (2 partitions, retry)
    doublers-double-changelog (2 partitions, changelog)
  Sources:
    feed -> in
  Stages:
    double: in -> out
      group doublers, 2 worker(s)
      retry: 3 attempts, backoff 100 ms x2 (cap 1000 ms, full jitter), then tiers 1000 ms, 5000 ms
      retry topics: in.retry.1, in.retry.2
      dead letters: in.dlq
      idempotent by record key, state in doublers-double-changelog
`,
  );
});

Deno.test("describePipelineText() prints the reference policy without tiers", () => {
  const text = describePipelineText(definePipeline(numbersSpec()));
  assert.match(text, /\n {6}retry: 3 attempts, backoff 1000 ms x1 \(cap 1000 ms\)\n/);
  assert.doesNotMatch(text, /retry topics|idempotent/);
});

Deno.test("describePipelineMermaid() draws sources, topics, stages, retry and DLQ edges", () => {
  assert.equal(
    describePipelineMermaid(tieredNumbers()),
    `flowchart LR
  topic_in[("in<br/>2 partitions")]
  topic_out[("out<br/>2 partitions")]
  topic_in_2edlq[("in.dlq<br/>1 partition")]
  topic_in_2eretry_2e1[("in.retry.1<br/>2 partitions")]
  topic_in_2eretry_2e2[("in.retry.2<br/>2 partitions")]
  topic_doublers_2ddouble_2dchangelog[("doublers-double-changelog<br/>2 partitions")]
  source_feed[/"feed"/] --> topic_in
  stage_double["double<br/>group doublers x2"]
  topic_in --> stage_double
  stage_double --> topic_out
  stage_double -. "retry 1000 ms" .-> topic_in_2eretry_2e1
  topic_in_2eretry_2e1 -.-> stage_double
  stage_double -. "retry 5000 ms" .-> topic_in_2eretry_2e2
  topic_in_2eretry_2e2 -.-> stage_double
  stage_double -. "dead letter" .-> topic_in_2edlq
  stage_double -. "state" .-> topic_doublers_2ddouble_2dchangelog
`,
  );
});

Deno.test("describePipelineMermaid() keeps a stage, a source and topics of similar names apart", () => {
  const spec = numbersSpec();
  const pipeline = definePipeline({
    ...spec,
    topics: [
      { name: "in", partitions: 1, schema: Num },
      { name: "out", partitions: 1, schema: Num },
      { name: "in.dlq", partitions: 1, deadLetter: true },
      { name: "in-dlq", partitions: 1, deadLetter: true },
      { name: "in_dlq", partitions: 1, deadLetter: true },
    ],
    sources: [{ name: "in", output: "in", schema: Num }],
  });
  const diagram = describePipelineMermaid(pipeline);
  const ids = [...diagram.matchAll(/^ {2}(\w+)(?:\[|\s)/gm)].map((m) => m[1]);
  const declared = new Set(
    [...diagram.matchAll(/^ {2}(\w+)\[/gm)].map((m) => m[1]),
  );
  // in, out, in.dlq, in-dlq, in_dlq, source "in", stage "double": seven distinct nodes.
  assert.equal(declared.size, 7, diagram);
  assert.ok(ids.length > 0);
});
