/**
 * One way to open the transport on a real broker, whichever Kafka client runs it:
 * `KAFKA_CLIENT=platformatic` (@platformatic/kafka, the default) or `KAFKA_CLIENT=kafkajs`.
 * Every command and supervisor worker opens its broker transport through
 * {@linkcode createBrokerTransport}, so the choice holds everywhere.
 *
 * @example
 * ```ts
 * import { createBrokerTransport } from "./broker.ts";
 * const transport = await createBrokerTransport("127.0.0.1:9092", { client: "platformatic" });
 * console.log(transport.target); // kafka 127.0.0.1:9092 (platformatic)
 * ```
 *
 * @module
 */
import type { KafkaTransportOptions } from "./kafka/mod.ts";
import { type KafkaClientName, parseKafkaClient } from "./kafka_client.ts";
import type { Transport } from "./transport.ts";

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
   * @default "platformatic"
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
 * Opens the broker transport on the chosen client. The client is imported here, on first use,
 * not when this module loads: kafkajs reads the environment and @platformatic/kafka a
 * WebAssembly file when they load, and a program on the embedded transport needs neither
 * permission. Nothing connects until the transport's first call.
 *
 * @param brokers The comma-separated `KAFKA_BROKERS` value.
 * @param options The transport options and `client`.
 * @throws {ConfigError} for a malformed `brokers`, an unknown `client` or a bad option.
 */
export async function createBrokerTransport(
  brokers: string,
  options: BrokerTransportOptions = {},
): Promise<BrokerTransport> {
  const { client, ...rest } = options;
  const chosen = parseKafkaClient(client);
  if (chosen === "platformatic") {
    const { createPlatformaticTransport } = await import("./platformatic/mod.ts");
    // kafkajs's own log level and first-connect timeout have no counterpart there.
    const { logLevel: _logLevel, firstConnectTimeout: _firstConnectTimeout, ...shared } = rest;
    return createPlatformaticTransport(brokers, shared);
  }
  const { createKafkaTransport } = await import("./kafka/mod.ts");
  return createKafkaTransport(brokers, rest);
}
