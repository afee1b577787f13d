/**
 * The embedded producer: picks each record's partition as Kafka's default partitioner does
 * (murmur2 of the key, round-robin per topic without a key) and appends a copy of it.
 *
 * @module
 */

import { PipelineError } from "../../errors.ts";
import { partitionForKey } from "../murmur2.ts";
import type { DeliveryReport, OutgoingRecord, Producer } from "../transport.ts";
import type { LogStore } from "./_log.ts";

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
    const topics = records.map((record) => this.#options.store.topic(record.topic, "produce to"));
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
    const failure = this.#options.injectedFailure();
    if (failure !== undefined) throw failure;
    const timestamp = this.#options.now();
    return records.map((record, i) => {
      const topic = topics[i];
      const key = toBytes(record.key);
      const partition = record.partition ??
        (key === null
          ? this.#nextRoundRobin(topic.name, topic.partitions.length)
          : partitionForKey(key, topic.partitions.length));
      const offset = topic.partitions[partition].append({
        key,
        value: toBytes(record.value),
        headers: { ...record.headers },
        timestamp,
      });
      return { topic: topic.name, partition, offset };
    });
  }

  #nextRoundRobin(topic: string, partitions: number): number {
    const next = this.#roundRobin.get(topic) ?? 0;
    this.#roundRobin.set(topic, next + 1);
    return next % partitions;
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
