/**
 * Helpers of the real-broker integration tests: run the pipeline command (`stages/main.ts`,
 * what `deno task pipeline` runs) as a child process against `KAFKA_BROKERS`, read topics back
 * with `kcat` (librdkafka: an independent client, so a bug in our kafkajs transport cannot hide
 * itself), write odd records with `kcat`, and account for every order.
 *
 * Every child is bounded by a deadline and killed in `stop()`; tests call it in `finally`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { readTopic as readKcatTopic, runKcat } from "../../chaos/_kcat.ts";
import type { KcatRecord } from "../../chaos/_kcat.ts";
import { PipelineError } from "../../pipeline/errors.ts";
import { brokerAvailable } from "../_broker.ts";
import { findExecutable } from "../_observability.ts";
import { IN_CI } from "../_pipeline_process.ts";

export { IN_CI, spawnPipeline } from "../_pipeline_process.ts";
export { freeLoopbackPorts } from "../_ports.ts";
export type { PipelineProcess, PipelineSummary, Progress } from "../_pipeline_process.ts";
export type { KcatRecord } from "../../chaos/_kcat.ts";

/** A per-process id that keeps topic and group names unique across runs on one broker. */
const RUN_ID = `${Date.now().toString(36)}${Deno.pid.toString(36)}`;

/** The topics and group of one test. */
export interface Names {
  readonly orders: string;
  readonly payments: string;
  readonly dlq: string;
  readonly group: string;
}

/**
 * Unique topic and group names for one test, e.g. `it-<run>-poison.orders`; `test` must be
 * lowercase letters and digits (group names are lowercase words joined by dashes).
 */
export function uniqueNames(test: string): Names {
  const base = `it-${RUN_ID}-${test}`;
  return {
    orders: `${base}.orders`,
    payments: `${base}.payments`,
    dlq: `${base}.dlq`,
    group: `${base}-payment-service`,
  };
}

/** The topic and group options of the orders pipeline (and the worker pipeline) for `names`. */
export function pipelineNames(names: Names): {
  readonly ordersTopic: string;
  readonly paymentsTopic: string;
  readonly dlqTopic: string;
  readonly groupId: string;
} {
  return {
    ordersTopic: names.orders,
    paymentsTopic: names.payments,
    dlqTopic: names.dlq,
    groupId: names.group,
  };
}

/** The environment that points the pipeline command at `names` on `brokers`. */
export function pipelineEnv(brokers: string, names: Names): Record<string, string> {
  return {
    KAFKA_BROKERS: brokers,
    ORDERS_TOPIC: names.orders,
    PAYMENTS_TOPIC: names.payments,
    DLQ_TOPIC: names.dlq,
    GROUP_ID: names.group,
  };
}

/**
 * Registers a test that needs a real broker and `kcat`. Without a broker or without kcat the
 * test is ignored with the reason in its name on a developer's machine, and fails under CI.
 */
export async function integrationTest(
  name: string,
  fn: (brokers: string, kcat: string) => Promise<void>,
): Promise<void> {
  const { brokers, ignoreReason } = brokerAvailable();
  // Without a broker there is nothing to look up (and maybe no permission to read PATH).
  const kcat = brokers === undefined ? undefined : await findExecutable("kcat");
  const missing = brokers === undefined
    ? ignoreReason ?? "no Kafka broker"
    : kcat === undefined
    ? `"kcat" is missing (apt-get install kcat, or infra/tools/install_tools.sh)`
    : undefined;
  if (missing === undefined) {
    // kafkajs keeps timers and sockets past disconnect() for a moment and supervised workers
    // end asynchronously; every child process and broker is stopped in the tests' `finally`.
    Deno.test({
      name,
      fn: () => fn(brokers!, kcat!),
      sanitizeOps: false,
      sanitizeResources: false,
    });
  } else if (IN_CI) {
    Deno.test(name, () => {
      throw new PipelineError(`Cannot run a real-broker integration test under CI: ${missing}`);
    });
  } else {
    Deno.test({ name: `${name} [ignored: ${missing}]`, ignore: true, fn: () => {} });
  }
}

/** Polls `condition` every 100 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  detail: () => string = () => "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new PipelineError(`Timed out after ${timeoutMs} ms waiting for ${what}${detail()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** How long one kcat call of these tests may take, in milliseconds. */
const KCAT_TIMEOUT_MS = 60_000;

/**
 * Every record of `topic` from the beginning to its current end, read by kcat with
 * `read_committed` (librdkafka's default isolation, what a downstream consumer sees) unless
 * `options.isolation` says otherwise.
 */
export function readTopic(
  kcat: string,
  brokers: string,
  topic: string,
  options: { readonly isolation?: "read_committed" | "read_uncommitted" } = {},
): Promise<KcatRecord[]> {
  return readKcatTopic({ kcat, brokers }, topic, {
    readCommitted: options.isolation !== "read_uncommitted",
    timeoutMs: KCAT_TIMEOUT_MS,
  });
}

/** One record to write with {@linkcode produceWithKcat}. */
export interface KcatMessage {
  /** The key; `undefined` writes a record with a null key. */
  readonly key?: string;
  /** The value, written byte for byte. */
  readonly value: string | Uint8Array;
  /** Headers. */
  readonly headers?: Record<string, string>;
}

/**
 * Writes one record per call of kcat (the value comes from a file, so it is sent whole:
 * newlines, any size up to the broker's limit).
 */
export async function produceWithKcat(
  kcat: string,
  brokers: string,
  topic: string,
  message: KcatMessage,
): Promise<void> {
  const file = await Deno.makeTempFile({ prefix: "kcat-value-" });
  try {
    await Deno.writeFile(
      file,
      typeof message.value === "string" ? new TextEncoder().encode(message.value) : message.value,
    );
    const args = ["-P", "-b", brokers, "-t", topic, "-X", "message.max.bytes=2000000"];
    if (message.key !== undefined) args.push("-k", message.key);
    for (const [name, value] of Object.entries(message.headers ?? {})) {
      args.push("-H", `${name}=${value}`);
    }
    await runKcat({ kcat, brokers }, [...args, file], KCAT_TIMEOUT_MS);
  } finally {
    await Deno.remove(file);
  }
}

/** What the topics of a run hold, as counted by kcat. */
export interface TopicAccount {
  /** Order ids on the orders topic (from the record values). */
  readonly orders: string[];
  /** Order ids of the PaymentProcessed records, one per record. */
  readonly paid: string[];
  /** Order ids of the dead letters, one per record (from the envelope's original value). */
  readonly deadLettered: string[];
}

function orderIdOf(json: string | null): string | undefined {
  if (json === null) return undefined;
  try {
    const id = (JSON.parse(json) as { order_id?: unknown }).order_id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Options of {@linkcode accountTopics}. */
export interface AccountOptions {
  /**
   * Whether a record with this key (on the orders topic, or as the envelope's original key on
   * the DLQ) is a generated order to account for; tests that add odd records leave them out.
   * @default every record
   */
  readonly isOrder?: (key: string | null) => boolean;
}

/** Reads the orders, payments and DLQ topics of `names` and extracts order ids. */
export async function accountTopics(
  kcat: string,
  brokers: string,
  names: Names,
  options: AccountOptions = {},
): Promise<TopicAccount> {
  const { isOrder = () => true } = options;
  const [allOrders, payments, allDlq] = await Promise.all([
    readTopic(kcat, brokers, names.orders),
    readTopic(kcat, brokers, names.payments),
    readTopic(kcat, brokers, names.dlq),
  ]);
  const orders = allOrders.filter((record) => isOrder(record.key));
  const dlq = allDlq.filter((record) =>
    isOrder((JSON.parse(record.payload ?? "null") as { key: string | null }).key)
  );
  const ids = (records: KcatRecord[], of: (r: KcatRecord) => string | undefined) =>
    records.map((record) => {
      const id = of(record);
      assert.ok(id, `record ${record.topic}/${record.partition}@${record.offset} has no order_id`);
      return id;
    });
  return {
    orders: ids(orders, (r) => orderIdOf(r.payload)),
    paid: ids(payments, (r) => {
      const id = orderIdOf(r.payload);
      assert.equal(r.key, id, `payment ${r.partition}@${r.offset} is keyed by its order_id`);
      return id;
    }),
    deadLettered: ids(dlq, (r) => {
      const envelope = JSON.parse(r.payload ?? "null") as { value: string | null };
      return orderIdOf(envelope.value);
    }),
  };
}

function duplicates(ids: readonly string[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const id of ids) (seen.has(id) ? twice : seen).add(id);
  return [...twice];
}

/**
 * Asserts exactly-once accounting over the topics: every order on the orders topic appears
 * once, and has exactly one outcome: one payment or one dead letter, never both, never two.
 * Returns the counts.
 */
export function assertEveryOrderOnce(
  account: TopicAccount,
  expectedOrders: number,
  options: {
    /**
     * Whether an order may be on the orders topic more than once. A publish whose produce
     * request failed when the broker died may have been written; the publisher resends it with
     * a new producer id (sequence numbers are never reused), so the broker cannot drop the copy.
     * Each order still has one outcome: the payment stage keys its state by order id.
     * @default false
     */
    readonly republished?: boolean;
    /**
     * Whether an order may be handled twice (at-least-once after a broker outage or a member's
     * SIGKILL: an outcome acknowledged just before, whose state entry was not, is handled again
     * on redelivery). Its outcome may then be on its topic twice, or, when the first outcome was
     * a dead letter (every charge attempt failed) or the second handling's attempts all fail,
     * be one of each kind; those are counted. None is lost either way.
     * @default false
     */
    readonly redelivered?: boolean;
  } = {},
): {
  paid: number;
  deadLettered: number;
  republished: number;
  redelivered: number;
  paidAndDeadLettered: number;
} {
  const republished = duplicates(account.orders);
  if (options.republished) {
    assert.equal(new Set(account.orders).size, expectedOrders, "orders on the orders topic");
  } else {
    assert.equal(account.orders.length, expectedOrders, "records on the orders topic");
    assert.deepEqual(republished, [], "order ids on the orders topic are unique");
  }
  if (!options.redelivered) {
    assert.deepEqual(duplicates(account.paid), [], "no order is paid twice");
    assert.deepEqual(duplicates(account.deadLettered), [], "no order is dead-lettered twice");
  }
  const paid = new Set(account.paid);
  const both = account.deadLettered.filter((id) => paid.has(id));
  if (!options.redelivered) assert.deepEqual(both, [], "no order is both paid and dead-lettered");
  const outcomes = new Set([...account.paid, ...account.deadLettered]);
  const orders = new Set(account.orders);
  const lost = [...orders].filter((id) => !outcomes.has(id));
  assert.deepEqual(lost, [], "every order has an outcome (none lost)");
  const strangers = [...outcomes].filter((id) => !orders.has(id));
  assert.deepEqual(strangers, [], "every outcome belongs to an order on the orders topic");
  return {
    paid: account.paid.length,
    deadLettered: account.deadLettered.length,
    republished: account.orders.length - new Set(account.orders).size,
    redelivered: account.paid.length - new Set(account.paid).size +
      account.deadLettered.length - new Set(account.deadLettered).size,
    paidAndDeadLettered: new Set(both).size,
  };
}
