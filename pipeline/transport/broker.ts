/**
 * One way to open the transport on a real broker, whichever Kafka client runs it:
 * `KAFKA_CLIENT=kafkajs` (the default for now) or `KAFKA_CLIENT=platformatic`. Every command and
 * supervisor worker opens its broker transport through {@linkcode createBrokerTransport}, so
 * the choice holds everywhere.
 *
 * @example
 * ```ts
 * import { createBrokerTransport } from "./broker.ts";
 * const transport = createBrokerTransport("127.0.0.1:9092", { client: "platformatic" });
 * console.log(transport.target); // kafka 127.0.0.1:9092 (platformatic)
 * ```
 *
 * @module
 */
import { createKafkaTransport, type KafkaTransportOptions, parseBrokers } from "./kafka/mod.ts";
import { type KafkaClientName, parseKafkaClient } from "./kafka_client.ts";
import type { PlatformaticTransport, PlatformaticTransportOptions } from "./platformatic/mod.ts";
import type {
  Consumer,
  ConsumerOptions,
  PartitionOffset,
  Producer,
  TopicOffsets,
  TopicSpec,
  TransactionalProducer,
  TransactionalProducerOptions,
  Transport,
} from "./transport.ts";

export {
  DEFAULT_KAFKA_CLIENT,
  KAFKA_CLIENT_FIELD,
  KAFKA_CLIENTS,
  type KafkaClientName,
  parseKafkaClient,
} from "./kafka_client.ts";

/** Options for {@linkcode createBrokerTransport}: the kafkajs transport's, and the client. */
export interface BrokerTransportOptions extends KafkaTransportOptions {
  /**
   * The Kafka client: `kafkajs` or `platformatic` (@platformatic/kafka). Both pass the same
   * transport contract; options one client has no use for are ignored by it.
   * @default "kafkajs"
   */
  readonly client?: KafkaClientName;
}

/** A transport on a real broker, as either client opens it. */
export interface BrokerTransport extends Transport {
  /** Always `"kafka"`. */
  readonly kind: "kafka";
  /** The bootstrap brokers, parsed from the `KAFKA_BROKERS` value. */
  readonly brokers: readonly string[];
}

/**
 * Opens the broker transport on the chosen client. Nothing connects until the first call.
 *
 * @param brokers The comma-separated `KAFKA_BROKERS` value.
 * @param options The transport options and `client`.
 * @throws {ConfigError} for a malformed `brokers`, an unknown `client` or a bad option (on
 * the platformatic client, a bad option other than `brokers` rejects the first call instead).
 */
export function createBrokerTransport(
  brokers: string,
  options: BrokerTransportOptions = {},
): BrokerTransport {
  const { client, ...rest } = options;
  const chosen = parseKafkaClient(client);
  if (chosen === "platformatic") {
    const { ssl, logLevel: _logLevel, ...shared } = rest;
    return lazyPlatformatic(brokers, {
      ...shared,
      // kafkajs takes Node TLS options or `true`; so does @platformatic/kafka's `tls`.
      ssl: ssl as boolean | Record<string, unknown> | undefined,
    });
  }
  return createKafkaTransport(brokers, rest);
}

/**
 * The platformatic transport, loaded on first use: @platformatic/kafka reads a WebAssembly file
 * when imported, which would make every command need `--allow-read` (and load the client) even
 * on kafkajs. `KAFKA_BROKERS` is checked at once; the other options on the first call.
 */
function lazyPlatformatic(
  brokers: string,
  options: PlatformaticTransportOptions,
): BrokerTransport {
  const list = parseBrokers(brokers);
  let loaded: Promise<PlatformaticTransport> | undefined;
  let closed = false;
  const open = (): Promise<PlatformaticTransport> =>
    loaded ??= import("./platformatic/mod.ts").then((module) =>
      module.createPlatformaticTransport(brokers, options)
    );
  return {
    kind: "kafka",
    target: `kafka ${list.join(",")} (platformatic)`,
    brokers: list,
    async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
      return (await open()).ensureTopics(topics);
    },
    async producer(): Promise<Producer> {
      return (await open()).producer();
    },
    async transactionalProducer(
      producerOptions: TransactionalProducerOptions,
    ): Promise<TransactionalProducer> {
      return (await open()).transactionalProducer(producerOptions);
    },
    async consumer(consumerOptions: ConsumerOptions): Promise<Consumer> {
      return (await open()).consumer(consumerOptions);
    },
    async endOffsets(topic: string): Promise<TopicOffsets> {
      return (await open()).endOffsets(topic);
    },
    async committedOffsets(groupId: string, topic: string): Promise<PartitionOffset[]> {
      return (await open()).committedOffsets(groupId, topic);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (loaded !== undefined) await (await loaded).close();
    },
  };
}
