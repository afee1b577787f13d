import assert from "node:assert/strict";
import { definePipeline } from "../../pipeline/definition.ts";
import type { Pipeline } from "../../pipeline/definition.ts";
import { RejectedError, RetryableError } from "../../pipeline/errors.ts";
import { HEADER } from "../../pipeline/headers.ts";
import { seededRandom } from "../../pipeline/random.ts";
import { REFERENCE_RETRY, retryPolicy } from "../../pipeline/retry.ts";
import type { RetryPolicy } from "../../pipeline/retry.ts";
import { startPipeline, waitUntilDrained } from "../../pipeline/run.ts";
import type { RunningPipeline } from "../../pipeline/run.ts";
import type { StageOutcome } from "../../pipeline/runner.ts";
import { FakeClock } from "../../pipeline/testing/fake_clock.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type {
  EmbeddedTransport,
  HandlerErrorEvent,
} from "../../pipeline/transport/embedded/mod.ts";
import type {
  ConsumedRecord,
  DeliveryReport,
  OutgoingRecord,
  Producer,
  RecordAck,
  RecordContext,
  RecordHeaders,
} from "../../pipeline/transport/transport.ts";
import { isRecordAck } from "../../pipeline/transport/transport.ts";
import { partitionForKey } from "../../pipeline/transport/murmur2.ts";
import { createStageState } from "../../pipeline/state_store.ts";
import { createRecordHandler } from "../../pipeline/runner.ts";
import { NOOP_PIPELINE_METRICS, noopInstrumentation } from "../../pipeline/instrumentation.ts";
import type { Instrumentation } from "../../pipeline/instrumentation.ts";
import { doubleStage, envelopes, json, keyText, numbersSpec, waitUntil } from "../_fixtures.ts";
import type { NumHandler, NumValue } from "../_fixtures.ts";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const START = 1_700_000_000_000;

interface Harness {
  readonly transport: EmbeddedTransport;
  readonly clock: FakeClock;
  readonly pipeline: Pipeline;
  readonly running: RunningPipeline;
  readonly outcomes: StageOutcome[];
  readonly handlerErrors: HandlerErrorEvent[];
  /** Attempt numbers the handler saw, in call order. */
  readonly calls: { n: number; attempt: number; at: number; topic: string }[];
  publish(value: NumValue | string, key?: string | null, headers?: RecordHeaders): Promise<void>;
  drain(): Promise<void>;
}

interface HarnessOptions {
  readonly handle?: NumHandler;
  readonly retry?: RetryPolicy;
  readonly idempotent?: boolean;
  /** A key for the stage (makes it keyed and idempotent), instead of `idempotent`'s. */
  readonly keyOf?: (input: NumValue) => string;
  readonly autoAdvance?: boolean;
}

async function withNumbers(
  options: HarnessOptions,
  body: (h: Harness) => Promise<void>,
): Promise<void> {
  const handlerErrors: HandlerErrorEvent[] = [];
  const transport = createEmbeddedTransport({
    retryBackoffMs: 1,
    onError: (event) => handlerErrors.push(event),
  });
  const clock = new FakeClock({ start: START, autoAdvance: options.autoAdvance ?? false });
  const calls: Harness["calls"] = [];
  const handle = options.handle ?? (({ n }) => Promise.resolve({ n: 2 * n }));
  const stage = doubleStage(
    (input, context) => {
      calls.push({
        n: input.n,
        attempt: context.attempt,
        at: context.clock.now(),
        topic: context.record.topic,
      });
      return handle(input, context);
    },
    options.keyOf ? { key: options.keyOf } : options.idempotent ? { key: ({ n }) => `n-${n}` } : {},
  );
  const pipeline = definePipeline(numbersSpec({ stage, retry: options.retry ?? REFERENCE_RETRY }));
  const outcomes: StageOutcome[] = [];
  const running = await startPipeline(pipeline, {
    transport,
    clock,
    random: seededRandom(1),
    onOutcome: (outcome) => outcomes.push(outcome),
  });
  try {
    await body({
      transport,
      clock,
      pipeline,
      running,
      outcomes,
      handlerErrors,
      calls,
      async publish(value, key = "k", headers = {}) {
        await running.producer.send([{
          topic: "in",
          key,
          value: typeof value === "string" ? value : JSON.stringify(value),
          headers,
        }]);
      },
      drain: () => waitUntilDrained(pipeline, transport, { timeoutMs: 5_000, pollMs: 2 }),
    });
  } finally {
    await running.stop();
    await transport.close();
  }
}

function kinds(outcomes: readonly StageOutcome[]): string[] {
  return outcomes.map((o) => o.kind);
}

Deno.test("runner: a fatal error goes straight to the DLQ with attempts 1 and no sleep", async () => {
  await withNumbers({
    handle: () => Promise.reject(new RejectedError("Cannot double 7: refused for good")),
  }, async (h) => {
    await h.publish({ n: 7 }, "seven", { traceparent: TRACEPARENT });
    await h.drain();
    assert.equal(h.calls.length, 1);
    assert.deepEqual(h.clock.sleeps, []);
    assert.deepEqual(kinds(h.outcomes), ["dead-lettered"]);
    assert.equal(h.outcomes[0].errorType, "RejectedError");
    assert.equal(h.outcomes[0].retries, 0);
    const [envelope] = envelopes(h.transport, "in.dlq");
    assert.equal(envelope.attempts, 1);
    assert.equal(envelope.error_type, "RejectedError");
    assert.equal(envelope.error_reason, "Cannot double 7: refused for good");
    assert.equal(envelope.stage, "double");
    assert.equal(envelope.original_topic, "in");
    assert.equal(envelope.original_offset, 0);
    assert.equal(envelope.key, "seven");
    assert.deepEqual(JSON.parse(envelope.value!), { n: 7 });
    assert.equal(envelope.failed_at, new Date(START).toISOString());
    assert.equal(envelope.headers.traceparent, TRACEPARENT);
    // The DLQ record itself is keyed like the original and says who failed and why.
    const [dlqRecord] = h.transport.records("in.dlq");
    assert.equal(keyText(dlqRecord), "seven");
    assert.equal(dlqRecord.headers[HEADER.STAGE], "double");
    assert.equal(dlqRecord.headers[HEADER.ERROR_TYPE], "RejectedError");
    assert.equal(h.transport.records("out").length, 0);
  });
});

Deno.test("runner: a retryable error gets exactly policy.attempts attempts 1 s apart, then the DLQ", async () => {
  await withNumbers({
    handle: () => Promise.reject(new RetryableError("Gateway answered 503")),
  }, async (h) => {
    await h.publish({ n: 1 });
    await waitUntil("first attempt waits", () => h.calls.length === 1 && h.clock.pending === 1);
    h.clock.advance(999);
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(h.calls.length, 1, "no second attempt before 1 s");
    h.clock.advance(1);
    await waitUntil("second attempt waits", () => h.calls.length === 2 && h.clock.pending === 1);
    h.clock.advance(1000);
    await h.drain();
    assert.deepEqual(h.calls.map((c) => c.attempt), [1, 2, 3]);
    assert.deepEqual(h.calls.map((c) => c.at - START), [0, 1000, 2000]);
    assert.deepEqual(h.clock.sleeps, [1000, 1000]);
    assert.deepEqual(kinds(h.outcomes), ["dead-lettered"]);
    assert.equal(h.outcomes[0].retries, 2);
    assert.equal(h.outcomes[0].attempts, 3);
    const [envelope] = envelopes(h.transport, "in.dlq");
    assert.equal(envelope.attempts, 3);
    assert.equal(envelope.error_type, "RetryableError");
    assert.equal(envelope.error_reason, "Gateway answered 503");
  });
});

Deno.test("runner: jittered backoff sleeps stay within the policy's exponential bounds", async () => {
  const retry = retryPolicy({ attempts: 5, initialDelayMs: 100, multiplier: 2, maxDelayMs: 300 });
  await withNumbers({
    retry,
    autoAdvance: true,
    handle: () => Promise.reject(new RetryableError("flaky")),
  }, async (h) => {
    await h.publish({ n: 1 });
    await h.drain();
    assert.equal(h.calls.length, 5);
    assert.equal(h.clock.sleeps.length, 4);
    [100, 200, 300, 300].forEach((bound, i) => {
      assert.ok(h.clock.sleeps[i] >= 0 && h.clock.sleeps[i] <= bound, `sleep ${i}`);
    });
  });
});

Deno.test("runner: an error of unknown class is retried like a retryable one", async () => {
  await withNumbers({
    autoAdvance: true,
    handle: () => Promise.reject(new TypeError("Cannot read properties of undefined")),
  }, async (h) => {
    await h.publish({ n: 1 });
    await h.drain();
    assert.equal(h.calls.length, 3);
    const [envelope] = envelopes(h.transport, "in.dlq");
    assert.equal(envelope.error_type, "TypeError");
    assert.equal(envelope.attempts, 3);
  });
});

Deno.test("runner: a record that recovers on the 2nd attempt produces its output", async () => {
  let failures = 1;
  await withNumbers({
    autoAdvance: true,
    handle: ({ n }) =>
      failures-- > 0 ? Promise.reject(new RetryableError("once")) : Promise.resolve({ n: n * 2 }),
  }, async (h) => {
    await h.publish({ n: 21 }, "answer", { traceparent: TRACEPARENT, "x-custom": "dropped" });
    await h.drain();
    assert.deepEqual(h.calls.map((c) => c.attempt), [1, 2]);
    assert.deepEqual(h.clock.sleeps, [1000]);
    assert.deepEqual(kinds(h.outcomes), ["output"]);
    assert.equal(h.outcomes[0].retries, 1);
    assert.equal(h.outcomes[0].outputs, 1);
    const out = h.transport.records("out");
    assert.equal(out.length, 1);
    assert.deepEqual(json(out[0]), { n: 42 });
    assert.equal(keyText(out[0]), "answer");
    // Only trace context travels to the output.
    assert.deepEqual(out[0].headers, { traceparent: TRACEPARENT });
    assert.equal(h.transport.records("in.dlq").length, 0);
  });
});

Deno.test("runner: a handler may emit several outputs or none", async () => {
  await withNumbers({
    handle: ({ n }) => Promise.resolve(n === 0 ? null : [{ n }, { n: n + 1 }]),
  }, async (h) => {
    await h.publish({ n: 0 });
    await h.publish({ n: 5 });
    await h.drain();
    assert.deepEqual(h.transport.records("out").map((r) => json(r).n).sort(), [5, 6]);
    assert.deepEqual(h.outcomes.map((o) => o.outputs).sort(), [0, 2]);
  });
});

Deno.test("runner: an output breaking the output schema is dead-lettered as a ValidationError", async () => {
  await withNumbers({
    handle: () => Promise.resolve({ n: "not a number" } as unknown as NumValue),
  }, async (h) => {
    await h.publish({ n: 1 });
    await h.drain();
    assert.equal(h.calls.length, 1, "a bad output is not retried");
    const [envelope] = envelopes(h.transport, "in.dlq");
    assert.equal(envelope.error_type, "ValidationError");
    assert.match(envelope.error_reason, /output field "n" is invalid/);
  });
});

Deno.test("runner: retry tiers forward with headers, wait until due, then dead-letter with the original position", async () => {
  const retry = retryPolicy({
    attempts: 1,
    jitter: false,
    tiers: [{ delayMs: 1000 }, { delayMs: 5000 }],
  });
  await withNumbers({
    retry,
    handle: () => Promise.reject(new RetryableError("Gateway answered 503")),
  }, async (h) => {
    await h.publish({ n: 3 }, "three", { traceparent: TRACEPARENT });
    await waitUntil(
      "tier 1 holds the record",
      () => h.transport.records("in.retry.1").length === 1,
    );
    const [tier1] = h.transport.records("in.retry.1");
    assert.equal(keyText(tier1), "three");
    assert.deepEqual(json(tier1), { n: 3 });
    assert.deepEqual(tier1.headers, {
      traceparent: TRACEPARENT,
      [HEADER.RETRY_TIER]: "1",
      [HEADER.RETRY_DUE_AT]: String(START + 1000),
      [HEADER.ATTEMPTS]: "1",
      [HEADER.ORIGINAL_TOPIC]: "in",
      [HEADER.ORIGINAL_PARTITION]: String(h.transport.records("in")[0].partition),
      [HEADER.ORIGINAL_OFFSET]: "0",
      [HEADER.ORIGINAL_TIMESTAMP]: String(h.transport.records("in")[0].timestamp),
      [HEADER.ERROR_TYPE]: "RetryableError",
      [HEADER.ERROR_REASON]: "Gateway answered 503",
      [HEADER.STAGE]: "double",
    });
    assert.deepEqual(kinds(h.outcomes), ["retry-scheduled"]);
    // The main topic's offset is committed: the partition is not blocked by the waiting record.
    await waitUntil("tier 1 waits for its due time", () => h.clock.pending === 1);
    assert.equal(h.calls.length, 1);
    h.clock.advance(999);
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(h.calls.length, 1, "not tried before it is due");
    h.clock.advance(1);
    await waitUntil(
      "tier 2 holds the record",
      () => h.transport.records("in.retry.2").length === 1,
    );
    assert.deepEqual(h.calls.map((c) => [c.attempt, c.at - START, c.topic]), [
      [1, 0, "in"],
      [2, 1000, "in.retry.1"],
    ]);
    const [tier2] = h.transport.records("in.retry.2");
    assert.equal(tier2.headers[HEADER.RETRY_TIER], "2");
    assert.equal(tier2.headers[HEADER.RETRY_DUE_AT], String(START + 1000 + 5000));
    assert.equal(tier2.headers[HEADER.ATTEMPTS], "2");
    assert.equal(tier2.headers[HEADER.ORIGINAL_TOPIC], "in", "still the main topic, not tier 1");
    assert.equal(tier2.headers[HEADER.ORIGINAL_OFFSET], "0");
    assert.equal(tier2.headers.traceparent, TRACEPARENT);
    // Tier 2 waits 5 s in heartbeat-sized sleeps.
    await waitUntil("tier 2 waits", () => h.clock.pending === 1);
    h.clock.advance(3000);
    await waitUntil("tier 2 waits again", () => h.clock.pending === 1);
    assert.equal(h.calls.length, 2);
    h.clock.advance(2000);
    await h.drain();
    assert.deepEqual(h.calls.map((c) => [c.attempt, c.topic]), [
      [1, "in"],
      [2, "in.retry.1"],
      [3, "in.retry.2"],
    ]);
    assert.deepEqual(kinds(h.outcomes), ["retry-scheduled", "retry-scheduled", "dead-lettered"]);
    const [envelope] = envelopes(h.transport, "in.dlq");
    assert.equal(envelope.original_topic, "in");
    assert.equal(envelope.original_offset, 0);
    assert.equal(envelope.original_partition, h.transport.records("in")[0].partition);
    assert.equal(envelope.attempts, 3);
    assert.equal(envelope.headers.traceparent, TRACEPARENT);
    assert.equal(h.transport.records("in.dlq")[0].headers.traceparent, TRACEPARENT);
  });
});

Deno.test("runner: a record recovering in a retry tier produces its output once", async () => {
  const retry = retryPolicy({ attempts: 2, jitter: false, tiers: [{ delayMs: 1000 }] });
  await withNumbers({
    retry,
    autoAdvance: true,
    handle: ({ n }, context) =>
      context.attempt < 3
        ? Promise.reject(new RetryableError("not yet"))
        : Promise.resolve({ n: n * 2 }),
  }, async (h) => {
    await h.publish({ n: 4 }, "four", { traceparent: TRACEPARENT });
    await h.drain();
    assert.deepEqual(h.calls.map((c) => [c.attempt, c.topic]), [
      [1, "in"],
      [2, "in"],
      [3, "in.retry.1"],
    ]);
    assert.deepEqual(kinds(h.outcomes), ["retry-scheduled", "output"]);
    assert.deepEqual(h.outcomes.map((o) => o.retries), [1, 1]);
    const out = h.transport.records("out");
    assert.deepEqual(out.map(json), [{ n: 8 }]);
    assert.deepEqual(out[0].headers, { traceparent: TRACEPARENT });
    assert.equal(h.transport.records("in.dlq").length, 0);
  });
});

Deno.test("runner: a fatal error in a retry tier is dead-lettered at once", async () => {
  const retry = retryPolicy({ attempts: 1, tiers: [{ delayMs: 10 }, { delayMs: 10 }] });
  await withNumbers({
    retry,
    autoAdvance: true,
    handle: (_, context) =>
      Promise.reject(
        context.attempt === 1 ? new RetryableError("busy") : new RejectedError("declined"),
      ),
  }, async (h) => {
    await h.publish({ n: 1 });
    await h.drain();
    assert.equal(h.calls.length, 2);
    assert.equal(h.transport.records("in.retry.2").length, 0);
    const [envelope] = envelopes(h.transport, "in.dlq");
    assert.equal(envelope.error_type, "RejectedError");
    assert.equal(envelope.original_topic, "in");
    assert.equal(envelope.attempts, 2);
  });
});

Deno.test("runner: a duplicate of a record that already has an outcome is skipped", async () => {
  await withNumbers({ idempotent: true }, async (h) => {
    await h.publish({ n: 1 }, "n-1");
    await h.drain();
    await h.publish({ n: 1 }, "n-1");
    await h.drain();
    assert.equal(h.calls.length, 1);
    assert.deepEqual(kinds(h.outcomes), ["output", "duplicate"]);
    assert.equal(h.outcomes[1].attempts, 0);
    assert.equal(h.transport.records("out").length, 1);
  });
});

Deno.test("runner: a duplicate of a dead-lettered record is skipped too", async () => {
  await withNumbers({
    idempotent: true,
    handle: () => Promise.reject(new RejectedError("no")),
  }, async (h) => {
    await h.publish({ n: 1 }, "n-1");
    await h.drain();
    await h.publish({ n: 1 }, "n-1");
    await h.drain();
    assert.deepEqual(kinds(h.outcomes), ["dead-lettered", "duplicate"]);
    assert.equal(h.transport.records("in.dlq").length, 1);
  });
});

Deno.test("runner: an output send failure loses nothing and the record is paid once", async () => {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  await withNumbers({
    idempotent: true,
    autoAdvance: true,
    handle: async ({ n }) => {
      await gate;
      return { n: n * 2 };
    },
  }, async (h) => {
    await h.publish({ n: 5 }, "n-5");
    await waitUntil("handler started", () => h.calls.length === 1);
    h.transport.failNextSends(1);
    open();
    await h.drain();
    assert.deepEqual(h.transport.records("out").map(json), [{ n: 10 }]);
    assert.equal(h.transport.records("in.dlq").length, 0);
    assert.deepEqual(kinds(h.outcomes).filter((k) => k !== "duplicate"), ["output"]);
  });
});

Deno.test({
  // Output sends are not handler attempts: a send that keeps failing must not use up the
  // attempts and dead-letter a record that was handled (a charged order reported as failed).
  name: "runner: an output that cannot be sent is redelivered, never dead-lettered",
  async fn() {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => open = resolve);
    await withNumbers({
      idempotent: true,
      autoAdvance: true,
      handle: async ({ n }) => {
        await gate;
        return { n: n * 2 };
      },
    }, async (h) => {
      await h.publish({ n: 5 }, "n-5");
      await waitUntil("handler started", () => h.calls.length === 1);
      // As many failing sends as the policy has attempts: the broker is briefly unavailable.
      h.transport.failNextSends(REFERENCE_RETRY.attempts);
      open();
      await h.drain();
      assert.deepEqual(h.transport.records("out").map(json), [{ n: 10 }]);
      assert.equal(h.transport.records("in.dlq").length, 0, "a handled record was dead-lettered");
      assert.ok(h.handlerErrors.length >= 1, "the failed send was reported and redelivered");
    });
  },
});

/**
 * A producer whose every send waits until the test settles it; state changelog writes are
 * acknowledged at once (the record's outcome still waits for its output).
 */
function gatedProducer() {
  const sends: {
    records: readonly OutgoingRecord[];
    resolve: () => void;
    reject: (error: unknown) => void;
  }[] = [];
  /** Changelog records sent, in order. */
  const changelog: OutgoingRecord[] = [];
  const producer: Producer = {
    send(records) {
      if (records.every((r) => r.topic.endsWith("-changelog"))) {
        changelog.push(...records);
        return Promise.resolve(
          records.map((r, i) => ({ topic: r.topic, partition: 0, offset: i })),
        );
      }
      return new Promise<DeliveryReport[]>((resolve, reject) => {
        sends.push({
          records,
          resolve: () =>
            resolve(records.map((r, i) => ({ topic: r.topic, partition: 0, offset: i }))),
          reject,
        });
      });
    },
    close: () => Promise.resolve(),
  };
  return { producer, sends, changelog };
}

function numberRecord(n: number, offset: number): ConsumedRecord {
  return {
    topic: "in",
    partition: 0,
    offset,
    key: new TextEncoder().encode(`k${n}`),
    value: new TextEncoder().encode(JSON.stringify({ n })),
    headers: {},
    timestamp: START,
  };
}

/** A record handler over a gated producer, calling the stage directly (no transport). */
async function directHandler(
  options: { idempotent?: boolean; instrumentation?: Instrumentation } = {},
) {
  const { producer, sends, changelog } = gatedProducer();
  const handled: number[] = [];
  const stage = doubleStage(
    ({ n }) => {
      handled.push(n);
      return Promise.resolve({ n: 2 * n });
    },
    options.idempotent ? { key: ({ n }) => `k${n}` } : {},
  );
  const pipeline = definePipeline(numbersSpec({ stage }));
  const node = pipeline.stage("double");
  const outcomes: StageOutcome[] = [];
  const clock = new FakeClock({ start: START, autoAdvance: true });
  const transport = createEmbeddedTransport();
  await transport.ensureTopics(pipeline.topics);
  const state = node.changelog === undefined
    ? undefined
    : createStageState(transport, { changelog: node.changelog, clock });
  await state?.listener.assigned([{ topic: "in", partition: 0 }], new AbortController().signal);
  const handler = createRecordHandler(node, {
    producer,
    group: "g",
    clock,
    random: seededRandom(1),
    state,
    onOutcome: (outcome) => outcomes.push(outcome),
    instrumentation: options.instrumentation,
  });
  const context: RecordContext = {
    heartbeat: () => Promise.resolve(),
    signal: new AbortController().signal,
  };
  return {
    sends,
    changelog,
    handled,
    outcomes,
    known: (key: string) => state?.get(0, key)?.outcome,
    handle: async (record: ConsumedRecord): Promise<RecordAck> => {
      const result = await handler(record, context);
      assert.ok(isRecordAck(result), "the runner hands records over with a RecordAck");
      return result;
    },
  };
}

Deno.test("runner: the handler resolves before its output is durable; the outcome is reported after", async () => {
  const h = await directHandler({ idempotent: true });
  const ack = await h.handle(numberRecord(1, 0));
  assert.equal(h.sends.length, 1, "the output send is queued");
  assert.deepEqual(
    h.sends[0].records.map((r) =>
      typeof r.value === "string" ? r.value : new TextDecoder().decode(r.value!)
    ),
    [JSON.stringify({ n: 2 })],
  );
  assert.deepEqual(h.outcomes, [], "no outcome while the output is not durable");
  assert.equal(h.known("k1"), undefined, "nothing remembered yet");
  h.sends[0].resolve();
  await ack.durable;
  assert.deepEqual(kinds(h.outcomes), ["output"]);
  assert.equal(h.known("k1"), "output");
});

Deno.test("runner: with tracing off no trace wrapper is called per record, and metrics still are", async () => {
  const traced: string[] = [];
  const counted: string[] = [];
  const refuse = (name: string) => () => {
    traced.push(name);
    throw new Error(`${name} called with tracing off`);
  };
  const instrumentation: Instrumentation = {
    ...noopInstrumentation,
    enabled: false,
    traceSend: refuse("traceSend"),
    traceProcess: refuse("traceProcess"),
    traceAttempt: refuse("traceAttempt"),
    metrics: {
      ...NOOP_PIPELINE_METRICS,
      consumed: (stage) => counted.push(`consumed ${stage}`),
      sent: (topic) => counted.push(`sent ${topic}`),
    },
  };
  const h = await directHandler({ idempotent: true, instrumentation });
  const ack = await h.handle(numberRecord(1, 0));
  for (const send of h.sends) send.resolve();
  await ack.durable;
  assert.deepEqual(traced, []);
  assert.deepEqual(kinds(h.outcomes), ["output"]);
  assert.deepEqual(counted, ["consumed double", "sent out"]);
});

Deno.test("runner: handlers running longer than the heartbeat interval have their records' contexts heartbeaten", async () => {
  // Each handler waits until its own record's context has heartbeaten (within a deadline):
  // both are served while they run at once.
  const beaten = new Map<number, () => void>();
  const stage = doubleStage(({ n }) => {
    const { promise, resolve } = Promise.withResolvers<void>();
    beaten.set(n, resolve);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no heartbeat for ${n} within 10 s`)), 10_000);
    });
    return Promise.race([promise, deadline]).then(() => ({ n: 2 * n })).finally(() =>
      clearTimeout(timer)
    );
  });
  const node = definePipeline(numbersSpec({ stage })).stage("double");
  const { producer, sends } = gatedProducer();
  const handler = createRecordHandler(node, {
    producer,
    group: "g",
    clock: new FakeClock({ start: START, autoAdvance: true }),
    random: seededRandom(1),
  });
  const beats: number[] = [];
  const contextOf = (n: number): RecordContext => ({
    signal: new AbortController().signal,
    heartbeat() {
      beats.push(n);
      beaten.get(n)?.();
      return Promise.resolve();
    },
  });
  const results = await Promise.all(
    [1, 2].map((n) => handler(numberRecord(n, n), contextOf(n))),
  );
  assert.deepEqual([...new Set(beats)].sort(), [1, 2]);
  for (const send of sends) send.resolve();
  for (const result of results) if (isRecordAck(result)) await result.durable;
});

Deno.test("runner: a record whose key has an outcome on its way waits for it, then is a duplicate", async () => {
  const h = await directHandler({ idempotent: true });
  const first = await h.handle(numberRecord(1, 0));
  let secondHandedOver = false;
  const second = h.handle(numberRecord(1, 1)).then((ack) => {
    secondHandedOver = true;
    return ack;
  });
  // Another key is not held up by it.
  const other = await h.handle(numberRecord(2, 2));
  assert.equal(secondHandedOver, false, "the same key waits for the first outcome");
  assert.deepEqual(h.handled, [1, 2]);
  h.sends[0].resolve();
  await first.durable;
  await (await second).durable;
  h.sends[1].resolve();
  await other.durable;
  assert.deepEqual(h.handled, [1, 2], "the second record of key 1 was not handled");
  assert.deepEqual(kinds(h.outcomes), ["output", "duplicate", "output"]);
  assert.equal(h.sends.length, 2);
});

Deno.test("runner: a rejected durable leaves the key unknown, so the next record of it is handled", async () => {
  const h = await directHandler({ idempotent: true });
  const first = await h.handle(numberRecord(1, 0));
  const second = h.handle(numberRecord(1, 1));
  const failure = new Error("Injected failure: broker gone");
  h.sends[0].reject(failure);
  await assert.rejects(first.durable, (error) => error === failure);
  const secondAck = await second;
  assert.equal(h.known("k1"), undefined, "a failed outcome is not remembered");
  assert.deepEqual(h.handled, [1, 1], "handled again after the first outcome failed");
  assert.deepEqual(h.outcomes, [], "no outcome for the failed delivery");
  h.sends[1].resolve();
  await secondAck.durable;
  assert.deepEqual(kinds(h.outcomes), ["output"]);
  assert.equal(h.known("k1"), "output");
});

Deno.test("runner: a key's state entry goes to the changelog only once its output is durable", async () => {
  // Outputs and the changelog are different partitions: a broker killed mid-request (or two
  // batches of the batching producer) can keep the entry and lose the output. A member that
  // restores the changelog then skips the redelivered record as a duplicate: no outcome.
  const h = await directHandler({ idempotent: true });
  const first = await h.handle(numberRecord(1, 0));
  assert.equal(h.sends.length, 1, "the output send is queued");
  assert.deepEqual(h.changelog, [], "no state entry while the output is not durable");
  h.sends[0].reject(new Error("Injected failure: broker gone"));
  await assert.rejects(first.durable);
  assert.deepEqual(h.changelog, [], "no state entry for an output that failed");
  const again = await h.handle(numberRecord(1, 0));
  h.sends[1].resolve();
  await again.durable;
  assert.equal(h.changelog.length, 1, "the entry is written once the output is durable");
  assert.equal(h.known("k1"), "output");
  assert.deepEqual(h.handled, [1, 1]);
});

Deno.test("runner: a dead-lettered key is skipped when redelivered, handled again when replayed from the DLQ", async () => {
  let declined = true;
  await withNumbers({
    idempotent: true,
    handle: ({ n }) =>
      declined ? Promise.reject(new RejectedError("declined")) : Promise.resolve({ n: 2 * n }),
  }, async (h) => {
    await h.publish({ n: 7 }, "n-7");
    await h.drain();
    assert.deepEqual(h.outcomes.map((o) => o.kind), ["dead-lettered"]);

    declined = false;
    // A plain redelivery (a crash before the commit) must not turn a dead letter into a payment.
    await h.publish({ n: 7 }, "n-7");
    await h.drain();
    assert.deepEqual(h.outcomes.map((o) => o.kind), ["dead-lettered", "duplicate"]);

    // A replay from the DLQ is a deliberate second chance.
    await h.publish({ n: 7 }, "n-7", { [HEADER.REPLAYED_FROM]: "in.dlq/0/0" });
    await h.drain();
    assert.deepEqual(h.outcomes.map((o) => o.kind), ["dead-lettered", "duplicate", "output"]);
    assert.equal(h.transport.records("out").length, 1);

    // Once paid, even a replay is a duplicate.
    await h.publish({ n: 7 }, "n-7", { [HEADER.REPLAYED_FROM]: "in.dlq/0/0" });
    await h.drain();
    assert.equal(h.outcomes.at(-1)?.kind, "duplicate");
    assert.equal(h.transport.records("out").length, 1);
  });
});

Deno.test("runner: a retry-tier copy goes to its record's partition number, whatever its key hashes to", async () => {
  const failures = new Map<number, number>();
  await withNumbers({
    autoAdvance: true,
    retry: retryPolicy({ attempts: 1, tiers: [{ delayMs: 1000 }] }),
    handle: ({ n }) => {
      const seen = failures.get(n) ?? 0;
      failures.set(n, seen + 1);
      return seen === 0
        ? Promise.reject(new RetryableError("Injected failure: first try"))
        : Promise.resolve({ n: 2 * n });
    },
  }, async (h) => {
    const key = "k";
    const hashed = partitionForKey(new TextEncoder().encode(key), 2);
    const other = 1 - hashed;
    await h.running.producer.send([{
      topic: "in",
      key,
      value: JSON.stringify({ n: 4 }),
      partition: other,
    }]);
    await h.drain();
    const [copy] = h.transport.records("in.retry.1");
    assert.equal(copy.partition, other);
    assert.deepEqual(h.transport.records("out").map(json), [{ n: 8 }]);
  });
});

Deno.test("runner: a forged far-future x-retry-due-at waits at most the tier's delay", async () => {
  await withNumbers({
    autoAdvance: true,
    retry: retryPolicy({ attempts: 1, tiers: [{ delayMs: 1000 }] }),
  }, async (h) => {
    await h.running.producer.send([{
      topic: "in.retry.1",
      key: "k",
      value: JSON.stringify({ n: 3 }),
      headers: {
        [HEADER.RETRY_TIER]: "1",
        [HEADER.RETRY_DUE_AT]: String(START + 365 * 24 * 3600 * 1000),
      },
    }]);
    await h.drain();
    assert.deepEqual(h.transport.records("out").map(json), [{ n: 6 }]);
    assert.ok(h.clock.now() - START <= 1000, `waited ${h.clock.now() - START} ms`);
  });
});

Deno.test("runner: a later record of a key parked in a retry tier follows it instead of overtaking it", async () => {
  let firstTry = true;
  await withNumbers({
    retry: retryPolicy({ attempts: 1, tiers: [{ delayMs: 1000 }, { delayMs: 1000 }] }),
    keyOf: ({ n }) => `k${Math.floor(n / 100)}`,
    handle: ({ n }) => {
      if (n === 101 && firstTry) {
        firstTry = false;
        return Promise.reject(new RetryableError("Injected failure: gateway 503"));
      }
      return Promise.resolve({ n: 2 * n });
    },
  }, async (h) => {
    await h.publish({ n: 101 }, "k1");
    await waitUntil("101 parked in tier 1", () => h.transport.records("in.retry.1").length === 1);
    await h.publish({ n: 102 }, "k1");
    // 101 waits out its tier delay on the fake clock; 102 follows it into the tier meanwhile.
    await waitUntil(
      "102 follows into tier 1",
      () => h.transport.records("in.retry.1").length === 2,
    );
    assert.equal(h.transport.records("in.retry.1")[1].headers[HEADER.PARKED_BEHIND], "0");
    h.clock.advance(1000);
    await h.drain();
    // The key's first record gets the key's outcome; the second, behind it, is a duplicate.
    assert.deepEqual(h.transport.records("out").map(json), [{ n: 202 }]);
    assert.deepEqual(
      h.calls.map((c) => `${c.n}@${c.topic}`),
      ["101@in", "101@in.retry.1"],
    );
    assert.deepEqual(
      kinds(h.outcomes),
      ["retry-scheduled", "retry-scheduled", "output", "duplicate"],
    );
  });
});

Deno.test("runner: a keyed record of a partition whose state is not restored here is refused, not handled as new", async () => {
  const h = await directHandler({ idempotent: true });
  const record = { ...numberRecord(1, 0), partition: 1 };
  await assert.rejects(h.handle(record), RetryableError);
  assert.deepEqual(h.handled, [], "not handled");
});
