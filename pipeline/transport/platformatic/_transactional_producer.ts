/**
 * The @platformatic/kafka transactional producer behind {@linkcode TransactionalProducer}: one
 * client `Producer({ transactionalId, idempotent: true })`, one client `Transaction` per
 * {@linkcode Transaction}, with the semantics of the kafkajs one (`../kafka/_transactional_producer.ts`).
 *
 * Fencing. Opening the producer initialises its producer id at once (`InitProducerId` with the
 * transactional id: the client does it when the first transaction begins, which is then
 * cancelled locally), bumping the id's epoch on the broker: any producer opened before with the
 * same id is fenced and its open transaction aborted. The fenced one learns it on its next
 * request (`INVALID_PRODUCER_EPOCH` or `PRODUCER_FENCED`), reported as a
 * {@linkcode ProducerFencedError}; every later call rejects the same way.
 *
 * Offsets. The client sends `TxnOffsetCommit` for a consumer's message; here the offsets come
 * without one, so they are sent with no group generation (`-1`, as kafkajs does): a zombie is
 * stopped by its transactional id alone, hence one id per input partition.
 *
 * Recovery. A failed send or offset commit fails its transaction, which is aborted at once; a
 * failed commit or abort makes the next `begin` start from a fresh client (a new producer id,
 * which takes the transactional id over and makes the broker finish the old transaction).
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import {
  type Consumer as PlatformaticConsumer,
  type Message,
  ProduceAcks,
  Producer as PlatformaticProducer,
} from "@platformatic/kafka";
import { PipelineError, ProducerFencedError } from "../../errors.ts";
import {
  checkTransactionOffsets,
  committedAlreadyError,
  failedPartError,
  fencedProducerError,
  notOpenError,
  producerClosedError,
  stillOpenError,
} from "../_transaction_checks.ts";
import type {
  OutgoingRecord,
  Transaction,
  TransactionalProducer,
  TransactionOffset,
} from "../transport.ts";
import { isFencing, toPipelineError } from "./_errors.ts";
import { Placement, type ProducerBase } from "./_producer.ts";

/** Settings the producer takes from the transport. */
export interface TransactionalProducerSettings {
  /** The transactional id. */
  readonly transactionalId: string;
  /** How long the coordinator lets a transaction stay open before aborting it, in ms. */
  readonly transactionTimeout: number;
  /** The node id of a consumer group's coordinator, for `TxnOffsetCommit`. */
  readonly groupCoordinator: (groupId: string) => Promise<number>;
}

type Client = PlatformaticProducer<Buffer, Buffer, Buffer, Buffer>;

/** The first retry delay of the transactional producer's requests, in milliseconds. */
const RETRY_INITIAL_MS = 20;
/** The longest retry delay, in milliseconds. */
const RETRY_MAX_MS = 1000;
/** Retries per request: about 3 s in all before a request fails. */
const RETRIES = 8;

/** The client's transaction (its class is not exported by the package). */
type PlatformaticTransaction<_K, _V, _HK, _HV> = Awaited<ReturnType<Client["beginTransaction"]>>;

/** What the client's `addConsumer` reads of a consumer: its group id. */
type GroupOnly = PlatformaticConsumer<Buffer, Buffer, Buffer, Buffer>;

/** Opens a transactional producer: its producer id initialised (fencing older ones). */
export async function openTransactionalProducer(
  base: ProducerBase,
  brokers: readonly string[],
  settings: TransactionalProducerSettings,
): Promise<TransactionalProducer> {
  const { transactionalId, transactionTimeout } = settings;

  function failure(what: string, error: unknown): PipelineError {
    return toPipelineError(`Cannot ${what} of "${transactionalId}"`, brokers, error, {
      transactionalId,
    });
  }

  async function connect(): Promise<{ client: Client; placement: Placement }> {
    const client: Client = new PlatformaticProducer<Buffer, Buffer, Buffer, Buffer>({
      ...base,
      // The client sends its `timeout` as the transaction timeout of InitProducerId.
      timeout: transactionTimeout,
      // Right after a commit, adding a partition to the next transaction fails with
      // CONCURRENT_TRANSACTIONS until the markers are written: retry after 20 ms, doubling, as
      // the Java client does (the transport's 200 ms capped a producer at ~4 transactions/s).
      retries: RETRIES,
      retryDelay: (_client, _operation, attempt) =>
        Math.min(RETRY_INITIAL_MS * 2 ** Math.max(attempt - 1, 0), RETRY_MAX_MS),
      transactionalId,
      // A fresh producer: no producer id to bump. The client's default (0, epoch 0) names an
      // existing producer, which the broker refuses as fenced once another one holds the id.
      producerId: -1n,
      producerEpoch: -1,
      idempotent: true,
      acks: ProduceAcks.ALL,
      autocreateTopics: false,
    });
    try {
      const first = await client.beginTransaction();
      await first.cancel();
    } catch (error) {
      await client.close(true).catch(() => undefined);
      throw failure("open the transactional producer", error);
    }
    return { client, placement: new Placement(client) };
  }

  let current = await connect();
  let needsReset = false;
  let fenced: ProducerFencedError | undefined;
  let open: OpenTransaction | undefined;
  let beginning = false;
  let closed: Promise<void> | undefined;

  function fencedError(what: string): ProducerFencedError {
    return fencedProducerError(transactionalId, what, fenced);
  }

  async function reset(): Promise<void> {
    await current.client.close(true).catch(() => undefined);
    current = await connect();
    needsReset = false;
  }

  class OpenTransaction implements Transaction {
    readonly #transaction: PlatformaticTransaction<Buffer, Buffer, Buffer, Buffer>;
    readonly #client: typeof current;
    #status: "open" | "failed" | "committed" | "aborted" = "open";
    #failure: unknown;
    #chain: Promise<void> = Promise.resolve();
    readonly #groups = new Set<string>();

    constructor(
      transaction: PlatformaticTransaction<Buffer, Buffer, Buffer, Buffer>,
      client: typeof current,
    ) {
      this.#transaction = transaction;
      this.#client = client;
    }

    send(records: readonly OutgoingRecord[]): Promise<void> {
      return this.#step("send records in the transaction", async () => {
        if (records.length === 0) return;
        const { placement } = this.#client;
        await placement.learn(records);
        await this.#transaction.send({
          messages: placement.messages(records),
          acks: ProduceAcks.ALL,
        });
      });
    }

    sendOffsets(groupId: string, offsets: readonly TransactionOffset[]): Promise<void> {
      return this.#step("send offsets in the transaction", async () => {
        checkTransactionOffsets(groupId, offsets);
        if (offsets.length === 0) return;
        if (!this.#groups.has(groupId)) {
          // The client only reads the group id of the consumer it is given.
          await this.#transaction.addConsumer({ groupId } as unknown as GroupOnly);
          this.#groups.add(groupId);
        }
        const coordinatorId = await settings.groupCoordinator(groupId);
        for (const { topic, partition, offset } of offsets) {
          // The client commits `offset + 1` of the message it is given, under its consumer's
          // group generation: -1 and no member, as kafkajs sends (no KIP-447 group check).
          const message = {
            topic,
            partition,
            offset: BigInt(offset) - 1n,
            metadata: { consumer: { groupId, generationId: -1, memberId: "", coordinatorId } },
          } as unknown as Message<Buffer, Buffer, Buffer, Buffer>;
          await this.#transaction.addOffset(message);
        }
      });
    }

    async commit(): Promise<void> {
      await this.#chain;
      if (fenced) throw fencedError("commit the transaction");
      if (this.#status === "failed") {
        this.#end("aborted");
        throw failedPartError(transactionalId, this.#failure);
      }
      this.#assertOpen("commit the transaction");
      try {
        await this.#transaction.commit();
        this.#end("committed");
      } catch (error) {
        this.#status = "failed";
        const mapped = this.#fail("commit the transaction", error);
        if (!fenced) await reset().catch(() => undefined);
        this.#end("aborted");
        throw mapped;
      }
    }

    async abort(): Promise<void> {
      await this.#chain;
      if (this.#status === "committed") {
        throw committedAlreadyError(transactionalId);
      }
      if (this.#status !== "open" || fenced) return this.#end("aborted");
      try {
        await this.#transaction.abort();
      } catch (error) {
        const mapped = this.#fail("abort the transaction", error);
        this.#end("aborted");
        if (fenced) throw mapped;
        return;
      }
      this.#end("aborted");
    }

    /** Closing the producer: abort if still open, never throw. */
    abortQuietly(): Promise<void> {
      return this.abort().catch(() => undefined);
    }

    #end(status: "committed" | "aborted"): void {
      this.#status = status;
      if (status === "aborted" && !this.#transaction.completed) {
        // Let the client begin the next transaction; the broker ends this one (abort, a reset).
        void this.#transaction.cancel().catch(() => undefined);
      }
      if (open === this) open = undefined;
    }

    #assertOpen(action: string): void {
      if (this.#status !== "open") {
        throw notOpenError(transactionalId, action, this.#status);
      }
    }

    #fail(action: string, error: unknown): PipelineError {
      const mapped = failure(action, error);
      if (mapped instanceof ProducerFencedError || isFencing(error)) {
        fenced ??= mapped as ProducerFencedError;
        return mapped;
      }
      needsReset = true;
      return mapped;
    }

    #step(action: string, body: () => Promise<void>): Promise<void> {
      const run = this.#chain.then(async () => {
        if (fenced) throw fencedError(action);
        this.#assertOpen(action);
        try {
          await body();
        } catch (error) {
          const mapped = this.#fail(action, error);
          if (this.#status === "open") {
            this.#status = "failed";
            this.#failure = mapped;
            if (!fenced) {
              await this.#transaction.abort().catch(() => {
                needsReset = true;
              });
            }
          }
          throw mapped;
        }
      });
      this.#chain = run.catch(() => undefined);
      return run;
    }
  }

  return {
    transactionalId,

    async begin(): Promise<Transaction> {
      if (closed) throw producerClosedError(transactionalId);
      if (fenced) throw fencedError("begin a transaction");
      if (open !== undefined || beginning) throw stillOpenError(transactionalId);
      beginning = true;
      try {
        if (needsReset) await reset();
        let transaction: PlatformaticTransaction<Buffer, Buffer, Buffer, Buffer>;
        try {
          transaction = await current.client.beginTransaction();
        } catch (error) {
          const mapped = failure("begin a transaction", error);
          if (mapped instanceof ProducerFencedError) fenced ??= mapped;
          else needsReset = true;
          throw mapped;
        }
        open = new OpenTransaction(transaction, current);
        return open;
      } finally {
        beginning = false;
      }
    },

    close(): Promise<void> {
      closed ??= (async () => {
        await open?.abortQuietly();
        await current.client.close(true).catch(() => undefined);
      })();
      return closed;
    },
  };
}
