/**
 * End-to-end traces: the real pipeline command exports its spans over OTLP/HTTP to the
 * Collector built from Go modules, which forwards them (its `otlp_http` exporter) to an OTLP
 * receiver in this test; every order is then checked trace by trace. Without the Collector on a
 * developer's machine the command exports straight to the receiver, and the test name says so;
 * under CI a missing Collector fails the test.
 *
 * Two runs: on the embedded transport (default topics and group, deterministic), and on the real
 * Kafka broker of `deno task test` (fresh topics and group), where the trace context travels in
 * Kafka record headers.
 */

import assert from "node:assert/strict";
import { ATTR, OPERATION_TYPE, SPAN } from "../../pipeline/telemetry/names.ts";
import { ORDER_ATTR, PROCESS_PAYMENT } from "../../stages/process_payment.ts";
import { SERVICE, SERVICE_VERSION } from "../../stages/telemetry.ts";
import { startCollector } from "../_observability.ts";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "../_otlp_receiver.ts";
import { brokerTest } from "../_broker.ts";
import { PipelineError } from "../../pipeline/errors.ts";
import { E2E_PERMISSIONS, IN_CI, missingTools, OTELCOL_TOOL, runPipeline } from "./_e2e.ts";
import { requires } from "../_permissions.ts";

/** The topics and group of one run. */
interface RunNames {
  readonly orders: string;
  readonly payments: string;
  readonly dlq: string;
  readonly group: string;
}

/** The command's defaults. */
const DEFAULT_NAMES: RunNames = {
  orders: "orders",
  payments: "payments",
  dlq: "orders.dlq",
  group: "payment-service",
};
const ORDER_COUNT = 30;
/** OTLP span kinds and status codes. */
const KIND = { INTERNAL: 1, PRODUCER: 4, CONSUMER: 5 } as const;
const STATUS_ERROR = 2;

/**
 * Seed 2 dead-letters a few of the 30 orders at a 50% failure rate (three attempts each), and
 * pays others on their first, second and third attempt: every outcome shows up.
 */
const PIPELINE_ARGS = [
  "--max-orders",
  String(ORDER_COUNT),
  "--rate",
  "0",
  "--failure-rate",
  "0.5",
  "--gateway-latency-ms",
  "0",
  "--seed",
  "2",
];

const collectorMissing = await missingTools([OTELCOL_TOOL]);
const via = collectorMissing.length === 0
  ? "through the Collector"
  : `straight to the receiver, no Collector: missing ${collectorMissing.join(", ")}`;

Deno.test({
  ...requires(...E2E_PERMISSIONS),
  name: `pipeline spans reach an OTLP receiver (${via}): one trace per order, semconv attributes`,
  sanitizeResources: true,
  sanitizeOps: true,
  fn: () => checkOrderTraces(DEFAULT_NAMES, {}),
});

brokerTest(
  `pipeline spans over a real Kafka broker (${via}): trace context crosses Kafka headers`,
  (brokers) => {
    const suffix = `${Date.now().toString(36)}-${Deno.pid}`;
    const names: RunNames = {
      orders: `e2e-orders-${suffix}`,
      payments: `e2e-payments-${suffix}`,
      dlq: `e2e-orders-${suffix}.dlq`,
      group: `payment-service-e2e-${suffix}`,
    };
    return checkOrderTraces(names, {
      KAFKA_BROKERS: brokers,
      ORDERS_TOPIC: names.orders,
      PAYMENTS_TOPIC: names.payments,
      DLQ_TOPIC: names.dlq,
      GROUP_ID: names.group,
    });
  },
);

/**
 * Runs the command with `env` on top of the telemetry settings, then checks every order's
 * trace: send -> process (parent), attempts, and the payment or dlqTopic send.
 */
async function checkOrderTraces(names: RunNames, env: Record<string, string>): Promise<void> {
  if (collectorMissing.length > 0 && IN_CI) {
    throw new PipelineError(`Cannot run under CI: missing ${collectorMissing.join(", ")}`);
  }
  const { orders: ordersTopic, payments: paymentsTopic, dlq: dlqTopic, group } = names;
  await using receiver = await startOtlpReceiver();
  await using collector = collectorMissing.length === 0
    ? await startCollector({ tracesTo: receiver.endpoint })
    : undefined;
  const endpoint = collector?.url ?? receiver.endpoint;

  const run = await runPipeline(PIPELINE_ARGS, {
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_BSP_SCHEDULE_DELAY: "100",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      ...env,
    },
    timeoutMs: 90_000,
  });
  assert.equal(run.code, 0, `pipeline failed:\n${run.stderr}`);
  const summary = run.summary;
  assert.ok(summary !== undefined, `no summary line:\n${run.stdout}`);
  assert.equal(summary.generated, ORDER_COUNT);
  assert.equal(summary.paid + summary.dead_lettered, ORDER_COUNT);
  assert.ok(summary.dead_lettered > 0, "the seed should dead-letter some orders");
  assert.ok(summary.paid > 0, "the seed should pay some orders");

  // The command flushed its spans before exiting; the Collector forwards them as they come.
  await waitForSpans(receiver, names, summary, collector?.logs);
  const spans = receiver.spans;
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const childrenOf = (span: ReceivedSpan) => spans.filter((s) => s.parentSpanId === span.spanId);

  // Publishing is the order service's; on Kafka the payment stage runs in workers that export
  // as the payment service (each worker its own instance), in-process it shares the order
  // service's SDK.
  const onKafka = env.KAFKA_BROKERS !== undefined;
  for (const span of spans) {
    const expected = onKafka && span.name !== SPAN.send(ordersTopic)
      ? SERVICE.PAYMENT
      : SERVICE.ORDER;
    assert.equal(span.resource["service.name"], expected, `resource of "${span.name}"`);
    assert.equal(span.resource["service.version"], SERVICE_VERSION, `version of "${span.name}"`);
  }
  if (onKafka) {
    const instances = new Set(
      spans.filter((s) => s.resource["service.name"] === SERVICE.PAYMENT)
        .map((s) => s.resource["service.instance.id"]),
    );
    assert.ok(instances.size >= 1, "payment spans name their worker instance");
  }

  const processSpans = spans.filter((s) => s.name === SPAN.process(ordersTopic));
  assert.equal(processSpans.length, ORDER_COUNT, "one process span per order");
  assert.equal(
    new Set(processSpans.map((s) => s.traceId)).size,
    ORDER_COUNT,
    "one trace per order",
  );

  let paid = 0;
  let deadLettered = 0;
  let paidAfterRetry = 0;
  for (const process of processSpans) {
    const orderId = process.attributes[ATTR.MESSAGING_KAFKA_MESSAGE_KEY];
    assert.equal(typeof orderId, "string", "process span carries the record key");
    const where = `order "${orderId}"`;

    // CONSUMER span, child of the PRODUCER span that published the order.
    assert.equal(process.kind, KIND.CONSUMER, `${where}: process span kind`);
    assert.ok(process.parentSpanId !== undefined, `${where}: process span has a parent`);
    const send = byId.get(process.parentSpanId);
    assert.ok(send !== undefined, `${where}: the process span's parent was exported`);
    assert.equal(send.name, SPAN.send(ordersTopic), `${where}: parent span name`);
    assert.equal(send.kind, KIND.PRODUCER, `${where}: send span kind`);
    assert.equal(send.traceId, process.traceId, `${where}: send and process share the trace`);
    assert.equal(send.parentSpanId, undefined, `${where}: the send span starts the trace`);
    assert.deepEqual(
      pick(send.attributes, [
        ATTR.MESSAGING_SYSTEM,
        ATTR.MESSAGING_DESTINATION_NAME,
        ATTR.MESSAGING_OPERATION_TYPE,
        ATTR.MESSAGING_KAFKA_MESSAGE_KEY,
      ]),
      {
        [ATTR.MESSAGING_SYSTEM]: "kafka",
        [ATTR.MESSAGING_DESTINATION_NAME]: ordersTopic,
        [ATTR.MESSAGING_OPERATION_TYPE]: OPERATION_TYPE.SEND,
        [ATTR.MESSAGING_KAFKA_MESSAGE_KEY]: orderId,
      },
      `${where}: send span attributes`,
    );

    // Semantic-convention attributes of the process span.
    assert.deepEqual(
      pick(process.attributes, [
        ATTR.MESSAGING_SYSTEM,
        ATTR.MESSAGING_DESTINATION_NAME,
        ATTR.MESSAGING_OPERATION_TYPE,
        ATTR.MESSAGING_CONSUMER_GROUP_NAME,
      ]),
      {
        [ATTR.MESSAGING_SYSTEM]: "kafka",
        [ATTR.MESSAGING_DESTINATION_NAME]: ordersTopic,
        [ATTR.MESSAGING_OPERATION_TYPE]: OPERATION_TYPE.PROCESS,
        [ATTR.MESSAGING_CONSUMER_GROUP_NAME]: group,
      },
      `${where}: process span attributes`,
    );
    const offset = process.attributes[ATTR.MESSAGING_KAFKA_OFFSET];
    assert.ok(Number.isInteger(offset) && (offset as number) >= 0, `${where}: offset ${offset}`);
    const partition = process.attributes[ATTR.MESSAGING_DESTINATION_PARTITION_ID];
    assert.match(String(partition), /^\d+$/, `${where}: partition id`);
    assert.equal(typeof partition, "string", `${where}: partition id is a string (semconv)`);

    // Handler attempts: children of the process span, numbered from 1.
    const attempts = childrenOf(process)
      .filter((s) => s.name === SPAN.attempt(PROCESS_PAYMENT))
      .sort((a, b) =>
        Number(a.attributes[ATTR.PIPELINE_ATTEMPT]) - Number(b.attributes[ATTR.PIPELINE_ATTEMPT])
      );
    assert.ok(attempts.length >= 1, `${where}: at least one attempt span`);
    assert.deepEqual(
      attempts.map((a) => a.attributes[ATTR.PIPELINE_ATTEMPT]),
      attempts.map((_, i) => i + 1),
      `${where}: attempt numbers`,
    );
    for (const attempt of attempts) {
      assert.equal(attempt.kind, KIND.INTERNAL, `${where}: attempt span kind`);
      assert.equal(attempt.traceId, process.traceId, `${where}: attempt in the order's trace`);
    }

    // Business attributes of the order, on the process span (stages/process_payment.ts).
    const business = pick(process.attributes, [
      ORDER_ATTR.ORDER_ID,
      ORDER_ATTR.USER_ID,
      ORDER_ATTR.AMOUNT,
    ]);
    assert.equal(business[ORDER_ATTR.ORDER_ID], orderId, `${where}: order.id on process span`);
    assert.equal(typeof business[ORDER_ATTR.USER_ID], "string", `${where}: user.id`);
    assert.equal(typeof business[ORDER_ATTR.AMOUNT], "number", `${where}: amount`);

    const sends = childrenOf(process).filter((s) => s.kind === KIND.PRODUCER);
    const failedAttempts = attempts.filter((a) => a.statusCode === STATUS_ERROR);
    for (const failed of failedAttempts) {
      assert.ok(
        typeof failed.attributes[ATTR.ERROR_TYPE] === "string",
        `${where}: failed attempt carries error.type`,
      );
      assert.ok(
        failed.events.some((e) => e.name === "exception"),
        `${where}: failed attempt has an exception event`,
      );
    }

    const dlqSend = sends.find((s) => s.name === SPAN.send(dlqTopic));
    const paymentSend = sends.find((s) => s.name === SPAN.send(paymentsTopic));
    if (dlqSend !== undefined) {
      deadLettered++;
      assert.equal(paymentSend, undefined, `${where}: dead-lettered and paid`);
      assert.equal(process.statusCode, STATUS_ERROR, `${where}: dead-lettered process span`);
      assert.equal(
        typeof process.attributes[ATTR.ERROR_TYPE],
        "string",
        `${where}: dead-lettered process span carries error.type`,
      );
      assert.equal(failedAttempts.length, attempts.length, `${where}: every attempt failed`);
      assert.equal(
        dlqSend.traceId,
        process.traceId,
        `${where}: dlqTopic send in the order's trace`,
      );
      assert.equal(dlqSend.attributes[ATTR.MESSAGING_DESTINATION_NAME], dlqTopic);
      assert.equal(dlqSend.attributes[ATTR.MESSAGING_KAFKA_MESSAGE_KEY], orderId);
    } else {
      assert.ok(paymentSend !== undefined, `${where}: neither paid nor dead-lettered`);
      paid++;
      assert.notEqual(process.statusCode, STATUS_ERROR, `${where}: paid process span`);
      assert.equal(paymentSend.traceId, process.traceId, `${where}: payment send in trace`);
      assert.equal(paymentSend.attributes[ATTR.MESSAGING_DESTINATION_NAME], paymentsTopic);
      assert.equal(paymentSend.attributes[ATTR.MESSAGING_KAFKA_MESSAGE_KEY], orderId);
      assert.equal(
        failedAttempts.length,
        attempts.length - 1,
        `${where}: all attempts but the last failed`,
      );
      assert.notEqual(attempts.at(-1)?.statusCode, STATUS_ERROR, `${where}: last attempt`);
      if (attempts.length > 1) paidAfterRetry++;
    }
  }
  assert.equal(paid, summary.paid, "paid orders in traces match the summary");
  assert.equal(deadLettered, summary.dead_lettered, "dead-lettered orders match the summary");
  assert.ok(paidAfterRetry > 0, "some order was paid after a failed attempt");
}

/** Waits until every order's process span and its outcome's send span arrived. */
async function waitForSpans(
  receiver: OtlpReceiver,
  { orders: ordersTopic, payments: paymentsTopic, dlq: dlqTopic }: RunNames,
  summary: { generated: number; paid: number; dead_lettered: number },
  collectorLogs?: () => string,
): Promise<void> {
  const count = (name: string) => receiver.spans.filter((s) => s.name === name).length;
  try {
    await receiver.waitFor(
      () =>
        count(SPAN.send(ordersTopic)) >= summary.generated &&
        count(SPAN.process(ordersTopic)) >= summary.generated &&
        count(SPAN.send(paymentsTopic)) >= summary.paid &&
        count(SPAN.send(dlqTopic)) >= summary.dead_lettered,
      20_000,
      `spans of ${summary.generated} orders`,
    );
  } catch (error) {
    const names = Object.entries(
      Object.groupBy(receiver.spans, (s) => s.name),
    ).map(([name, list]) => `${name}: ${list?.length}`);
    throw new PipelineError(
      `${(error as Error).message}; by name: ${names.join(", ")}` +
        (collectorLogs ? `; Collector output:\n${collectorLogs()}` : ""),
    );
  }
}

function pick(
  attributes: Record<string, unknown>,
  keys: readonly string[],
): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, attributes[k]]));
}

Deno.test({
  ...requires(...E2E_PERMISSIONS),
  name: "with TRACE_PARENTING=link each process span starts its own trace, linked to its send",
  sanitizeResources: true,
  sanitizeOps: true,
  async fn() {
    await using receiver = await startOtlpReceiver();
    const orders = 5;
    const run = await runPipeline(
      ["--max-orders", String(orders), "--rate", "0", "--gateway-latency-ms", "0"],
      {
        env: {
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
          OTEL_BSP_SCHEDULE_DELAY: "100",
          OTEL_METRICS_EXPORTER: "none",
          OTEL_LOGS_EXPORTER: "none",
          TRACE_PARENTING: "link",
        },
      },
    );
    assert.equal(run.code, 0, `pipeline failed:\n${run.stderr}`);
    const processName = SPAN.process(DEFAULT_NAMES.orders);
    const sendName = SPAN.send(DEFAULT_NAMES.orders);
    const counted = () => receiver.spans.filter((s) => s.name === processName).length;
    const deadline = Date.now() + 20_000;
    while (counted() < orders && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const spans = receiver.spans;
    const sends = new Map(spans.filter((s) => s.name === sendName).map((s) => [s.spanId, s]));
    const processes = spans.filter((s) => s.name === processName);
    assert.equal(processes.length, orders, "one process span per order");
    for (const process of processes) {
      assert.equal(process.parentSpanId, undefined, "a process span starts its own trace");
      assert.equal(process.links.length, 1, "it links to the producer span");
      const send = sends.get(process.links[0].spanId);
      assert.ok(send !== undefined, "the link points at the order's send span");
      assert.notEqual(send.traceId, process.traceId, "publish and processing are two traces");
      assert.equal(process.links[0].traceId, send.traceId);
    }
  },
});
