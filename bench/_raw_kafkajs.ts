/**
 * The baseline: kafkajs alone, no pipeline. Produce N order-shaped records to a fresh topic
 * the way the pipeline's publisher does (idempotent producer, acks=all, one in flight, batches
 * of `batchSize`, keyed, Kafka's default partitioner), while one consumer group member reads
 * them all (eachMessage, JSON decode, manual commits every 100 ms or 500 records, like the
 * transport's consumer), and time it from the first send to the commit that covers the last
 * record.
 *
 * @module
 */
import kafkajs from "kafkajs";
import type { Kafka, KafkaConfig, KafkaMessage, Message } from "kafkajs";
import { kafkaClientSecurity, kafkaSecurityFromEnv } from "../pipeline/transport/kafka/security.ts";
import { PipelineError } from "../pipeline/errors.ts";
import { round } from "./_stats.ts";

const { Partitioners, logLevel } = kafkajs;

/** Options for {@linkcode runRawBaseline}. */
export interface RawBaselineOptions {
  /** Bootstrap brokers, `host:port` each. */
  readonly brokers: readonly string[];
  /** The topic to create and use; must not exist. */
  readonly topic: string;
  /** The consumer group; must be new. */
  readonly groupId: string;
  /** The records, already encoded: key and JSON value. */
  readonly records: readonly { key: string; value: string }[];
  /** Partitions of the topic. */
  readonly partitions: number;
  /** Records per `sendBatch`. */
  readonly batchSize: number;
  /** Give up after this long, in ms. */
  readonly timeoutMs: number;
  /**
   * How long a fetch waits on the broker, in ms (the transport's `fetchMaxWait`).
   * @default 500
   */
  readonly fetchMaxWait?: number;
}

/** What the baseline measured. */
export interface RawBaselineResult {
  /** Records produced and consumed. */
  readonly records: number;
  /** From the first send to the last batch acknowledged, in ms. */
  readonly produceMs: number;
  /** From the first send to the commit covering the last record, in ms. */
  readonly totalMs: number;
  /** Records per second over `totalMs`. */
  readonly recordsPerSecond: number;
  /** Records per second over `produceMs`. */
  readonly produceRecordsPerSecond: number;
}

/**
 * kafkajs's `ssl` and `sasl` from the `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*` and
 * `KAFKA_SSL_*` variables, so the raw clients reach the same secured cluster as the pipeline.
 */
export function rawKafkaSecurity(): Pick<KafkaConfig, "ssl" | "sasl"> {
  const { ssl, sasl } = kafkaClientSecurity(kafkaSecurityFromEnv());
  return { ssl, sasl };
}

/** Runs the baseline; the topic is left for the caller to delete. */
export async function runRawBaseline(options: RawBaselineOptions): Promise<RawBaselineResult> {
  const { brokers, topic, groupId, records, partitions, batchSize, timeoutMs } = options;
  const kafka: Kafka = new kafkajs.Kafka({
    brokers: [...brokers],
    clientId: "bench-raw",
    ...rawKafkaSecurity(),
    // "Coordinator is loading" on a fresh broker is logged at ERROR and retried by kafkajs;
    // real failures reject the calls below.
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }

  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: options.fetchMaxWait ?? 500,
  });
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });

  const joined = Promise.withResolvers<void>();
  const done = Promise.withResolvers<void>();
  consumer.on(consumer.events.GROUP_JOIN, () => joined.resolve());
  const completed = new Map<number, number>();
  let consumed = 0;
  let sinceCommit = 0;
  let commitChain = Promise.resolve();
  const commit = () => {
    const offsets = [...completed].map(([partition, offset]) => ({
      topic,
      partition,
      offset: String(offset),
    }));
    sinceCommit = 0;
    commitChain = commitChain.then(() =>
      offsets.length ? consumer.commitOffsets(offsets) : undefined
    );
    return commitChain;
  };
  const timer = setInterval(() => {
    if (sinceCommit > 0) commit().catch(done.reject);
  }, 100);
  const deadline = setTimeout(
    () =>
      done.reject(
        new PipelineError(
          `Cannot finish the kafkajs baseline within ${timeoutMs} ms: ${consumed} of ` +
            `${records.length} records consumed`,
          { topic },
        ),
      ),
    timeoutMs,
  );

  try {
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: partitions,
      async eachMessage({ partition, message }) {
        // The same shape of work as the pipeline's decode step.
        JSON.parse(message.value?.toString() ?? "null");
        completed.set(partition, Number(message.offset) + 1);
        consumed++;
        if (++sinceCommit >= 500) await commit();
        if (consumed === records.length) {
          await commit();
          done.resolve();
        }
      },
    });
    await Promise.race([joined.promise, done.promise]);

    const started = performance.now();
    for (let at = 0; at < records.length; at += batchSize) {
      const messages: Message[] = records.slice(at, at + batchSize).map((r) => ({
        key: r.key,
        value: r.value,
      }));
      await producer.send({ topic, acks: -1, messages });
    }
    const produceMs = performance.now() - started;
    await done.promise;
    const totalMs = performance.now() - started;
    return {
      records: records.length,
      produceMs: round(produceMs),
      totalMs: round(totalMs),
      recordsPerSecond: round(records.length / (totalMs / 1000), 1),
      produceRecordsPerSecond: round(records.length / (produceMs / 1000), 1),
    };
  } finally {
    clearInterval(timer);
    clearTimeout(deadline);
    await consumer.disconnect();
    await producer.disconnect();
  }
}

/** Options for {@linkcode runRawTransform}. */
export interface RawTransformOptions extends RawBaselineOptions {
  /** The output topic; must not exist. */
  readonly outputTopic: string;
  /**
   * `per-record`: each consumed record's output is sent and awaited before the next (what the
   * pipeline's runner does). `per-batch`: one `sendBatch` per fetched batch, offsets committed
   * after it is acknowledged (at-least-once all the same).
   */
  readonly mode: "per-record" | "per-batch";
}

/**
 * Raw kafkajs consume -> produce -> commit, the shape of the payment stage without the
 * pipeline: how fast kafkajs itself can go with outputs awaited per record or per batch.
 * Input records are produced first (not timed); the clock runs from the group join to the
 * commit covering the last input record.
 */
export async function runRawTransform(options: RawTransformOptions): Promise<RawBaselineResult> {
  const { brokers, topic, outputTopic, groupId, records, partitions, batchSize, timeoutMs } =
    options;
  const kafka: Kafka = new kafkajs.Kafka({
    brokers: [...brokers],
    clientId: "bench-raw-transform",
    ...rawKafkaSecurity(),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [topic, outputTopic].map((name) => ({
        topic: name,
        numPartitions: partitions,
        replicationFactor: 1,
      })),
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  for (let at = 0; at < records.length; at += batchSize) {
    await producer.send({
      topic,
      acks: -1,
      messages: records.slice(at, at + batchSize).map((r) => ({ key: r.key, value: r.value })),
    });
  }
  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: options.fetchMaxWait ?? 500,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const done = Promise.withResolvers<void>();
  const deadline = setTimeout(
    () =>
      done.reject(
        new PipelineError(`Cannot finish the kafkajs transform within ${timeoutMs} ms`, {
          topic,
        }),
      ),
    timeoutMs,
  );
  let consumed = 0;
  const output = (message: KafkaMessage): Message => {
    const order = JSON.parse(message.value?.toString() ?? "null");
    return { key: message.key, value: JSON.stringify({ ...order, status: "succeeded" }) };
  };
  // The clock starts once the member owns its partitions, as in the other phases.
  let started = performance.now();
  consumer.on(consumer.events.GROUP_JOIN, () => started = performance.now());
  try {
    if (options.mode === "per-record") {
      const completed = new Map<number, number>();
      let sinceCommit = 0;
      const commit = () => {
        sinceCommit = 0;
        return consumer.commitOffsets(
          [...completed].map(([partition, offset]) => ({
            topic,
            partition,
            offset: String(offset),
          })),
        );
      };
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: partitions,
        async eachMessage({ partition, message }) {
          await producer.send({ topic: outputTopic, acks: -1, messages: [output(message)] });
          completed.set(partition, Number(message.offset) + 1);
          if (++sinceCommit >= 500) await commit();
          if (++consumed === records.length) {
            await commit();
            done.resolve();
          }
        },
      });
    } else {
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: partitions,
        async eachBatch({ batch }) {
          if (batch.messages.length === 0) return;
          // A fetched batch can pass the broker's 1 MiB record batch limit: send in chunks.
          for (let at = 0; at < batch.messages.length; at += batchSize) {
            await producer.send({
              topic: outputTopic,
              acks: -1,
              messages: batch.messages.slice(at, at + batchSize).map(output),
            });
          }
          const last = batch.messages[batch.messages.length - 1];
          await consumer.commitOffsets([{
            topic,
            partition: batch.partition,
            offset: String(Number(last.offset) + 1),
          }]);
          consumed += batch.messages.length;
          if (consumed >= records.length) done.resolve();
        },
      });
    }
    await done.promise;
    const totalMs = performance.now() - started;
    return {
      records: records.length,
      produceMs: 0,
      totalMs: round(totalMs),
      recordsPerSecond: round(records.length / (totalMs / 1000), 1),
      produceRecordsPerSecond: 0,
    };
  } finally {
    clearTimeout(deadline);
    await consumer.disconnect();
    await producer.disconnect();
  }
}
