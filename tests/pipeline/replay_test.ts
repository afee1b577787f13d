import assert from "node:assert/strict";
import { buildEnvelope, MAX_ENVELOPE_VALUE_BYTES } from "../../pipeline/dead_letter.ts";
import { ConfigError, RetryableError, ValidationError } from "../../pipeline/errors.ts";
import { HEADER } from "../../pipeline/headers.ts";
import { replayDeadLetters } from "../../pipeline/replay.ts";
import type { ReplayOptions, ReplayProgress } from "../../pipeline/replay.ts";
import { setupTelemetry } from "../../pipeline/telemetry/setup.ts";
import { SPAN } from "../../pipeline/telemetry/names.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type { EmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type { ConsumedRecord, OutgoingRecord } from "../../pipeline/transport/transport.ts";
import { startOtlpReceiver } from "../_otlp_receiver.ts";
import { requires } from "../_permissions.ts";

const DLQ = "orders.dlq";
const ORDERS = "orders";
const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const SPAN_ID = "b7ad6b7169203331";
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`;
const encoder = new TextEncoder();

interface Original {
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
  readonly headers: Record<string, string>;
  readonly offset: number;
}

function original(i: number, extra: Partial<Original> = {}): Original {
  return {
    key: encoder.encode(`order-${i}`),
    value: encoder.encode(JSON.stringify({ order_id: `order-${i}`, amount: i })),
    headers: { traceparent: TRACEPARENT, "content-type": "application/json" },
    offset: 100 + i,
    ...extra,
  };
}

function envelopeRecord(
  o: Original,
  failure: { stage?: string; error?: unknown } = {},
): OutgoingRecord {
  const consumed: ConsumedRecord = {
    topic: ORDERS,
    partition: 1,
    offset: o.offset,
    key: o.key,
    value: o.value,
    headers: o.headers,
    timestamp: 0,
  };
  const envelope = buildEnvelope(consumed, {
    stage: failure.stage ?? "process-payment",
    error: failure.error ?? new RetryableError("Gateway answered 503"),
    attempts: 3,
    failedAt: Date.UTC(2026, 0, 1),
  });
  return { topic: DLQ, key: o.key, value: JSON.stringify(envelope), headers: o.headers };
}

interface Setup {
  readonly transport: EmbeddedTransport;
  readonly errors: unknown[];
  write(records: readonly OutgoingRecord[]): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(records: readonly OutgoingRecord[] = []): Promise<Setup> {
  const errors: unknown[] = [];
  const transport = createEmbeddedTransport({ onError: (e) => errors.push(e.error) });
  await transport.ensureTopics([
    { name: ORDERS, partitions: 3 },
    { name: DLQ, partitions: 2 },
  ]);
  const producer = await transport.producer();
  const write = async (batch: readonly OutgoingRecord[]) => {
    if (batch.length > 0) await producer.send(batch);
  };
  await write(records);
  return {
    transport,
    errors,
    write,
    async [Symbol.asyncDispose]() {
      await producer.close();
      await transport.close();
    },
  };
}

function replay(transport: EmbeddedTransport, options: Partial<ReplayOptions> = {}) {
  return replayDeadLetters(transport, {
    dlqTopic: DLQ,
    replayTo: [ORDERS],
    ratePerSecond: Infinity,
    ...options,
  });
}

function sameBytes(actual: Uint8Array | null, expected: Uint8Array | null): void {
  assert.deepEqual(actual === null ? null : [...actual], expected === null ? null : [...expected]);
}

Deno.test("replayDeadLetters() sends each record back with its key, value bytes and headers", async () => {
  const binary = original(2, { value: new Uint8Array([0xff, 0x00, 0xfe, 0x80]) });
  const unkeyed = original(3, { key: null });
  const retried = original(4, {
    headers: {
      traceparent: TRACEPARENT,
      [HEADER.RETRY_TIER]: "2",
      [HEADER.ATTEMPTS]: "6",
      [HEADER.ORIGINAL_TOPIC]: ORDERS,
      [HEADER.REPLAYED_FROM]: `${DLQ}/0/0`,
    },
  });
  const originals = [original(0), original(1), binary, unkeyed, retried];
  await using s = await setup(originals.map((o) => envelopeRecord(o)));
  const dlqRecords = s.transport.records(DLQ);

  const report = await replay(s.transport);

  assert.deepEqual(report, {
    dlqTopic: DLQ,
    group: `${DLQ}.replay`,
    examined: 5,
    replayed: 5,
    skipped: { filter: 0, truncated: 0, invalid: 0, refused: 0 },
    dryRun: false,
    reachedEnd: true,
  });
  const replayed = s.transport.records(ORDERS);
  assert.equal(replayed.length, 5);
  for (const dlqRecord of dlqRecords) {
    const from = `${DLQ}/${dlqRecord.partition}/${dlqRecord.offset}`;
    const out = replayed.find((r) => r.headers[HEADER.REPLAYED_FROM] === from);
    assert.ok(out, `a record replayed from ${from}`);
    const o = originals.find((x) =>
      JSON.stringify(x.key && [...x.key]) === JSON.stringify(dlqRecord.key && [...dlqRecord.key])
    )!;
    sameBytes(out.key, o.key);
    sameBytes(out.value, o.value);
    assert.equal(out.headers.traceparent, TRACEPARENT);
    for (const [name, value] of Object.entries(o.headers)) {
      if (name.startsWith("x-")) continue;
      assert.equal(out.headers[name], value, `header ${name}`);
    }
    // The runtime's retry bookkeeping is dropped: the replayed record starts afresh.
    for (const name of [HEADER.RETRY_TIER, HEADER.ATTEMPTS, HEADER.ORIGINAL_TOPIC]) {
      assert.equal(out.headers[name], undefined, `header ${name}`);
    }
  }
  assert.deepEqual(await s.transport.committedOffsets(`${DLQ}.replay`, DLQ), [
    ...(await s.transport.endOffsets(DLQ)).end,
  ]);

  const again = await replay(s.transport);
  assert.equal(again.examined, 0);
  assert.equal(again.replayed, 0);
  assert.equal(again.reachedEnd, true);
  assert.equal(s.transport.records(ORDERS).length, 5);
  assert.deepEqual(s.errors, []);
});

Deno.test("replayDeadLetters() filters by error type and stage; a filtered run's group moves past the rest", async () => {
  await using s = await setup([
    envelopeRecord(original(0)),
    envelopeRecord(original(1), { error: new ValidationError("Bad amount") }),
    envelopeRecord(original(2), { stage: "publish-order" }),
    envelopeRecord(original(3)),
  ]);

  const byType = await replay(s.transport, {
    errorType: "RetryableError",
    stage: "process-payment",
  });
  assert.equal(byType.examined, 4);
  assert.equal(byType.replayed, 2);
  assert.equal(byType.skipped.filter, 2);
  const keys = s.transport.records(ORDERS).map((r) => new TextDecoder().decode(r.key!)).sort();
  assert.deepEqual(keys, ["order-0", "order-3"]);

  // The default group looked at every record; another group looks again with another filter.
  assert.equal((await replay(s.transport, { errorType: "ValidationError" })).examined, 0);
  const other = await replay(s.transport, {
    group: "validation-replay",
    errorType: "ValidationError",
  });
  assert.equal(other.replayed, 1);
  assert.equal(other.skipped.filter, 3);
  const byStage = await replay(s.transport, { group: "stage-replay", stage: "publish-order" });
  assert.equal(byStage.replayed, 1);
  assert.equal(s.transport.records(ORDERS).length, 4);
});

Deno.test("replayDeadLetters() stops at the limit and the next run replays the rest, none twice", async () => {
  await using s = await setup(Array.from({ length: 7 }, (_, i) => envelopeRecord(original(i))));

  const first = await replay(s.transport, { limit: 3 });
  assert.equal(first.replayed, 3);
  assert.equal(first.examined, 3);
  assert.equal(first.reachedEnd, false);
  assert.equal(s.transport.records(ORDERS).length, 3);

  const rest = await replay(s.transport);
  assert.equal(rest.replayed, 4);
  assert.equal(rest.reachedEnd, true);
  const sources = s.transport.records(ORDERS).map((r) => r.headers[HEADER.REPLAYED_FROM]);
  assert.equal(new Set(sources).size, 7);
  assert.equal((await replay(s.transport, { limit: 0 })).replayed, 0);
});

function sources(transport: EmbeddedTransport): string[] {
  return transport.records(ORDERS).map((r) => r.headers[HEADER.REPLAYED_FROM]);
}

async function committedTotal(transport: EmbeddedTransport): Promise<number> {
  const committed = await transport.committedOffsets(`${DLQ}.replay`, DLQ);
  return committed.reduce((sum, p) => sum + p.offset, 0);
}

Deno.test("replayDeadLetters() with a limit and a paced rate stops cleanly after the limit", async () => {
  await using s = await setup(Array.from({ length: 20 }, (_, i) => envelopeRecord(original(i))));

  // Paced at 10/s, a reserved record waits for its turn while the limit is already reserved:
  // the replay must finish it, not close the consumer under it.
  const first = await replay(s.transport, { limit: 3, ratePerSecond: 10 });
  assert.equal(first.replayed, 3);
  assert.equal(first.examined, 3);
  assert.equal(first.reachedEnd, false);
  assert.equal(sources(s.transport).length, 3);
  // Every record looked at is committed, nothing past them.
  assert.equal(await committedTotal(s.transport), 3);

  const second = await replay(s.transport, { limit: 3, ratePerSecond: 10 });
  assert.equal(second.replayed, 3);
  assert.equal(await committedTotal(s.transport), 6);
  const sent = sources(s.transport);
  assert.equal(sent.length, 6);
  assert.equal(new Set(sent).size, 6, `replayed twice: ${sent.join(", ")}`);
  assert.deepEqual(s.errors, []);
});

Deno.test("replayDeadLetters() stopped by its signal finishes the records in flight and exits cleanly", async () => {
  await using s = await setup(Array.from({ length: 20 }, (_, i) => envelopeRecord(original(i))));
  const stop = new AbortController();

  const first = await replay(s.transport, {
    ratePerSecond: 10,
    signal: stop.signal,
    onProgress: () => stop.abort(),
  });
  assert.ok(first.replayed >= 1 && first.replayed < 20, `replayed ${first.replayed}`);
  assert.equal(first.examined, first.replayed);
  assert.equal(first.reachedEnd, false);
  assert.equal(sources(s.transport).length, first.replayed);
  assert.equal(await committedTotal(s.transport), first.replayed);

  const rest = await replay(s.transport);
  assert.equal(rest.replayed, 20 - first.replayed);
  assert.equal(rest.reachedEnd, true);
  const sent = sources(s.transport);
  assert.equal(sent.length, 20);
  assert.equal(new Set(sent).size, 20, `replayed twice: ${sent.join(", ")}`);
  assert.deepEqual(s.errors, []);
});

Deno.test("replayDeadLetters() in a dry run reports what it would replay, sends and commits nothing", async () => {
  await using s = await setup([
    envelopeRecord(original(0)),
    envelopeRecord(original(1), { error: new ValidationError("Bad amount") }),
    envelopeRecord(original(2)),
  ]);
  // One record already replayed: the dry run starts where the replay group stands.
  await replay(s.transport, { limit: 1 });
  const committedBefore = await s.transport.committedOffsets(`${DLQ}.replay`, DLQ);
  const sentBefore = s.transport.records(ORDERS).length;

  const seen: ReplayProgress[] = [];
  const report = await replay(s.transport, {
    dryRun: true,
    errorType: "RetryableError",
    onProgress: (p) => seen.push(p),
  });

  assert.equal(report.dryRun, true);
  assert.equal(report.examined, 2);
  assert.equal(report.replayed, 1);
  assert.equal(report.skipped.filter, 1);
  assert.equal(report.reachedEnd, true);
  assert.deepEqual(seen.map((p) => p.outcome).sort(), ["filtered", "would-replay"]);
  assert.equal(seen.find((p) => p.outcome === "would-replay")!.envelope!.original_topic, ORDERS);
  assert.equal(s.transport.records(ORDERS).length, sentBefore);
  assert.deepEqual(await s.transport.committedOffsets(`${DLQ}.replay`, DLQ), committedBefore);

  const real = await replay(s.transport, { errorType: "RetryableError" });
  assert.equal(real.replayed, 1);
});

Deno.test("replayDeadLetters() skips truncated and invalid envelopes with the reason, and goes on", async () => {
  const big = original(9, { value: new Uint8Array(MAX_ENVELOPE_VALUE_BYTES + 10).fill(0x61) });
  const validEnvelope = JSON.parse(envelopeRecord(original(5)).value as string);
  await using s = await setup([
    envelopeRecord(big),
    { topic: DLQ, key: "k", value: "{not json" },
    { topic: DLQ, key: "k", value: JSON.stringify({ ...validEnvelope, original_offset: -1 }) },
    { topic: DLQ, key: "k", value: null },
    envelopeRecord(original(1)),
  ]);
  const seen: ReplayProgress[] = [];

  const report = await replay(s.transport, { onProgress: (p) => seen.push(p) });

  assert.equal(report.examined, 5);
  assert.equal(report.replayed, 1);
  assert.deepEqual(report.skipped, { filter: 0, truncated: 1, invalid: 3, refused: 0 });
  const truncated = seen.find((p) => p.outcome === "truncated")!;
  assert.match(truncated.reason!, /the original is at orders\/1\/109/);
  const invalid = seen.filter((p) => p.outcome === "invalid").map((p) => p.reason!);
  assert.equal(invalid.length, 3);
  assert.ok(invalid.some((r) => /original_offset/.test(r)), invalid.join("; "));
  assert.ok(invalid.some((r) => /tombstone/.test(r)), invalid.join("; "));
  // Never a truncated value on the original topic.
  const sent = s.transport.records(ORDERS);
  assert.equal(sent.length, 1);
  assert.equal(new TextDecoder().decode(sent[0].key!), "order-1");
  assert.equal((await replay(s.transport)).examined, 0);
});

Deno.test("replayDeadLetters() leaves records dead-lettered during the replay for the next run", async () => {
  await using s = await setup([envelopeRecord(original(0)), envelopeRecord(original(1))]);
  let wrote = false;

  const report = await replay(s.transport, {
    onProgress() {
      if (wrote) return;
      wrote = true;
      // As if a replayed record failed again: it lands on the DLQ while the replay runs.
      void s.write([envelopeRecord(original(7)), envelopeRecord(original(8))]);
    },
  });

  assert.equal(report.replayed, 2);
  assert.equal(report.reachedEnd, true);
  assert.equal(s.transport.records(DLQ).length, 4);
  const next = await replay(s.transport);
  assert.equal(next.replayed, 2);
  assert.equal(s.transport.records(ORDERS).length, 4);
  assert.deepEqual(s.errors, []);
});

Deno.test("replayDeadLetters() spaces sends to ratePerSecond", async () => {
  await using s = await setup(Array.from({ length: 6 }, (_, i) => envelopeRecord(original(i))));
  const started = performance.now();
  const report = await replay(s.transport, { ratePerSecond: 50 });
  const elapsed = performance.now() - started;
  assert.equal(report.replayed, 6);
  // Six sends 20 ms apart: the last one at least 100 ms after the first.
  assert.ok(elapsed >= 95, `took ${elapsed} ms`);
});

Deno.test("replayDeadLetters() on an empty DLQ returns at once with reachedEnd", async () => {
  await using s = await setup();
  const report = await replay(s.transport);
  assert.equal(report.examined, 0);
  assert.equal(report.reachedEnd, true);
});

Deno.test("replayDeadLetters() refuses bad options before any work, naming the field", async () => {
  await using s = await setup();
  const cases: [Partial<ReplayOptions>, string][] = [
    [{ dlqTopic: "" }, "dlqTopic"],
    [{ group: " " }, "group"],
    [{ limit: -1 }, "limit"],
    [{ limit: 1.5 }, "limit"],
    [{ ratePerSecond: 0 }, "ratePerSecond"],
    [{ idleTimeoutMs: Number.NaN }, "idleTimeoutMs"],
  ];
  for (const [options, field] of cases) {
    await assert.rejects(replay(s.transport, options), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.field, field);
      return true;
    });
  }
});

Deno.test(
  "replayDeadLetters() makes the replay's send span a child of the original trace",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({
      serviceName: "dlq-replay-test",
      env: {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces`,
        OTEL_METRICS_EXPORTER: "none",
      },
    });
    try {
      await using s = await setup([envelopeRecord(original(0))]);
      await replay(s.transport, { instrumentation: telemetry.instrumentation });
      await telemetry.forceFlush();
      const span = await receiver.waitFor(
        (r) => r.spans.find((x) => x.name === SPAN.send(ORDERS)),
        5000,
        "the replay's send span",
      );
      assert.equal(span.traceId, TRACE_ID);
      assert.equal(span.parentSpanId, SPAN_ID);
      const [out] = s.transport.records(ORDERS);
      assert.equal(out.headers.traceparent, `00-${TRACE_ID}-${span.spanId}-01`);
      assert.equal(
        out.headers[HEADER.REPLAYED_FROM],
        `${DLQ}/${s.transport.records(DLQ)[0].partition}/0`,
      );
    } finally {
      await telemetry.shutdown();
    }
  },
);

Deno.test("replayDeadLetters() sends only to the topics the pipeline reads, refusing others by name", async () => {
  const forged = JSON.parse(envelopeRecord(original(2)).value as string);
  await using s = await setup([
    envelopeRecord(original(1)),
    { topic: DLQ, key: "k", value: JSON.stringify({ ...forged, original_topic: "payments" }) },
    envelopeRecord(original(3)),
  ]);
  await s.transport.ensureTopics([{ name: "payments", partitions: 1 }]);
  const seen: ReplayProgress[] = [];

  const report = await replay(s.transport, { onProgress: (p) => seen.push(p) });

  assert.equal(s.transport.records("payments").length, 0, "nothing sent to a topic no stage reads");
  assert.equal(s.transport.records(ORDERS).length, 2);
  assert.equal(report.replayed, 2);
  assert.equal(report.examined, 3);
  const refused = seen.find((p) => p.outcome === "refused");
  assert.ok(refused, "the forged envelope is refused");
  assert.equal(
    refused.reason,
    `Cannot replay ${DLQ}/${refused.dlq.partition}/${refused.dlq.offset} to "payments" as the ` +
      `pipeline does not read that topic: it reads "orders"`,
  );
  assert.equal(report.skipped.refused, 1);
});

Deno.test("replayDeadLetters() refuses to start without the topics it may send to", async () => {
  await using s = await setup();
  await assert.rejects(
    replay(s.transport, { replayTo: [] }),
    (error: unknown) => error instanceof ConfigError && error.field === "replayTo",
  );
});

Deno.test("replayDeadLetters() skips an envelope whose key or headers were cut, as truncated", async () => {
  const valid = JSON.parse(envelopeRecord(original(4)).value as string);
  await using s = await setup([
    { topic: DLQ, key: "k", value: JSON.stringify({ ...valid, key_truncated: true, key_size: 1 }) },
    { topic: DLQ, key: "k", value: JSON.stringify({ ...valid, headers_truncated: true }) },
  ]);
  const report = await replay(s.transport);
  assert.equal(report.skipped.truncated, 2);
  assert.equal(s.transport.records(ORDERS).length, 0);
});
