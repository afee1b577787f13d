import assert from "node:assert/strict";
import { buildEnvelope } from "../../pipeline/dead_letter.ts";
import { RetryableError, ValidationError } from "../../pipeline/errors.ts";
import { HEADER } from "../../pipeline/headers.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type {
  ConsumedRecord,
  OutgoingRecord,
  Transport,
} from "../../pipeline/transport/transport.ts";
import { main, NO_BROKER_MESSAGE } from "../../stages/dlq_replay.ts";
import { brokerAvailable, loadKafkaTransport } from "../_broker.ts";

const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { stdout: (l: string) => out.push(l), stderr: (l: string) => err.push(l) },
  };
}

function dead(
  topic: string,
  dlq: string,
  i: number,
  error: unknown = new RetryableError("Gateway answered 503"),
): OutgoingRecord {
  const record: ConsumedRecord = {
    topic,
    partition: 0,
    offset: i,
    key: new TextEncoder().encode(`order-${i}`),
    value: new TextEncoder().encode(JSON.stringify({ order_id: `order-${i}` })),
    headers: { traceparent: TRACEPARENT },
    timestamp: 0,
  };
  const envelope = buildEnvelope(record, {
    stage: "process-payment",
    error,
    attempts: 3,
    failedAt: 0,
  });
  return { topic: dlq, key: record.key, value: JSON.stringify(envelope) };
}

function lastJson(out: string[]): { replay: Record<string, unknown> } {
  return JSON.parse(out[out.length - 1]);
}

const NO_OTEL = { OTEL_SDK_DISABLED: "true" };

Deno.test("dlq:replay --help prints every flag and exits 0", async () => {
  const c = capture();
  assert.equal(await main(["--help"], NO_OTEL, c.io), 0);
  const help = c.out.join("\n");
  for (
    const flag of [
      "--filter-error-type",
      "--filter-stage",
      "--limit",
      "--dry-run",
      "--rate",
      "--group",
      "KAFKA_BROKERS",
      "DLQ_TOPIC",
    ]
  ) assert.ok(help.includes(flag), flag);
});

Deno.test("dlq:replay without KAFKA_BROKERS says the embedded transport keeps no DLQ and exits 2", async () => {
  const c = capture();
  assert.equal(await main([], NO_OTEL, c.io), 2);
  assert.deepEqual(c.out, []);
  assert.equal(c.err[0], `error: ${NO_BROKER_MESSAGE}`);
  assert.match(c.err[0], /KAFKA_BROKERS is not set/);
});

Deno.test("dlq:replay refuses bad flags with exit 2, naming the flag", async () => {
  for (const args of [["--rate", "0"], ["--limit", "-1"], ["--nope"]]) {
    const c = capture();
    assert.equal(await main(args, { ...NO_OTEL, KAFKA_BROKERS: "127.0.0.1:1" }, c.io), 2);
    assert.match(c.err[0], /^error: Cannot use (flag "--|argument ")/, c.err[0]);
  }
});

Deno.test("dlq:replay prints would-be replays in a dry run, then replays and ends with the report", async () => {
  const transport = createEmbeddedTransport({ onError: () => {} });
  await transport.ensureTopics([
    { name: "orders", partitions: 3 },
    { name: "orders.dlq", partitions: 1 },
  ]);
  const producer = await transport.producer();
  await producer.send([
    dead("orders", "orders.dlq", 0),
    dead("orders", "orders.dlq", 1, new ValidationError("Bad amount")),
    dead("orders", "orders.dlq", 2),
  ]);
  await producer.close();
  try {
    const dry = capture();
    const args = ["--filter-error-type", "RetryableError", "--rate", "1000"];
    assert.equal(await main([...args, "--dry-run"], NO_OTEL, dry.io, undefined, transport), 0);
    assert.equal(dry.out.filter((l) => l.startsWith("would replay orders.dlq/0/")).length, 2);
    assert.deepEqual(lastJson(dry.out).replay, {
      dlqTopic: "orders.dlq",
      group: "orders.dlq.replay",
      examined: 3,
      replayed: 2,
      skipped: { filter: 1, truncated: 0, invalid: 0, refused: 0 },
      dryRun: true,
      reachedEnd: true,
    });
    assert.equal(transport.records("orders").length, 0);

    const run = capture();
    assert.equal(await main(args, NO_OTEL, run.io, undefined, transport), 0);
    assert.equal(run.out.length, 1);
    assert.equal(lastJson(run.out).replay.replayed, 2);
    assert.equal(transport.records("orders").length, 2);
  } finally {
    await transport.close();
  }
});

const { brokers } = brokerAvailable();

Deno.test({
  name: "dlq:replay round trip through Kafka: original key, value, headers; nothing twice",
  ignore: !brokers,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const suffix = `${Date.now()}-${crypto.randomUUID().slice(0, 8)}`;
    const orders = `replay-test-orders-${suffix}`;
    const dlq = `replay-test-dlq-${suffix}`;
    const group = `replay-test-group-${suffix}`;
    const { createKafkaTransport } = await loadKafkaTransport();
    const transport: Transport = createKafkaTransport(brokers!, { clientId: "replay-test" });
    try {
      await transport.ensureTopics([
        { name: orders, partitions: 2 },
        { name: dlq, partitions: 2 },
      ]);
      const producer = await transport.producer();
      await producer.send([
        dead(orders, dlq, 0),
        dead(orders, dlq, 1, new ValidationError("Bad amount")),
        dead(orders, dlq, 2),
        dead(orders, dlq, 3),
      ]);
      await producer.close();
      const env = { ...NO_OTEL, KAFKA_BROKERS: brokers!, DLQ_TOPIC: dlq };
      const base = ["--group", group, "--rate", "1000", "--idle-timeout", "20"];

      const dry = capture();
      assert.equal(await main([...base, "--dry-run"], env, dry.io), 0, dry.err.join("\n"));
      assert.equal(lastJson(dry.out).replay.replayed, 4);
      assert.deepEqual(
        (await transport.endOffsets(orders)).end.reduce((n, p) => n + p.offset, 0),
        0,
      );

      const first = capture();
      const filtered = [...base, "--filter-error-type", "RetryableError", "--limit", "2"];
      assert.equal(await main(filtered, env, first.io), 0, first.err.join("\n"));
      assert.equal(lastJson(first.out).replay.replayed, 2);
      const second = capture();
      assert.equal(
        await main([...base, "--filter-error-type", "RetryableError"], env, second.io),
        0,
        second.err.join("\n"),
      );
      const report = lastJson(second.out).replay;
      assert.equal(report.replayed, 1);
      assert.equal(report.reachedEnd, true);
      const third = capture();
      assert.equal(await main(base, env, third.io), 0, third.err.join("\n"));
      assert.equal(lastJson(third.out).replay.examined, 0);

      // Read the original topic back: three records, each with its key, value and headers.
      const seen: ConsumedRecord[] = [];
      const reader = await transport.consumer({ groupId: `${group}-check`, topics: [orders] });
      await reader.run((record) => {
        seen.push(record);
        return Promise.resolve();
      });
      const deadline = Date.now() + 30_000;
      while (seen.length < 3 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await reader.close();
      assert.equal(seen.length, 3);
      const keys = seen.map((r) => new TextDecoder().decode(r.key!)).sort();
      assert.deepEqual(keys, ["order-0", "order-2", "order-3"]);
      for (const record of seen) {
        const key = new TextDecoder().decode(record.key!);
        assert.equal(new TextDecoder().decode(record.value!), JSON.stringify({ order_id: key }));
        assert.equal(record.headers.traceparent, TRACEPARENT);
        assert.match(record.headers[HEADER.REPLAYED_FROM], new RegExp(`^${dlq}/[01]/\\d+$`));
      }
      assert.equal(new Set(seen.map((r) => r.headers[HEADER.REPLAYED_FROM])).size, 3);
    } finally {
      await transport.close();
    }
  },
});

Deno.test("dlq:replay refuses a record whose original topic the pipeline does not read, naming it", async () => {
  const transport = createEmbeddedTransport({ onError: () => {} });
  await transport.ensureTopics([
    { name: "orders", partitions: 3 },
    { name: "payments", partitions: 3 },
    { name: "orders.dlq", partitions: 1 },
  ]);
  const producer = await transport.producer();
  await producer.send([dead("payments", "orders.dlq", 0), dead("orders", "orders.dlq", 1)]);
  await producer.close();
  try {
    const run = capture();
    assert.equal(await main(["--rate", "1000"], NO_OTEL, run.io, undefined, transport), 0);
    assert.equal(transport.records("payments").length, 0);
    assert.equal(transport.records("orders").length, 1);
    assert.ok(
      run.err.includes(
        `error: Cannot replay orders.dlq/0/0 to "payments" as the pipeline does not read that ` +
          `topic: it reads "orders"`,
      ),
      run.err.join("\n"),
    );
    const report = lastJson(run.out).replay as { skipped: { refused: number } };
    assert.equal(report.skipped.refused, 1);
  } finally {
    await transport.close();
  }
});
