/**
 * The kafkajs transport: the {@linkcode Transport} contract against Redpanda or any Kafka-API
 * broker given by `KAFKA_BROKERS`.
 *
 * - Producer: idempotent, acks=all, Kafka's murmur2 default partitioning (the embedded
 *   transport partitions the same way), one request per `send`, one report per record.
 * - Transactional producer: kafkajs `transaction()`s with zombie fencing by transactional id
 *   (see `_transactional_producer.ts`).
 * - Consumer: kafkajs with `autoCommit: false`, `read_committed` unless asked otherwise; this transport commits completed offsets in
 *   batches, on rebalance and on close (at-least-once; see `_consumer.ts`).
 * - Unreachable brokers fail fast with a {@linkcode BrokerUnavailableError} naming
 *   `KAFKA_BROKERS`, instead of kafkajs's ~11 s of default retries.
 * - Secured clusters: TLS and SASL (PLAIN, SCRAM, OAUTHBEARER client credentials) from the
 *   `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*` and `KAFKA_SSL_*` variables (`./security.ts`);
 *   a wrong password, an untrusted certificate or a protocol mismatch fails the first call
 *   with a `KafkaSecurityError` naming the variable to fix, and no secret reaches a log line.
 *
 * @example
 * ```ts
 * import { createKafkaTransport } from "./mod.ts";
 * const transport = createKafkaTransport(Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092");
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
import kafkajs from "kafkajs";
import type { Admin, Kafka, KafkaConfig } from "kafkajs";
import { BrokerUnavailableError, PipelineError } from "../../errors.ts";
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
import { committedOffsets, endOffsets, ensureTopics } from "./_admin.ts";
import { logTopicWarning, type TopicWarning } from "../_topic_spec.ts";
import { openConsumer } from "./_consumer.ts";
import { readPartitions } from "./_read_partitions.ts";
import { brokerUnavailable, toPipelineError } from "./_errors.ts";
import { BROKERS_FIELD, parseBrokers } from "../_brokers.ts";
import { checkInteger, checkTransactionalId, resolveBaseOptions } from "../_transport_options.ts";
import type { KafkaTransportBaseOptions } from "../_transport_options.ts";
import { createLogCreator, defaultKafkaLogger, kafkaLevel } from "./_logger.ts";
import type { KafkaLogger, KafkaLogLevel } from "./_logger.ts";
import { openProducer } from "./_producer.ts";
import { openTransactionalProducer } from "./_transactional_producer.ts";
import { dropTimeoutNegativeWarnings } from "./deno_warnings.ts";
import {
  describeSecurity,
  kafkaClientSecurity,
  kafkaSecurityFromEnv,
  usesTls,
} from "./security.ts";
import { securityFailure } from "./_security_failure.ts";
import type { KafkaSecurity } from "./security.ts";

export { dropTimeoutNegativeWarnings };
/** Splits and checks a comma-separated `KAFKA_BROKERS` value (shared by both Kafka transports). */
export { parseBrokers };

export type { KafkaLogger, KafkaLogLevel, KafkaLogRecord } from "./_logger.ts";
export { defaultKafkaLogger };
export type { TopicWarning };
export type { KafkaTransportBaseOptions };

export { BrokerUnavailableError };
export {
  describeSecurity,
  kafkaClientSecurity,
  KafkaSecurityError,
  kafkaSecurityFromEnv,
  parseKafkaSecurity,
} from "./security.ts";
export type { KafkaClientSecurity, KafkaSecurity } from "./security.ts";

/** Options for {@linkcode createKafkaTransport}. */
export interface KafkaTransportOptions extends KafkaTransportBaseOptions {
  /**
   * Receives a warning for each existing topic that has fewer partitions or replicas than its
   * {@linkcode TopicSpec} declares (the topic is used as it is).
   * @default a `pipeline.transport` warning log line (stderr when logging is not configured)
   */
  readonly onTopicWarning?: (warning: TopicWarning) => void;
  /**
   * How a consumer backs off after a handler rejected (the record is fetched again after the
   * delay) or a group request failed; after `retries` failures kafkajs restarts the member,
   * which rejoins its group. Every partition of the member waits during the backoff.
   * @default { retries: 5, initialRetryTime: 300, maxRetryTime: 30000 }
   */
  readonly consumerRetry?: ConsumerRetryOptions;
  /**
   * Receives kafkajs's log lines at `logLevel` and above, SASL passwords redacted.
   * @default writes each line to stderr as `kafkajs <namespace>: <message> {fields}`
   */
  readonly logger?: KafkaLogger;
  /**
   * The least severe kafkajs log level passed to `logger`.
   * @default "warn"
   */
  readonly logLevel?: KafkaLogLevel;
  /**
   * TLS and SASL: how the client connects and authenticates (see `./security.ts`). Its
   * secrets never reach the logger or an error message.
   * @default kafkaSecurityFromEnv(): the `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*` and
   *   `KAFKA_SSL_*` variables, read when the transport is created (PLAINTEXT when unset)
   */
  readonly security?: KafkaSecurity;
  /**
   * How long the first connection (TCP, TLS handshake, SASL) may take before it is reported,
   * in milliseconds: a listener that never answers the client's protocol fails in this time.
   * @default 15000
   */
  readonly firstConnectTimeout?: number;
}

/** Backoff settings for a consumer, as kafkajs takes them. */
export interface ConsumerRetryOptions {
  /**
   * Failures in a row before kafkajs restarts the member.
   * @default 5
   */
  readonly retries?: number;
  /**
   * The first delay, in milliseconds; each next one doubles, with 20% jitter.
   * @default 300
   */
  readonly initialRetryTime?: number;
  /**
   * The longest delay, in milliseconds.
   * @default 30000
   */
  readonly maxRetryTime?: number;
}

/** A {@linkcode Transport} backed by kafkajs. */
export interface KafkaTransport extends Transport {
  /** Always `"kafka"`. */
  readonly kind: "kafka";
  /** The bootstrap brokers, parsed from the `KAFKA_BROKERS` value. */
  readonly brokers: readonly string[];
}

/**
 * Creates the kafkajs transport. Nothing connects until the first call; a broker that cannot
 * be reached then fails that call with a {@linkcode BrokerUnavailableError} whose `field` is
 * `KAFKA_BROKERS`.
 *
 * @param brokers The comma-separated `KAFKA_BROKERS` value, e.g. `127.0.0.1:9092`.
 * @param options Timeouts, commit batching, logging, TLS and SASL.
 * @throws {ConfigError} when `brokers` or an option is malformed.
 *
 * @example
 * ```ts
 * import { createKafkaTransport } from "./mod.ts";
 * const transport = createKafkaTransport("127.0.0.1:9092", { clientId: "payments" });
 * console.log(transport.target); // kafka 127.0.0.1:9092
 * ```
 */
export function createKafkaTransport(
  brokers: string,
  options: KafkaTransportOptions = {},
): KafkaTransport {
  const {
    onTopicWarning = logTopicWarning,
    consumerRetry = {},
    logger = defaultKafkaLogger,
    logLevel = "warn",
    firstConnectTimeout = 15000,
  } = options;
  const list = parseBrokers(brokers);
  const security = options.security ?? kafkaSecurityFromEnv();
  dropTimeoutNegativeWarnings();
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
  checkInteger("firstConnectTimeout", firstConnectTimeout);
  for (const [name, value] of Object.entries(consumerRetry)) {
    if (value !== undefined) {
      checkInteger(`consumerRetry.${name}`, value, name === "retries" ? 0 : 1);
    }
  }

  const { ssl, sasl, secrets } = kafkaClientSecurity(security);
  const base: KafkaConfig = {
    brokers: list,
    clientId,
    connectionTimeout,
    requestTimeout,
    ssl,
    sasl,
    logLevel: kafkaLevel(logLevel),
    logCreator: createLogCreator(logger, secrets),
  };
  // Admin calls and the first connection retry briefly, so a missing broker is reported in
  // about a second; producers and consumers keep kafkajs's patient defaults once it answered.
  const quick = new kafkajs.Kafka({
    ...base,
    retry: { retries: connectRetries, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  const patient: Kafka = new kafkajs.Kafka(base);
  const admin: Admin = quick.admin();
  let connected: Promise<void> | undefined;
  let closed = false;

  /**
   * Connects the admin client once, within `firstConnectTimeout`; a failure is reported (as a
   * {@linkcode KafkaSecurityError} when the security settings are at fault) and forgotten, so
   * calls retry.
   */
  function reachable(): Promise<void> {
    if (closed) {
      return Promise.reject(new PipelineError("Cannot use the Kafka transport: it is closed"));
    }
    connected ??= connectWithin(admin, firstConnectTimeout).catch((error) => {
      connected = undefined;
      if (error instanceof FirstConnectTimeout) {
        // kafkajs may still be retrying; stop it so nothing connects behind our back.
        admin.disconnect().catch(() => undefined);
        throw firstConnectTimedOut(list, security, firstConnectTimeout);
      }
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
      ? `kafka ${list.join(",")}`
      : `kafka ${list.join(",")} (${describeSecurity(security)})`,
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
      return openProducer(patient, list);
    },
    async transactionalProducer(
      producerOptions: TransactionalProducerOptions,
    ): Promise<TransactionalProducer> {
      const transactionalId = checkTransactionalId(producerOptions.transactionalId);
      await reachable();
      return openTransactionalProducer(patient, list, { transactionalId, transactionTimeout });
    },
    async consumer(consumerOptions: ConsumerOptions): Promise<Consumer> {
      await reachable();
      return openConsumer(patient, list, consumerOptions, {
        commitInterval,
        commitThreshold,
        fetchMaxWait,
        sessionTimeout,
        heartbeatInterval,
        retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 30000, ...consumerRetry },
        logger,
      });
    },
    endOffsets(topic: string): Promise<TopicOffsets> {
      return adminCall(
        `Cannot read the end offsets of topic "${topic}"`,
        () => endOffsets(admin, topic),
        topic,
      );
    },
    async readPartitions(
      topic: string,
      partitions: readonly number[],
      each: (record: ConsumedRecord) => void,
      signal?: AbortSignal,
    ): Promise<void> {
      await reachable();
      await readPartitions(patient, admin, list, { clientId, topic, partitions, each, signal });
    },
    committedOffsets(groupId: string, topic: string): Promise<PartitionOffset[]> {
      return adminCall(
        `Cannot read the offsets group "${groupId}" committed on topic "${topic}"`,
        () => committedOffsets(admin, groupId, topic),
        topic,
      );
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      const wasConnected = connected;
      connected = undefined;
      if (wasConnected) {
        await wasConnected.catch(() => undefined);
        await admin.disconnect();
      }
    },
  };
}

/** The first connection did not settle in time. */
class FirstConnectTimeout extends Error {}

/** `admin.connect()`, rejected with {@linkcode FirstConnectTimeout} after `timeoutMs`. */
async function connectWithin(admin: Admin, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FirstConnectTimeout()), timeoutMs);
  });
  try {
    await Promise.race([admin.connect(), late]);
  } finally {
    clearTimeout(timer);
  }
}

function firstConnectTimedOut(
  brokers: readonly string[],
  security: KafkaSecurity,
  timeoutMs: number,
): PipelineError {
  const where = `"${brokers.join(",")}"`;
  const hint = !usesTls(security.protocol)
    ? `; a TLS listener may be waiting for a handshake: if so, set KAFKA_SECURITY_PROTOCOL ` +
      `to SSL or SASL_SSL`
    : "";
  return new BrokerUnavailableError(
    `Cannot connect to Kafka at ${where} given by ${BROKERS_FIELD} with ` +
      `KAFKA_SECURITY_PROTOCOL "${security.protocol}": no answer within ${timeoutMs} ms${hint}`,
    { field: BROKERS_FIELD },
  );
}
