/**
 * The @platformatic/kafka transport: the {@linkcode Transport} contract on a maintained,
 * pure-TypeScript Kafka client, against any Kafka-API broker given by `KAFKA_BROKERS`. Chosen
 * over the kafkajs one with `KAFKA_CLIENT=platformatic` (see `../factory.ts`).
 *
 * - Producer: idempotent, acks=all, Kafka's murmur2 partitioning computed once per record
 *   (where the Java client and kafkajs put a key), one delivery report per record; a failed
 *   request starts a fresh producer id (`_producer.ts`).
 * - Transactional producer: client transactions with zombie fencing by transactional id,
 *   fencing reported as {@linkcode ProducerFencedError} (`_transactional_producer.ts`).
 * - Consumer: `autocommit: false`, `read_committed` unless asked otherwise, pipelined
 *   `RecordAck`s bounded by `maxPendingPerPartition`, the durable prefix committed in batches,
 *   on rebalance and on close (`_consumer.ts`, bookkeeping in `_offsets.ts`). The client
 *   heartbeats on its own timer, so slow handlers keep their membership.
 * - `read_committed` reads (consumers and restores) drop every aborted record, also those the
 *   client 2.12.1 lets through when a fetch ends before the abort's marker
 *   (`_aborted_records.ts`).
 * - Unreachable brokers fail fast with a {@linkcode BrokerUnavailableError} naming
 *   `KAFKA_BROKERS`.
 * - Secured clusters: TLS and SASL (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER client credentials)
 *   from the same `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*` and `KAFKA_SSL_*` variables as the
 *   kafkajs transport, parsed by the same parser (`../_security.ts`, mapped in
 *   `_security.ts`); a wrong password, an untrusted certificate or a protocol mismatch fails
 *   the first call with the same `KafkaSecurityError` naming the variable to fix.
 *
 * @example
 * ```ts ignore
 * import { createPlatformaticTransport } from "./mod.ts";
 * const transport = createPlatformaticTransport("127.0.0.1:9092");
 * await transport.ensureTopics([{ name: "orders", partitions: 3 }]);
 * const producer = await transport.producer();
 * const [report] = await producer.send([{ topic: "orders", key: "o-1", value: "{}" }]);
 * console.log(report.partition, report.offset);
 * await producer.close();
 * await transport.close();
 * ```
 *
 * @module
 */
import { Admin } from "@platformatic/kafka";
import { BrokerUnavailableError, PipelineError } from "../../errors.ts";
import type { KafkaLogger } from "../kafka/mod.ts";
import { defaultKafkaLogger } from "../kafka/mod.ts";
import { parseBrokers } from "../_brokers.ts";
import { checkInteger, checkTransactionalId, resolveBaseOptions } from "../_transport_options.ts";
import type { KafkaTransportBaseOptions } from "../_transport_options.ts";
import type {
  ConsumedRecord,
  Consumer,
  ConsumerOptions,
  PartitionOffset,
  Producer,
  TopicOffsets,
  TopicSpec,
  TransactionalProducer,
  TransactionalProducerOptions,
  Transport,
} from "../transport.ts";
import { committedOffsets, endOffsets, ensureTopics, groupCoordinator } from "./_admin.ts";
import { type ClientBase, openConsumer } from "./_consumer.ts";
import { dropAbortedRecords } from "./_aborted_records.ts";
import { brokerUnavailable, toPipelineError } from "./_errors.ts";
import { openProducer } from "./_producer.ts";
import { readPartitions } from "./_read_partitions.ts";
import { openTransactionalProducer } from "./_transactional_producer.ts";
import { describeSecurity, type KafkaSecurity, kafkaSecurityFromEnv } from "../_security.ts";
import { logTopicWarning, type TopicWarning } from "../_topic_spec.ts";
import { redactSecrets } from "../_security_failure.ts";
import { platformaticClientSecurity, securityFailure } from "./_security.ts";

export { BrokerUnavailableError };
export type { KafkaTransportBaseOptions };
export { platformaticClientSecurity };
export type { PlatformaticClientSecurity, PlatformaticClientSecurityOptions } from "./_security.ts";

/** Options for {@linkcode createPlatformaticTransport}. */
export interface PlatformaticTransportOptions extends KafkaTransportBaseOptions {
  /**
   * The backoff after a handler rejected: the first delay and the longest, in milliseconds
   * (each next one doubles). `retries` is accepted for symmetry with kafkajs and ignored: the
   * record is delivered again until it succeeds.
   * @default { initialRetryTime: 300, maxRetryTime: 30000 }
   */
  readonly consumerRetry?: {
    readonly retries?: number;
    readonly initialRetryTime?: number;
    readonly maxRetryTime?: number;
  };
  /**
   * Receives a warning for each existing topic that has fewer partitions or replicas than its
   * {@linkcode TopicSpec} declares (the topic is used as it is), as on the kafkajs transport.
   * @default a `pipeline.transport` warning log line (stderr when logging is not configured)
   */
  readonly onTopicWarning?: (warning: TopicWarning) => void;
  /**
   * Receives the consumer's warnings (commit failures nobody awaits, rewinds).
   * @default the kafkajs transport's logger: JSON lines through the framework's logger
   */
  readonly logger?: KafkaLogger;
  /**
   * TLS and SASL: how the client connects and authenticates (see `../_security.ts`). Its
   * secrets never reach the logger or an error message.
   * @default kafkaSecurityFromEnv(): the `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*` and
   *   `KAFKA_SSL_*` variables, read when the transport is created (PLAINTEXT when unset)
   */
  readonly security?: KafkaSecurity;
}

/** A {@linkcode Transport} backed by @platformatic/kafka. */
export interface PlatformaticTransport extends Transport {
  /** Always `"kafka"`: the same broker kind as the kafkajs transport. */
  readonly kind: "kafka";
  /** The bootstrap brokers, parsed from the `KAFKA_BROKERS` value. */
  readonly brokers: readonly string[];
}

/**
 * Creates the @platformatic/kafka transport. Nothing connects until the first call; a broker
 * that cannot be reached then fails that call with a {@linkcode BrokerUnavailableError} whose
 * `field` is `KAFKA_BROKERS`.
 *
 * @param brokers The comma-separated `KAFKA_BROKERS` value, e.g. `127.0.0.1:9092`.
 * @param options Timeouts, commit batching, logging, TLS and SASL.
 * @throws {ConfigError} when `brokers` or an option is malformed.
 */
export function createPlatformaticTransport(
  brokers: string,
  options: PlatformaticTransportOptions = {},
): PlatformaticTransport {
  const {
    consumerRetry = {},
    logger = defaultKafkaLogger,
    onTopicWarning = logTopicWarning,
  } = options;
  const list = parseBrokers(brokers);
  const security = options.security ?? kafkaSecurityFromEnv();
  dropAbortedRecords();
  const {
    clientId,
    connectionTimeout,
    requestTimeout,
    connectRetries,
    replicationFactor,
    topicReadyTimeout,
    transactionTimeout,
    commitInterval,
    commitThreshold,
    fetchMaxWait,
    sessionTimeout,
    heartbeatInterval,
  } = resolveBaseOptions(options);
  const { initialRetryTime = 300, maxRetryTime = 30000 } = consumerRetry;
  checkInteger("consumerRetry.initialRetryTime", initialRetryTime);
  checkInteger("consumerRetry.maxRetryTime", maxRetryTime);
  const { tls, sasl, secrets } = platformaticClientSecurity(security);

  const base: ClientBase = {
    clientId,
    bootstrapBrokers: list,
    connectTimeout: connectionTimeout,
    requestTimeout,
    timeout: requestTimeout,
    retries: 5,
    retryDelay: 200,
    ...(tls === undefined ? {} : { tls }),
    ...(sasl === undefined ? {} : { sasl }),
  };
  // Admin calls retry briefly, so a missing broker is reported in about a second.
  const admin = new Admin({ ...base, retries: connectRetries, retryDelay: 100 });
  let connected: Promise<void> | undefined;
  let closed = false;

  function reachable(): Promise<void> {
    if (closed) {
      return Promise.reject(new PipelineError("Cannot use the Kafka transport: it is closed"));
    }
    connected ??= admin.metadata({ topics: [] }).then(() => undefined, (error) => {
      connected = undefined;
      throw securityFailure(error, security, list) ?? brokerUnavailable(list, error);
    });
    return connected;
  }

  async function adminCall<T>(what: string, call: () => Promise<T>, topic?: string): Promise<T> {
    await reachable();
    try {
      return await call();
    } catch (error) {
      throw toPipelineError(what, list, error, { topic });
    }
  }

  return {
    kind: "kafka",
    target: security.protocol === "PLAINTEXT"
      ? `kafka ${list.join(",")} (platformatic)`
      : `kafka ${list.join(",")} (platformatic, ${describeSecurity(security)})`,
    brokers: list,
    ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
      const names = topics.map((topic) => `"${topic.name}"`).join(", ");
      return adminCall(
        `Cannot create topics ${names}`,
        () =>
          ensureTopics(admin, topics, {
            replicationFactor,
            readyTimeout: topicReadyTimeout,
            onWarning: onTopicWarning,
          }),
        topics[0]?.name,
      );
    },
    async producer(): Promise<Producer> {
      await reachable();
      return openProducer(base as Parameters<typeof openProducer>[0], list);
    },
    async transactionalProducer(
      producerOptions: TransactionalProducerOptions,
    ): Promise<TransactionalProducer> {
      const transactionalId = checkTransactionalId(producerOptions.transactionalId);
      await reachable();
      return openTransactionalProducer(base as Parameters<typeof openProducer>[0], list, {
        transactionalId,
        transactionTimeout,
        groupCoordinator: (groupId) => groupCoordinator(admin, groupId),
      });
    },
    async consumer(consumerOptions: ConsumerOptions): Promise<Consumer> {
      await reachable();
      return openConsumer(base, list, consumerOptions, {
        commitInterval,
        commitThreshold,
        fetchMaxWait,
        sessionTimeout,
        heartbeatInterval,
        initialRetryTime,
        maxRetryTime,
        // Read at each line: OAUTHBEARER tokens join `secrets` as they are fetched.
        logger: (line) =>
          logger({
            ...line,
            namespace: "Transport",
            message: redactSecrets(line.message, secrets),
            fields: Object.fromEntries(
              Object.entries(line.fields).map(([name, value]) => [
                name,
                typeof value === "string" ? redactSecrets(value, secrets) : value,
              ]),
            ),
          }),
      });
    },
    endOffsets(topic: string): Promise<TopicOffsets> {
      return adminCall(
        `Cannot read the end offsets of topic "${topic}"`,
        () => endOffsets(admin, topic),
        topic,
      );
    },
    committedOffsets(groupId: string, topic: string): Promise<PartitionOffset[]> {
      return adminCall(
        `Cannot read the offsets group "${groupId}" committed on topic "${topic}"`,
        () => committedOffsets(admin, groupId, topic),
        topic,
      );
    },
    async readPartitions(
      topic: string,
      partitions: readonly number[],
      each: (record: ConsumedRecord) => void,
      signal?: AbortSignal,
    ): Promise<void> {
      const offsets = await adminCall(
        `Cannot read the end offsets of topic "${topic}"`,
        () => endOffsets(admin, topic),
        topic,
      );
      await readPartitions(base, list, offsets, { topic, partitions, each, signal });
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      connected = undefined;
      await admin.close().catch(() => undefined);
    },
  };
}
