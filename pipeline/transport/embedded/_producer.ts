/**
 * The embedded producer: picks each record's partition as Kafka's default partitioner does
 * (murmur2 of the key, round-robin per topic without a key) and appends a copy of it.
 *
 * @module
 */

import { PipelineError } from "../../errors.ts";
import { partitionForKey } from "../murmur2.ts";
import type { DeliveryReport, OutgoingRecord, Producer } from "../transport.ts";
import type { LogStore, TransactionMarker } from "./_log.ts";

const encoder = new TextEncoder();

function toBytes(data: Uint8Array | string | null): Uint8Array | null {
  if (data === null) return null;
  // Copying keeps the log's bytes safe from a caller who reuses its buffer.
  return typeof data === "string" ? encoder.encode(data) : data.slice();
}

/** What the transport hands a new producer. */
export interface EmbeddedProducerOptions {
  readonly store: LogStore;
  readonly now: () => number;
  /** Returns the error to fail this send with, if the transport was told to fail it. */
  readonly injectedFailure: () => unknown;
  /** Called once the producer has closed, so the transport forgets it. */
  readonly onClosed: (producer: EmbeddedProducer) => void;
}

/** What {@linkcode appendRecords} needs besides the records. */
export interface AppendOptions {
  readonly store: LogStore;
  readonly now: () => number;
  /** Returns the error to fail this send with, if the transport was told to fail it. */
  readonly injectedFailure: () => unknown;
  /** The next round-robin partition per topic, kept by the producer across sends. */
  readonly roundRobin: Map<string, number>;
  /** The open transaction the records belong to, if any. */
  readonly txn?: TransactionMarker;
}

/**
 * Appends every record, or none: an unknown topic or an injected failure throws before
 * anything is written. A record that names its partition goes there, keyed records go to
 * Kafka's partition for their key, unkeyed ones round-robin per topic. Returns one report per record, in the order given.
 */
export function appendRecords(
  records: readonly OutgoingRecord[],
  options: AppendOptions,
): DeliveryReport[] {
  const { store, now, injectedFailure, roundRobin, txn } = options;
  const topics = records.map((record) => store.topic(record.topic, "produce to"));
  records.forEach((record, i) => {
    const count = topics[i].partitions.length;
    if (
      record.partition !== undefined &&
      !(Number.isInteger(record.partition) && record.partition >= 0 && record.partition < count)
    ) {
      throw new PipelineError(
        `Cannot send record to topic "${record.topic}" as 'partition' must be an integer ` +
          `from 0 to ${count - 1}: current value is ${record.partition}`,
        { topic: record.topic, field: "partition" },
      );
    }
  });
  const failure = injectedFailure();
  if (failure !== undefined) throw failure;
  const timestamp = now();
  return records.map((record, i) => {
    const topic = topics[i];
    const key = toBytes(record.key);
    let partition: number;
    if (record.partition !== undefined) {
      partition = record.partition;
    } else if (key === null) {
      const next = roundRobin.get(topic.name) ?? 0;
      roundRobin.set(topic.name, next + 1);
      partition = next % topic.partitions.length;
    } else {
      partition = partitionForKey(key, topic.partitions.length);
    }
    const offset = topic.partitions[partition].append({
      key,
      value: toBytes(record.value),
      headers: { ...record.headers },
      timestamp,
    }, txn);
    return { topic: topic.name, partition, offset };
  });
}

/** Appends records to the embedded logs. */
export class EmbeddedProducer implements Producer {
  readonly #options: EmbeddedProducerOptions;
  readonly #roundRobin = new Map<string, number>();
  #closed = false;

  constructor(options: EmbeddedProducerOptions) {
    this.#options = options;
  }

  /**
   * Appends every record, or none: an unknown topic or an injected failure rejects the whole
   * batch before anything is written.
   */
  send(records: readonly OutgoingRecord[]): Promise<DeliveryReport[]> {
    try {
      return Promise.resolve(this.#send(records));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #send(records: readonly OutgoingRecord[]): DeliveryReport[] {
    if (this.#closed) {
      throw new PipelineError("Cannot send records as the producer is closed");
    }
    return appendRecords(records, {
      store: this.#options.store,
      now: this.#options.now,
      injectedFailure: this.#options.injectedFailure,
      roundRobin: this.#roundRobin,
    });
  }

  /** Releases the producer; later sends reject. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#options.onClosed(this);
    }
    return Promise.resolve();
  }
}
