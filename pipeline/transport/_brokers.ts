/**
 * The `KAFKA_BROKERS` value shared by the Kafka transports (kafkajs and @platformatic/kafka):
 * parsing the broker list and the error for brokers that cannot be reached. No client library
 * is imported here, so either transport loads only its own client.
 *
 * @module
 */
import { BrokerUnavailableError, ConfigError } from "../errors.ts";

/** The environment variable the broker list comes from, named in every connection error. */
export const BROKERS_FIELD = "KAFKA_BROKERS";

const BROKER_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[^\s:,\[\]]+):(\d{1,5})$/;

/**
 * Splits and checks a comma-separated `KAFKA_BROKERS` value.
 *
 * @throws {ConfigError} naming `KAFKA_BROKERS` when an entry is not `host:port`.
 */
export function parseBrokers(value: string): string[] {
  const brokers = value.split(",").map((broker) => broker.trim()).filter((broker) => broker);
  if (brokers.length === 0) {
    throw new ConfigError(
      `Cannot use ${BROKERS_FIELD} as "${value}": expected host:port[,host:port...]`,
      { field: BROKERS_FIELD },
    );
  }
  for (const broker of brokers) {
    const match = BROKER_PATTERN.exec(broker);
    const port = match ? Number(match[2]) : 0;
    if (!match || port < 1 || port > 65535) {
      throw new ConfigError(
        `Cannot use ${BROKERS_FIELD} as "${value}": "${broker}" is not host:port`,
        { field: BROKERS_FIELD },
      );
    }
  }
  return brokers;
}

/**
 * The error for brokers that cannot be reached, naming `KAFKA_BROKERS` and what to do.
 *
 * @param brokers The bootstrap brokers that did not answer.
 * @param detail Why, in a few lowercase words (e.g. `connect ECONNREFUSED`), from the client.
 * @param cause The client's error.
 */
export function brokerUnavailableError(
  brokers: readonly string[],
  detail: string,
  cause: unknown,
): BrokerUnavailableError {
  const where = brokers.length === 1
    ? `Kafka broker at "${brokers[0]}"`
    : `any Kafka broker of "${brokers.join(",")}"`;
  return new BrokerUnavailableError(
    `Cannot reach ${where} given by ${BROKERS_FIELD}: ${detail}; ` +
      `start one with 'deno task broker' or point ${BROKERS_FIELD} at a running broker`,
    { cause, field: BROKERS_FIELD },
  );
}
