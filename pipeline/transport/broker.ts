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
import { ConfigError } from "../errors.ts";
import { createKafkaTransport, type KafkaTransportOptions } from "./kafka/mod.ts";
import { createPlatformaticTransport } from "./platformatic/mod.ts";
import type { Transport } from "./transport.ts";

/** A Kafka client the broker transport can run on. */
export type KafkaClientName = "kafkajs" | "platformatic";

/** Every {@linkcode KafkaClientName}, for validation and help texts. */
export const KAFKA_CLIENTS: readonly KafkaClientName[] = ["kafkajs", "platformatic"];

/** The client used when none is chosen. */
export const DEFAULT_KAFKA_CLIENT: KafkaClientName = "kafkajs";

/** The environment variable that chooses the client. */
export const KAFKA_CLIENT_FIELD = "KAFKA_CLIENT";

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
 * Checks a `KAFKA_CLIENT` value.
 *
 * @throws {ConfigError} naming `KAFKA_CLIENT` and the accepted values.
 */
export function parseKafkaClient(value: string | undefined): KafkaClientName {
  if (value === undefined || value === "") return DEFAULT_KAFKA_CLIENT;
  if ((KAFKA_CLIENTS as readonly string[]).includes(value)) return value as KafkaClientName;
  throw new ConfigError(
    `Cannot use ${KAFKA_CLIENT_FIELD} as it must be one of ` +
      `${KAFKA_CLIENTS.map((name) => `"${name}"`).join(", ")}: current value is ` +
      JSON.stringify(value),
    { field: KAFKA_CLIENT_FIELD },
  );
}

/**
 * Opens the broker transport on the chosen client. Nothing connects until the first call.
 *
 * @param brokers The comma-separated `KAFKA_BROKERS` value.
 * @param options The transport options and `client`.
 * @throws {ConfigError} for a malformed `brokers`, an unknown `client` or a bad option.
 */
export function createBrokerTransport(
  brokers: string,
  options: BrokerTransportOptions = {},
): BrokerTransport {
  const { client, ...rest } = options;
  const chosen = parseKafkaClient(client);
  if (chosen === "platformatic") {
    const { ssl, logLevel: _logLevel, ...shared } = rest;
    return createPlatformaticTransport(brokers, {
      ...shared,
      // kafkajs takes Node TLS options or `true`; so does @platformatic/kafka's `tls`.
      ssl: ssl as boolean | Record<string, unknown> | undefined,
    });
  }
  return createKafkaTransport(brokers, rest);
}
