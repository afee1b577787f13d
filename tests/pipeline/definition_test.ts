import assert from "node:assert/strict";
import { z } from "zod";
import { changelogSegmentMs, definePipeline } from "../../pipeline/definition.ts";
import type { PipelineSpec } from "../../pipeline/definition.ts";
import { DefinitionError } from "../../pipeline/errors.ts";
import { REFERENCE_RETRY, retryPolicy } from "../../pipeline/retry.ts";
import { defineStage } from "../../pipeline/stage.ts";
import { doubleStage, Num, numbersSpec, Text } from "../_fixtures.ts";

interface Refusal {
  readonly message: string;
  readonly stage: string | undefined;
  readonly field: string;
}

function assertRefused(spec: PipelineSpec, expected: Refusal): void {
  assert.throws(
    () => definePipeline(spec),
    (error: unknown) => {
      assert.ok(error instanceof DefinitionError, `expected a DefinitionError, got ${error}`);
      assert.equal(error.message, expected.message);
      assert.equal(error.stage, expected.stage);
      assert.equal(error.field, expected.field);
      assert.equal(error.retriable, false);
      return true;
    },
  );
}

function withTopics(spec: PipelineSpec, topics: PipelineSpec["topics"]): PipelineSpec {
  return { ...spec, topics };
}

Deno.test("definePipeline() accepts the numbers pipeline and applies defaults", () => {
  const pipeline = definePipeline(numbersSpec());
  const node = pipeline.stage("double");
  assert.equal(node.concurrency, 1);
  assert.equal(node.retry, REFERENCE_RETRY);
  assert.deepEqual(node.retryTopics, []);
  assert.deepEqual(pipeline.topics.map((t) => t.name), ["in", "out", "in.dlq"]);
  assert.equal(pipeline.source("feed").output, "in");
  assert.equal(pipeline.topic("out").partitions, 2);
  assert.ok(Object.isFrozen(pipeline));
});

Deno.test("definePipeline() accepts a structurally equal schema object for a topic", () => {
  const pipeline = definePipeline(numbersSpec({
    stage: defineStage({
      name: "double",
      input: z.object({ n: z.number() }),
      output: z.object({ n: z.number() }),
      handle: ({ n }) => Promise.resolve({ n }),
    }),
  }));
  assert.equal(pipeline.stages.length, 1);
});

Deno.test("definePipeline() derives retry tier topics orders.retry.1 and orders.retry.2", () => {
  const spec = numbersSpec({
    retry: retryPolicy({ tiers: [{ delayMs: 1000 }, { delayMs: 5000 }] }),
  });
  const pipeline = definePipeline({
    ...spec,
    topics: spec.topics.map((t) => t.name === "in" ? { ...t, name: "orders" } : t),
    sources: [{ name: "feed", output: "orders", schema: Num }],
    stages: [{ ...spec.stages[0], input: "orders" }],
  });
  const node = pipeline.stage("double");
  assert.deepEqual(node.retryTopics, ["orders.retry.1", "orders.retry.2"]);
  assert.deepEqual(pipeline.topics.map((t) => t.name), [
    "orders",
    "out",
    "in.dlq",
    "orders.retry.1",
    "orders.retry.2",
  ]);
  const tier = pipeline.topic("orders.retry.1");
  assert.equal(tier.partitions, 2);
  assert.equal(tier.schema, Num);
  assert.ok(!tier.deadLetter);
});

Deno.test("definePipeline() refuses a stage reading an unknown topic, naming the stage and field", () => {
  assertRefused(numbersSpec({ input: "nowhere" }), {
    message: `Cannot run stage "double" as 'input' names unknown topic "nowhere"`,
    stage: "double",
    field: "input",
  });
});

Deno.test("definePipeline() refuses a stage writing an unknown topic, naming the stage and field", () => {
  assertRefused(numbersSpec({ output: "nowhere" }), {
    message: `Cannot run stage "double" as 'output' names unknown topic "nowhere"`,
    stage: "double",
    field: "output",
  });
});

Deno.test("definePipeline() refuses a stage with an output schema but no output topic", () => {
  assertRefused(numbersSpec({ output: undefined }), {
    message: `Cannot run stage "double" as it has an output schema but no 'output' topic`,
    stage: "double",
    field: "output",
  });
});

Deno.test("definePipeline() refuses a sink stage that names an output topic", () => {
  const sink = defineStage({
    name: "double",
    input: Num,
    output: null,
    handle: () => Promise.resolve(null),
  });
  assertRefused(numbersSpec({ stage: sink }), {
    message: `Cannot run stage "double" as it writes topic "out" but has no output schema`,
    stage: "double",
    field: "output",
  });
});

Deno.test("definePipeline() refuses a topic name used twice", () => {
  const spec = numbersSpec();
  assertRefused(withTopics(spec, [...spec.topics, { name: "out", partitions: 1, schema: Num }]), {
    message: `Cannot define pipeline as topic name "out" is used twice`,
    stage: undefined,
    field: `topics.out.name`,
  });
});

Deno.test("definePipeline() refuses a stage name used twice, naming the stage", () => {
  const spec = numbersSpec();
  assertRefused({ ...spec, stages: [spec.stages[0], { ...spec.stages[0], group: "others" }] }, {
    message: `Cannot define pipeline as stage or source name "double" is used twice`,
    stage: "double",
    field: "name",
  });
});

Deno.test("definePipeline() refuses a source named like a stage", () => {
  const spec = numbersSpec();
  assertRefused({ ...spec, sources: [{ name: "double", output: "in", schema: Num }] }, {
    message: `Cannot define pipeline as stage or source name "double" is used twice`,
    stage: "double",
    field: "name",
  });
});

Deno.test("definePipeline() refuses a consuming stage without a dead-letter topic", () => {
  assertRefused(numbersSpec({ deadLetter: "" }), {
    message: `Cannot run stage "double" as it consumes "in" but has no 'deadLetter' topic`,
    stage: "double",
    field: "deadLetter",
  });
});

Deno.test("definePipeline() refuses a dead-letter topic that is not declared", () => {
  assertRefused(numbersSpec({ deadLetter: "missing.dlq" }), {
    message: `Cannot run stage "double" as 'deadLetter' names unknown topic "missing.dlq"`,
    stage: "double",
    field: "deadLetter",
  });
});

Deno.test("definePipeline() refuses a dead-letter topic not declared deadLetter", () => {
  assertRefused(numbersSpec({ deadLetter: "out" }), {
    message:
      `Cannot run stage "double" as 'deadLetter' topic "out" is not declared with deadLetter: true`,
    stage: "double",
    field: "deadLetter",
  });
});

Deno.test("definePipeline() refuses a stage reading a dead-letter topic", () => {
  assertRefused(numbersSpec({ input: "in.dlq" }), {
    message: `Cannot run stage "double" as 'input' topic "in.dlq" is a dead-letter topic`,
    stage: "double",
    field: "input",
  });
});

Deno.test("definePipeline() refuses a stage whose input schema differs from its topic's", () => {
  const stage = defineStage({
    name: "double",
    input: Text,
    output: Num,
    handle: () => Promise.resolve({ n: 1 }),
  });
  assertRefused(numbersSpec({ stage }), {
    message:
      `Cannot run stage "double" as its input schema does not match the schema of topic "in"`,
    stage: "double",
    field: "input",
  });
});

Deno.test("definePipeline() refuses a stage whose output schema differs from its topic's", () => {
  const stage = defineStage({
    name: "double",
    input: Num,
    output: Text,
    handle: () => Promise.resolve({ text: "" }),
  });
  assertRefused(numbersSpec({ stage }), {
    message:
      `Cannot run stage "double" as its output schema does not match the schema of topic "out"`,
    stage: "double",
    field: "output",
  });
});

Deno.test("definePipeline() refuses a source whose schema differs from its topic's", () => {
  const spec = numbersSpec();
  assertRefused({ ...spec, sources: [{ name: "feed", output: "in", schema: Text }] }, {
    message: `Cannot define source "feed" as its schema does not match the schema of topic "in"`,
    stage: "feed",
    field: "schema",
  });
});

Deno.test("definePipeline() refuses a source writing an unknown topic", () => {
  const spec = numbersSpec();
  assertRefused({ ...spec, sources: [{ name: "feed", output: "elsewhere", schema: Num }] }, {
    message: `Cannot define source "feed" as 'output' names unknown topic "elsewhere"`,
    stage: "feed",
    field: "output",
  });
});

for (const partitions of [0, -1, 1.5, Number.NaN]) {
  Deno.test(`definePipeline() refuses a topic with ${partitions} partitions`, () => {
    const spec = numbersSpec();
    assertRefused(withTopics(spec, [{ ...spec.topics[0], partitions }, ...spec.topics.slice(1)]), {
      message:
        `Cannot define topic "in" as 'partitions' must be a positive integer: current value is ${partitions}`,
      stage: undefined,
      field: "topics.in.partitions",
    });
  });
}

Deno.test("definePipeline() refuses a data topic without a schema", () => {
  const spec = numbersSpec();
  assertRefused(withTopics(spec, [{ name: "in", partitions: 2 }, ...spec.topics.slice(1)]), {
    message: `Cannot define topic "in" as it has no 'schema' and is not a dead-letter topic`,
    stage: undefined,
    field: "topics.in.schema",
  });
});

for (const concurrency of [0, -2, 1.5]) {
  Deno.test(`definePipeline() refuses concurrency ${concurrency}`, () => {
    assertRefused(numbersSpec({ concurrency }), {
      message:
        `Cannot run stage "double" as 'concurrency' must be a positive integer: current value is ${concurrency}`,
      stage: "double",
      field: "concurrency",
    });
  });
}

Deno.test("definePipeline() refuses concurrency above the input's partitions", () => {
  assertRefused(numbersSpec({ concurrency: 3 }), {
    message:
      `Cannot run stage "double" as 'concurrency' 3 exceeds the 2 partitions of "in": extra workers would idle`,
    stage: "double",
    field: "concurrency",
  });
});

Deno.test("definePipeline() refuses a stage reading a topic nobody writes", () => {
  assertRefused({ ...numbersSpec(), sources: [] }, {
    message:
      `Cannot run stage "double" as no source or stage writes its 'input' topic "in": declare a source for it`,
    stage: "double",
    field: "input",
  });
});

Deno.test("definePipeline() accepts a topic written by another stage instead of a source", () => {
  const spec = numbersSpec();
  const again = defineStage({
    name: "double-again",
    input: Num,
    output: Num,
    handle: ({ n }) => Promise.resolve({ n: 2 * n }),
  });
  const pipeline = definePipeline({
    ...spec,
    topics: [...spec.topics, { name: "out2", partitions: 1, schema: Num }],
    stages: [
      { stage: again, input: "out", output: "out2", group: "again", deadLetter: "in.dlq" },
      ...spec.stages,
    ],
  });
  assert.deepEqual(pipeline.stages.map((s) => s.stage.name), ["double-again", "double"]);
});

Deno.test("definePipeline() refuses a pipeline name that is not lowercase words", () => {
  assertRefused({ ...numbersSpec(), name: "Numbers Pipeline" }, {
    message:
      `Cannot define pipeline "Numbers Pipeline" as 'name' must be lowercase words joined by dashes`,
    stage: undefined,
    field: "name",
  });
});

Deno.test("definePipeline() refuses a topic name with a space", () => {
  const spec = numbersSpec();
  assertRefused(
    withTopics(spec, [...spec.topics, { name: "bad topic", partitions: 1, schema: Num }]),
    {
      message: `Cannot define topic "bad topic" as its name must be 1 to 249 of [a-zA-Z0-9._-]`,
      stage: undefined,
      field: "topics.bad topic.name",
    },
  );
});

Deno.test("definePipeline() refuses a source name that is not lowercase words", () => {
  const spec = numbersSpec();
  assertRefused({ ...spec, sources: [{ name: "Feed_1", output: "in", schema: Num }] }, {
    message: `Cannot define source "Feed_1" as 'name' must be lowercase words joined by dashes`,
    stage: "Feed_1",
    field: "name",
  });
});

Deno.test("definePipeline() refuses a group name that is not lowercase words", () => {
  assertRefused(numbersSpec({ group: "Doublers!" }), {
    message: `Cannot run stage "double" as 'group' must be lowercase words joined by dashes`,
    stage: "double",
    field: "group",
  });
});

Deno.test("defineStage() refuses a stage name that is not lowercase words", () => {
  assert.throws(
    () =>
      defineStage({ name: "Double", input: Num, output: Num, handle: () => Promise.resolve(null) }),
    {
      name: "DefinitionError",
      message: `Cannot define stage "Double" as 'name' must be lowercase words joined by dashes`,
      stage: "Double",
      field: "name",
    },
  );
});

Deno.test("defineStage() refuses a non-positive maxValueBytes", () => {
  assert.throws(
    () => doubleStageWithMax(0),
    {
      message:
        `Cannot define stage "double" as 'maxValueBytes' must be a positive integer: current value is 0`,
      field: "maxValueBytes",
    },
  );
  assert.equal(doubleStageWithMax(undefined).maxValueBytes, 1024 * 1024);
});

function doubleStageWithMax(maxValueBytes: number | undefined) {
  return defineStage({
    name: "double",
    input: Num,
    output: Num,
    maxValueBytes,
    handle: () => Promise.resolve(null),
  });
}

Deno.test("definePipeline() refuses a stage not made by defineStage()", () => {
  const handmade = { ...doubleStage(), kind: "other" } as unknown as ReturnType<typeof doubleStage>;
  assertRefused(numbersSpec({ stage: handmade }), {
    message: `Cannot define pipeline as a stage was not made by defineStage()`,
    stage: "double",
    field: "stage",
  });
});

const badRetry: [string, Record<string, unknown>, string][] = [
  ["attempts", { attempts: 0 }, "an integer of at least 1: current value is 0"],
  ["attempts", { attempts: 2.5 }, "an integer of at least 1: current value is 2.5"],
  ["initialDelayMs", { initialDelayMs: -1 }, "a finite number of 0 or more: current value is -1"],
  ["multiplier", { multiplier: 0.5 }, "a finite number of 1 or more: current value is 0.5"],
  [
    "maxDelayMs",
    { maxDelayMs: 10 },
    "a finite number of at least 'initialDelayMs': current value is 10",
  ],
  [
    "tiers[1].delayMs",
    { tiers: [{ delayMs: 5 }, { delayMs: -5 }] },
    "a finite number of 0 or more: current value is -5",
  ],
];

for (const [field, change, rule] of badRetry) {
  Deno.test(`definePipeline() refuses a retry policy with a bad ${field}, naming the stage`, () => {
    assertRefused(numbersSpec({ retry: { ...REFERENCE_RETRY, ...change } }), {
      message: `Cannot use stage "double" as 'retry.${field}' must be ${rule}`,
      stage: "double",
      field: `retry.${field}`,
    });
  });
}

Deno.test("definePipeline() refuses a declared topic that collides with a derived retry topic", () => {
  const spec = numbersSpec({ retry: retryPolicy({ tiers: [{ delayMs: 10 }] }) });
  assertRefused(
    withTopics(spec, [...spec.topics, { name: "in.retry.1", partitions: 2, schema: Num }]),
    {
      message: `Cannot run stage "double" as its retry topic "in.retry.1" is already declared`,
      stage: "double",
      field: "retry.tiers",
    },
  );
});

Deno.test("Pipeline lookups refuse unknown names with a DefinitionError", () => {
  const pipeline = definePipeline(numbersSpec());
  assert.throws(() => pipeline.stage("triple"), {
    name: "DefinitionError",
    message: `Cannot find stage "triple" in pipeline "numbers"`,
  });
  assert.throws(() => pipeline.topic("x"), {
    message: `Cannot find topic "x" in pipeline "numbers"`,
  });
  assert.throws(() => pipeline.source("x"), {
    message: `Cannot find source "x" in pipeline "numbers"`,
  });
});

Deno.test("definePipeline() bounds dead letters by the DLQ topic's declared max.message.bytes", () => {
  const withDlqConfig = (config?: Record<string, string>): PipelineSpec => {
    const spec = numbersSpec();
    return {
      ...spec,
      topics: spec.topics.map((t) => t.name === "in.dlq" ? { ...t, config } : t),
    };
  };
  assert.equal(definePipeline(withDlqConfig()).stage("double").deadLetterMaxBytes, 1024 * 1024);
  assert.equal(
    definePipeline(withDlqConfig({ "max.message.bytes": "65536" })).stage("double")
      .deadLetterMaxBytes,
    65536,
  );
  assert.throws(
    () => definePipeline(withDlqConfig({ "max.message.bytes": "lots" })),
    (error: unknown) =>
      error instanceof DefinitionError && error.field === "deadLetter" &&
      /'max.message.bytes' of dead-letter topic "in.dlq" must be an integer/.test(error.message),
  );
});

Deno.test("definePipeline() rolls a changelog's segments and drops its tombstones about once a state retention, within ten minutes and a day", () => {
  const segmentMs = (stateRetentionMs?: number) => {
    const pipeline = definePipeline(numbersSpec({
      stage: doubleStage(undefined, { key: ({ n }) => String(n) }),
      ...(stateRetentionMs === undefined ? {} : { stateRetentionMs }),
    }));
    const changelog = pipeline.topics.find((t) => t.name === pipeline.stages[0].changelog);
    assert.equal(changelog?.config?.["cleanup.policy"], "compact");
    assert.equal(
      changelog?.config?.["delete.retention.ms"],
      changelog?.config?.["segment.ms"],
      "tombstones dropped after as long, not the broker's default day",
    );
    return changelog?.config?.["segment.ms"];
  };
  assert.equal(segmentMs(), String(24 * 3600_000), "the default 7 days: daily");
  assert.equal(segmentMs(3600_000), String(3600_000));
  assert.equal(segmentMs(30_000), String(10 * 60_000));
  assert.equal(changelogSegmentMs(2 * 3600_000), 2 * 3600_000);
});
