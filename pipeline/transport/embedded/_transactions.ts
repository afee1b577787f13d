/**
 * Transactions of the embedded transport, with Kafka's semantics:
 *
 * - A transaction's records are appended at once (they take their offsets, and
 *   `read_uncommitted` readers see them) under a {@linkcode TransactionMarker}; `read_committed`
 *   readers see them once it commits, never after it aborts. Its end appends one control record
 *   to each partition it wrote (see `_log.ts`).
 * - Offsets sent with the transaction are applied to their group only when it commits.
 * - One live producer per transactional id: registering a producer fences the previous one,
 *   aborting its open transaction (as a broker does on `InitProducerId`); everything the fenced
 *   producer tries afterwards rejects with a {@linkcode ProducerFencedError}.
 *
 * Unlike a broker, nothing here times out: a transaction stays open until it is committed or
 * aborted, or its producer is closed or fenced.
 *
 * @module
 */

import { errorMessage, PipelineError, ProducerFencedError } from "../../errors.ts";
import type {
  OutgoingRecord,
  Transaction,
  TransactionalProducer,
  TransactionOffset,
} from "../transport.ts";
import type { GroupCoordinator } from "./_group.ts";
import type { LogStore, PartitionLog, TransactionMarker } from "./_log.ts";
import { appendRecords } from "./_producer.ts";

/** Which producer owns each transactional id: the one registered last. */
export class TransactionCoordinator {
  readonly #owners = new Map<string, EmbeddedTransactionalProducer>();

  /** Makes `producer` its id's owner, fencing the previous owner. */
  register(producer: EmbeddedTransactionalProducer): void {
    const previous = this.#owners.get(producer.transactionalId);
    this.#owners.set(producer.transactionalId, producer);
    previous?.fence();
  }

  /** Forgets `producer` if it still owns its id (it closed). */
  release(producer: EmbeddedTransactionalProducer): void {
    if (this.#owners.get(producer.transactionalId) === producer) {
      this.#owners.delete(producer.transactionalId);
    }
  }
}

/** What the transport hands a new transactional producer. */
export interface EmbeddedTransactionalProducerOptions {
  readonly transactionalId: string;
  readonly store: LogStore;
  readonly groups: GroupCoordinator;
  readonly coordinator: TransactionCoordinator;
  readonly now: () => number;
  /** Returns the error to fail this send with, if the transport was told to fail it. */
  readonly injectedFailure: () => unknown;
  /** Called once the producer has closed, so the transport forgets it. */
  readonly onClosed: (producer: EmbeddedTransactionalProducer) => void;
}

/** A transaction's state as the producer sees it. */
type Status = "open" | "failed" | "committed" | "aborted";

/** One open transaction of an {@linkcode EmbeddedTransactionalProducer}. */
class EmbeddedTransaction implements Transaction {
  readonly #producer: EmbeddedTransactionalProducer;
  readonly #options: EmbeddedTransactionalProducerOptions;
  readonly #roundRobin: Map<string, number>;
  readonly #marker: { state: TransactionMarker["state"] } = { state: "open" };
  readonly #partitions = new Set<PartitionLog>();
  /** Offsets to commit, per group, keyed by topic and partition: the last one sent wins. */
  readonly #offsets = new Map<string, Map<string, TransactionOffset>>();
  #status: Status = "open";
  #failure: unknown;

  constructor(
    producer: EmbeddedTransactionalProducer,
    options: EmbeddedTransactionalProducerOptions,
    roundRobin: Map<string, number>,
  ) {
    this.#producer = producer;
    this.#options = options;
    this.#roundRobin = roundRobin;
  }

  send(records: readonly OutgoingRecord[]): Promise<void> {
    return this.#attempt("send records in the transaction", () => {
      const reports = appendRecords(records, {
        store: this.#options.store,
        now: this.#options.now,
        injectedFailure: this.#options.injectedFailure,
        roundRobin: this.#roundRobin,
        txn: this.#marker,
      });
      for (const { topic, partition } of reports) {
        this.#partitions.add(this.#options.store.topic(topic, "produce to").partitions[partition]);
      }
    });
  }

  sendOffsets(groupId: string, offsets: readonly TransactionOffset[]): Promise<void> {
    return this.#attempt("send offsets in the transaction", () => {
      if (groupId.length === 0) {
        throw new PipelineError("Cannot send offsets as 'groupId' must not be empty", {
          field: "groupId",
        });
      }
      for (const { topic, partition, offset } of offsets) {
        const log = this.#options.store.topic(topic, "send offsets of");
        if (!Number.isSafeInteger(partition) || log.partitions[partition] === undefined) {
          throw new PipelineError(
            `Cannot send offsets of topic "${topic}" as 'partition' must be one of its ` +
              `${log.partitions.length} partitions: current value is ${partition}`,
            { topic, partition, field: "partition" },
          );
        }
        if (!Number.isSafeInteger(offset) || offset < 0) {
          throw new PipelineError(
            `Cannot send offsets of topic "${topic}" partition ${partition} as 'offset' must ` +
              `be a non-negative integer: current value is ${offset}`,
            { topic, partition, field: "offset" },
          );
        }
      }
      let byPartition = this.#offsets.get(groupId);
      if (byPartition === undefined) {
        byPartition = new Map();
        this.#offsets.set(groupId, byPartition);
      }
      for (const entry of offsets) {
        byPartition.set(`${entry.partition}\0${entry.topic}`, { ...entry });
      }
    });
  }

  commit(): Promise<void> {
    try {
      this.#assertFenceFree("commit the transaction");
      if (this.#status === "failed") {
        const cause = this.#failure;
        this.#end("aborted");
        throw new PipelineError(
          `Cannot commit the transaction of "${this.#producer.transactionalId}" as a part of ` +
            `it failed: ${errorMessage(cause)}; it was aborted`,
          { cause },
        );
      }
      this.#assertOpen("commit the transaction");
      this.#end("committed");
      for (const [groupId, byPartition] of this.#offsets) {
        const group = this.#options.groups.group(groupId);
        for (const { topic, partition, offset } of byPartition.values()) {
          group.commit(topic, partition, offset);
        }
      }
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  abort(): Promise<void> {
    if (this.#status === "committed") {
      return Promise.reject(
        new PipelineError(
          `Cannot abort the transaction of "${this.#producer.transactionalId}" as it is ` +
            "committed already",
        ),
      );
    }
    // Aborting twice, or a transaction that fencing aborted already, is harmless.
    this.abortNow();
    return Promise.resolve();
  }

  /** @internal Aborts at once if still open or failed (fencing, close). */
  abortNow(): void {
    if (this.#status === "open" || this.#status === "failed") this.#end("aborted");
  }

  #end(state: "committed" | "aborted"): void {
    this.#status = state;
    this.#marker.state = state;
    for (const log of this.#partitions) log.endTransaction(this.#marker);
    this.#producer.ended(this);
  }

  #assertFenceFree(action: string): void {
    if (this.#producer.fenced) throw this.#producer.fencedError(action);
  }

  #assertOpen(action: string): void {
    if (this.#status !== "open") {
      throw new PipelineError(
        `Cannot ${action} of "${this.#producer.transactionalId}" as the transaction is ` +
          `${this.#status}`,
      );
    }
  }

  /** Runs a step of the transaction; a step that throws fails the whole transaction. */
  #attempt(action: string, step: () => void): Promise<void> {
    try {
      this.#assertFenceFree(action);
      this.#assertOpen(action);
    } catch (error) {
      return Promise.reject(error);
    }
    try {
      step();
      return Promise.resolve();
    } catch (error) {
      this.#status = "failed";
      this.#failure = error;
      return Promise.reject(error);
    }
  }
}

/** A transactional producer of the embedded transport. */
export class EmbeddedTransactionalProducer implements TransactionalProducer {
  readonly transactionalId: string;
  readonly #options: EmbeddedTransactionalProducerOptions;
  readonly #roundRobin = new Map<string, number>();
  #open: EmbeddedTransaction | undefined;
  #fenced = false;
  #closed = false;

  /** Creates the producer and registers it, fencing the previous one with the same id. */
  constructor(options: EmbeddedTransactionalProducerOptions) {
    this.transactionalId = options.transactionalId;
    this.#options = options;
    options.coordinator.register(this);
  }

  /** Whether a newer producer with the same id fenced this one. */
  get fenced(): boolean {
    return this.#fenced;
  }

  begin(): Promise<Transaction> {
    try {
      if (this.#closed) {
        throw new PipelineError(
          `Cannot begin a transaction of "${this.transactionalId}" as the producer is closed`,
        );
      }
      if (this.#fenced) throw this.fencedError("begin a transaction");
      if (this.#open !== undefined) {
        throw new PipelineError(
          `Cannot begin a transaction of "${this.transactionalId}" as one is still open: ` +
            "commit or abort it first",
        );
      }
      this.#open = new EmbeddedTransaction(this, this.#options, this.#roundRobin);
      return Promise.resolve(this.#open);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#open?.abortNow();
      this.#options.coordinator.release(this);
      this.#options.onClosed(this);
    }
    return Promise.resolve();
  }

  /** @internal Called by the coordinator: a newer producer took the id over. */
  fence(): void {
    this.#fenced = true;
    this.#open?.abortNow();
  }

  /** @internal Called by a transaction once it committed or aborted. */
  ended(transaction: EmbeddedTransaction): void {
    if (this.#open === transaction) this.#open = undefined;
  }

  /** @internal The error every call of a fenced producer rejects with. */
  fencedError(action: string): ProducerFencedError {
    return new ProducerFencedError(
      `Cannot ${action} of "${this.transactionalId}" as a newer producer with that ` +
        "transactional id fenced this one",
      { transactionalId: this.transactionalId },
    );
  }
}
