/**
 * The names of the Kafka clients the broker transport runs on, and the check of a
 * `KAFKA_CLIENT` value. Imports no client, so configuration code can use it without loading
 * kafkajs (which reads `NODE_ENV` when imported).
 *
 * @module
 */
import { ConfigError } from "../errors.ts";

/** A Kafka client the broker transport can run on. */
export type KafkaClientName = "kafkajs" | "platformatic";

/** Every {@linkcode KafkaClientName}, for validation and help texts. */
export const KAFKA_CLIENTS: readonly KafkaClientName[] = ["kafkajs", "platformatic"];

/**
 * The client used when none is chosen: @platformatic/kafka, which passes the fault suite and
 * costs less CPU per record than kafkajs (README, "Kafka clients").
 */
export const DEFAULT_KAFKA_CLIENT: KafkaClientName = "platformatic";

/** The environment variable that chooses the client. */
export const KAFKA_CLIENT_FIELD = "KAFKA_CLIENT";

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
