/**
 * The options both Kafka transports (kafkajs and @platformatic/kafka) take, and their checks,
 * so both reject the same malformed options with the same {@linkcode ConfigError}. No client
 * library is imported here.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";

/** The options both Kafka transports take (each adds its own). */
export interface KafkaTransportBaseOptions {
  /**
   * The client id the broker sees in its logs and quotas.
   * @default "orders-pipeline"
   */
  readonly clientId?: string;
  /**
   * How long to wait for a TCP connection to a broker, in milliseconds.
   * @default 1000
   */
  readonly connectionTimeout?: number;
  /**
   * How long to wait for a broker to answer a request, in milliseconds.
   * @default 30000
   */
  readonly requestTimeout?: number;
  /**
   * How many times to retry the first connection before reporting the broker unreachable.
   * Kept small so a missing broker is reported in about a second (kafkajs's own default
   * retries take ~11 s).
   * @default 3
   */
  readonly connectRetries?: number;
  /**
   * The replication factor of topics whose `TopicSpec` sets none.
   * @default 1
   */
  readonly replicationFactor?: number;
  /**
   * How long `ensureTopics` waits for new topics to appear in the metadata, in milliseconds.
   * @default 30000
   */
  readonly topicReadyTimeout?: number;
  /**
   * How long the transaction coordinator lets a transaction stay open before it aborts it (and
   * fences its producer), in milliseconds. At most the broker's
   * `transaction.max.timeout.ms` (15 minutes by default).
   * @default 60000
   */
  readonly transactionTimeout?: number;
  /**
   * Consumers commit completed offsets at least this often, in milliseconds (and only when
   * something completed since the last commit). It bounds how long a handled record waits for
   * its offset to be committed: 50 ms keeps the p99 from created to committed within 150 ms at
   * 1 000 orders/s, for at most 20 commit requests a second per member; under load the
   * `commitThreshold` commits first.
   * @default 50
   */
  readonly commitInterval?: number;
  /**
   * Consumers commit as soon as this many records completed since their last commit.
   * @default 500
   */
  readonly commitThreshold?: number;
  /**
   * How long a consumer's fetch waits on the broker for new records, in milliseconds. With
   * kafkajs it also bounds how long `close()` waits for the fetch in progress.
   * @default 500
   */
  readonly fetchMaxWait?: number;
  /**
   * How long the group waits for a silent member (a crashed worker) before it hands the
   * member's partitions to the others, in milliseconds. Brokers accept 6000 to 300000 by
   * default; shorter means faster recovery after a crash, at the price of more rebalances on
   * a loaded machine.
   * @default 10000
   */
  readonly sessionTimeout?: number;
  /**
   * How often a consumer heartbeats, in milliseconds; a third of `sessionTimeout` or less.
   * @default 3000
   */
  readonly heartbeatInterval?: number;
}

/**
 * Checks that a transport option is an integer of at least `min`.
 *
 * @param name The option's name, given as the error's `field`.
 * @param value Its value.
 * @param min The least accepted value: 1 for positive, 0 for non-negative.
 * @returns `value`.
 * @throws {ConfigError} when it is not.
 */
export function checkInteger(name: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min) {
    const kind = min === 0 ? "a non-negative integer" : "a positive integer";
    throw new ConfigError(
      `Cannot create the Kafka transport as '${name}' must be ${kind}: current value is ${value}`,
      { field: name },
    );
  }
  return value;
}

/**
 * Checks the `transactionalId` a transactional producer is asked for.
 *
 * @returns it, when it is a non-empty string.
 * @throws {ConfigError} with field `transactionalId` otherwise.
 */
export function checkTransactionalId(transactionalId: unknown): string {
  if (typeof transactionalId !== "string" || transactionalId.length === 0) {
    throw new ConfigError(
      "Cannot open a transactional producer as 'transactionalId' must be a non-empty " +
        `string: current value is ${JSON.stringify(transactionalId)}`,
      { field: "transactionalId" },
    );
  }
  return transactionalId;
}

/** `value`, or `fallback` when it is `undefined` (as a destructuring default: `null` is kept). */
function orDefault<T>(value: T | undefined, fallback: T): T {
  return value === undefined ? fallback : value;
}

/**
 * Applies the documented defaults of {@linkcode KafkaTransportBaseOptions} and checks each
 * number, in declaration order.
 *
 * @returns every option, defaults applied.
 * @throws {ConfigError} naming the first option that is not a positive integer
 *   (`connectRetries`: a non-negative one).
 */
export function resolveBaseOptions(
  options: KafkaTransportBaseOptions,
): Required<KafkaTransportBaseOptions> {
  const resolved: Required<KafkaTransportBaseOptions> = {
    clientId: orDefault(options.clientId, "orders-pipeline"),
    connectionTimeout: orDefault(options.connectionTimeout, 1000),
    requestTimeout: orDefault(options.requestTimeout, 30000),
    connectRetries: orDefault(options.connectRetries, 3),
    replicationFactor: orDefault(options.replicationFactor, 1),
    topicReadyTimeout: orDefault(options.topicReadyTimeout, 30000),
    transactionTimeout: orDefault(options.transactionTimeout, 60000),
    commitInterval: orDefault(options.commitInterval, 50),
    commitThreshold: orDefault(options.commitThreshold, 500),
    fetchMaxWait: orDefault(options.fetchMaxWait, 500),
    sessionTimeout: orDefault(options.sessionTimeout, 10000),
    heartbeatInterval: orDefault(options.heartbeatInterval, 3000),
  };
  for (const [name, value] of Object.entries(resolved)) {
    if (name !== "clientId") checkInteger(name, value as number, name === "connectRetries" ? 0 : 1);
  }
  return resolved;
}
