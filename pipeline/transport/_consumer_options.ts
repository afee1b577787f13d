/**
 * The {@linkcode ConsumerOptions} checks shared by the Kafka transports (kafkajs and
 * @platformatic/kafka): both reject the same malformed options with the same
 * {@linkcode ConfigError}. No client library is imported here.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import type { ConsumerOptions } from "./transport.ts";
import {
  DEFAULT_ISOLATION,
  DEFAULT_MAX_PENDING_PER_PARTITION,
  ISOLATION_LEVELS,
} from "./transport.ts";

/** The checked bounds of a consumer, defaults applied. */
export interface ConsumerBounds {
  /** How many partitions are handled at the same time. */
  readonly concurrency: number;
  /** How many records of a partition may be in flight at once. */
  readonly maxPending: number;
}

/**
 * Checks a consumer's options before it joins its group.
 *
 * @returns `partitionConcurrency` and `maxPendingPerPartition`, defaults applied.
 * @throws {ConfigError} naming the option when `maxPendingPerPartition` or
 *   `partitionConcurrency` is not a positive integer, `isolation` is unknown or `topics` is
 *   empty.
 */
export function validateConsumerOptions(options: ConsumerOptions): ConsumerBounds {
  const concurrency = options.partitionConcurrency ?? 1;
  const maxPending = options.maxPendingPerPartition ?? DEFAULT_MAX_PENDING_PER_PARTITION;
  if (!Number.isSafeInteger(maxPending) || maxPending < 1) {
    throw new ConfigError(
      `Cannot start consumer of group "${options.groupId}" as 'maxPendingPerPartition' must be ` +
        `a positive integer: current value is ${maxPending}`,
      { field: "maxPendingPerPartition" },
    );
  }
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new ConfigError(
      `Cannot start consumer of group "${options.groupId}" as 'partitionConcurrency' must be ` +
        `a positive integer: current value is ${concurrency}`,
      { field: "partitionConcurrency" },
    );
  }
  const isolation = options.isolation ?? DEFAULT_ISOLATION;
  if (!ISOLATION_LEVELS.includes(isolation)) {
    throw new ConfigError(
      `Cannot start consumer of group "${options.groupId}" as 'isolation' must be one of ` +
        `${ISOLATION_LEVELS.map((level) => `"${level}"`).join(", ")}: current value is ` +
        `${JSON.stringify(isolation)}`,
      { field: "isolation" },
    );
  }
  if (options.topics.length === 0) {
    throw new ConfigError(
      `Cannot start consumer of group "${options.groupId}" as 'topics' is empty`,
      { field: "topics" },
    );
  }
  return { concurrency, maxPending };
}

/**
 * At most this many bytes per partition in one fetch of a whole-partition read (a state
 * restore); the broker still returns a first record batch larger than this, so in effect about
 * one producer batch a partition a fetch. A restore decodes every record it fetches before the
 * next fetch: a fetch of tens of MiB of small changelog records becomes hundreds of thousands of
 * objects alive at once, which V8 promotes to its old space and grows its heap for, and gives
 * back only when its memory reducer runs, half a minute after the restore or later. Measured on
 * 480 000 changelog records (entries and their tombstones), RSS right after the restore and its
 * time, kafkajs / @platformatic/kafka: the clients' defaults (16 MiB / 50 MiB) 433 / 579 MiB in
 * 1.9 / 2.1 s; 256 KiB 285 / 359 MiB; 16 KiB 156 / 150 MiB in 2.4 / 1.6 s; 1 KiB 132 / 144 MiB
 * in 3.3 / 2.1 s.
 */
export const READ_FETCH_PARTITION_BYTES = 16 * 1024;
/** At most this many bytes in one fetch of a whole-partition read; see above. */
export const READ_FETCH_BYTES = 64 * 1024;
