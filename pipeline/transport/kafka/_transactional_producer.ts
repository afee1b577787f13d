/**
 * The kafkajs transactional producer behind {@linkcode TransactionalProducer}: kafkajs
 * `producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 })`, one kafkajs
 * `transaction()` per {@linkcode Transaction}.
 *
 * Fencing. Opening the producer initialises its producer id at once (`InitProducerId` with the
 * transactional id), which bumps the id's epoch on the broker: any producer opened before with
 * the same id is fenced, and its open transaction aborted. The fenced producer learns it on its
 * next request, which the broker refuses with `INVALID_PRODUCER_EPOCH` (kafkajs speaks request
 * versions for which Kafka reports `PRODUCER_FENCED` under that code); that, and
 * `PRODUCER_FENCED` itself should kafkajs learn it, become a {@linkcode ProducerFencedError}.
 * A transaction open longer than `transactionTimeout` is aborted by the coordinator, which
 * bumps the epoch the same way: the client cannot tell that from a newer producer, so it is
 * reported as fenced too (the Java client did the same before KIP-588), and is as fatal: open a
 * new producer if this member still owns the work. `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` (an
 * ACL refusing the id) becomes a {@linkcode ConfigError} naming the id.
 *
 * kafkajs sends no KIP-447 group metadata with `sendOffsets` (its `TxnOffsetCommit` is v0/v1),
 * so the group coordinator cannot refuse a zombie's offsets by group generation: fencing is by
 * transactional id alone, which is why ids are per input partition (Kafka Streams' eos-alpha).
 *
 * Recovery. A failed send or offset commit fails its transaction: it is aborted at once
 * (so `read_committed` readers are not held at its first record until it times out), and the
 * next `begin` re-initialises the producer id (a fresh kafkajs producer), because kafkajs may
 * have rolled back sequence numbers of batches the broker did write. A failed `commit` also
 * re-initialises at once: the broker finishes the transaction (commit or abort, whichever its
 * coordinator decided) before answering, so when `commit` rejects with anything but a
 * {@linkcode ProducerFencedError} the outcome is settled when it could reach the broker, and
 * the group's committed offsets say which it was (records and offsets share the outcome).
 * Re-initialising takes the transactional id over: only do it (call `begin`) while this member
 * still owns what the id stands for.
 *
 * @module
 */
import kafkajs from "kafkajs";
import type {
  Kafka,
  Message,
  Producer as KafkaProducer,
  Transaction as KafkaTransaction,
} from "kafkajs";
import { ConfigError, PipelineError, ProducerFencedError } from "../../errors.ts";
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
import { toPipelineError } from "./_errors.ts";
import { toWire } from "./_producer.ts";

const { KafkaJSProtocolError, Partitioners } = kafkajs;

/** Kafka's `INVALID_PRODUCER_EPOCH`: an older epoch, i.e. a newer producer or an expired one. */
const INVALID_PRODUCER_EPOCH = 47;
/** Kafka's `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`. */
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53;
/** Kafka's `PRODUCER_FENCED` (KIP-588), returned to newer clients than kafkajs 2.2.4. */
const PRODUCER_FENCED = 90;

/** The first retry delay of the transactional producer's requests, in milliseconds. */
const RETRY_INITIAL_MS = 20;

/** Settings the producer takes from the transport options. */
export interface TransactionalProducerSettings {
  /** The transactional id. */
  readonly transactionalId: string;
  /** How long the coordinator lets a transaction stay open before aborting it, in ms. */
  readonly transactionTimeout: number;
}

/** The Kafka protocol error codes in an error's chain (kafkajs wraps retried errors). */
function protocolCodes(error: unknown): number[] {
  const codes: number[] = [];
  let current = error;
  for (let depth = 0; depth < 10 && current instanceof Error; depth++) {
    if (current instanceof KafkaJSProtocolError) codes.push(current.code);
    if (current.cause === current) break;
    current = current.cause;
  }
  return codes;
}

function isFencing(error: unknown): boolean {
  return protocolCodes(error).some((code) =>
    code === INVALID_PRODUCER_EPOCH || code === PRODUCER_FENCED
  );
}

/** What {@linkcode transactionError} names in its messages. */
export interface TransactionErrorContext {
  /** The producer's transactional id. */
  readonly transactionalId: string;
  /** The producer's transaction timeout, in milliseconds. */
  readonly transactionTimeout: number;
  /** The bootstrap brokers, named when none can be reached. */
  readonly brokers: readonly string[];
}

/**
 * Maps a kafkajs failure of a transactional call (`what`, e.g. `"commit the transaction"`) to
 * the framework's errors, by protocol error code anywhere in the error's chain:
 * `INVALID_PRODUCER_EPOCH` and `PRODUCER_FENCED` become a {@linkcode ProducerFencedError},
 * `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` a {@linkcode ConfigError} on `transactionalId`, and
 * anything else what {@linkcode toPipelineError} makes of it. Framework errors pass through.
 */
export function transactionError(
  what: string,
  error: unknown,
  context: TransactionErrorContext,
): PipelineError {
  const { transactionalId, transactionTimeout, brokers } = context;
  if (error instanceof PipelineError) return error;
  if (isFencing(error)) {
    return new ProducerFencedError(
      `Cannot ${what} of "${transactionalId}" as a newer producer with that transactional ` +
        "id fenced this one (or the transaction outlived 'transactionTimeout' " +
        `${transactionTimeout} ms and the broker aborted it)`,
      { transactionalId, cause: error },
    );
  }
  if (protocolCodes(error).includes(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)) {
    return new ConfigError(
      `Cannot ${what} of "${transactionalId}" as the broker does not authorise that ` +
        "transactional id: grant the principal WRITE and DESCRIBE on it",
      { field: "transactionalId", cause: error },
    );
  }
  return toPipelineError(`Cannot ${what} of "${transactionalId}"`, brokers, error);
}

/** Opens a transactional producer: connected, its producer id initialised (fencing older). */
export async function openTransactionalProducer(
  kafka: Kafka,
  brokers: readonly string[],
  settings: TransactionalProducerSettings,
): Promise<TransactionalProducer> {
  const { transactionalId, transactionTimeout } = settings;

  function failure(what: string, error: unknown): PipelineError {
    return transactionError(what, error, { transactionalId, transactionTimeout, brokers });
  }

  /** A connected kafkajs producer whose producer id is initialised. */
  async function connect(): Promise<KafkaProducer> {
    const producer = kafka.producer({
      transactionalId,
      transactionTimeout,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      // The coordinator answers a commit before it has written the commit markers, and until
      // it has, adding a partition to the next transaction fails with CONCURRENT_TRANSACTIONS
      // (retriable). kafkajs's first retry waits 300 ms, which capped a producer at about three
      // transactions a second; the Java client retries this after 20 ms. No `retries` here: the
      // client's 5 apply (setting it would only add kafkajs's startup warning), so an
      // unreachable broker fails a send after about 0.6 s and the transaction is aborted.
      retry: { initialRetryTime: RETRY_INITIAL_MS },
    });
    try {
      await producer.connect();
      // kafkajs initialises the transactional producer id with the first transaction; an
      // empty one sends nothing else, and fences older producers now rather than later.
      const first = await producer.transaction();
      await first.abort();
    } catch (error) {
      await producer.disconnect().catch(() => undefined);
      throw failure("open the transactional producer", error);
    }
    return producer;
  }

  let client = await connect();
  /** Set after a failure: the next `begin` starts from a fresh producer id. */
  let needsReset = false;
  /** The error that showed this producer was fenced; every later call rejects. */
  let fenced: ProducerFencedError | undefined;

  function fencedError(what: string): ProducerFencedError {
    return fencedProducerError(transactionalId, what, fenced);
  }
  let open: OpenTransaction | undefined;
  /** Set while `begin` is on its way, so a second `begin` meanwhile is refused too. */
  let beginning = false;
  let closed: Promise<void> | undefined;

  /** Replaces the kafkajs producer with a fresh one; the broker ends the old transaction. */
  async function reset(): Promise<void> {
    const old = client;
    await old.disconnect().catch(() => undefined);
    client = await connect();
    needsReset = false;
  }

  /** One transaction; its steps run one after another. */
  class OpenTransaction implements Transaction {
    readonly #kafka: KafkaTransaction;
    #status: "open" | "failed" | "committed" | "aborted" = "open";
    #failure: unknown;
    #chain: Promise<void> = Promise.resolve();

    constructor(transaction: KafkaTransaction) {
      this.#kafka = transaction;
    }

    send(records: readonly OutgoingRecord[]): Promise<void> {
      return this.#step("send records in the transaction", async (transaction) => {
        if (records.length === 0) return;
        const byTopic = new Map<string, Message[]>();
        for (const record of records) {
          const list = byTopic.get(record.topic) ?? [];
          list.push({
            key: toWire(record.key),
            value: toWire(record.value),
            headers: record.headers ? { ...record.headers } : undefined,
          });
          byTopic.set(record.topic, list);
        }
        await transaction.sendBatch({
          acks: -1,
          topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        });
      });
    }

    sendOffsets(groupId: string, offsets: readonly TransactionOffset[]): Promise<void> {
      return this.#step("send offsets in the transaction", async (transaction) => {
        checkTransactionOffsets(groupId, offsets);
        if (offsets.length === 0) return;
        const byTopic = new Map<string, { partition: number; offset: string }[]>();
        for (const { topic, partition, offset } of offsets) {
          const list = byTopic.get(topic) ?? [];
          list.push({ partition, offset: String(offset) });
          byTopic.set(topic, list);
        }
        await transaction.sendOffsets({
          consumerGroupId: groupId,
          topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
        });
      });
    }

    async commit(): Promise<void> {
      await this.#settled();
      if (fenced) throw fencedError("commit the transaction");
      if (this.#status === "failed") {
        this.#end("aborted");
        throw failedPartError(transactionalId, this.#failure);
      }
      this.#assertOpen("commit the transaction");
      try {
        await this.#kafka.commit();
        this.#end("committed");
      } catch (error) {
        this.#status = "failed";
        const mapped = this.#fail("commit the transaction", error);
        if (!fenced) {
          // kafkajs cannot abort after a failed commit: a new producer id makes the broker
          // finish the transaction one way or the other before it answers.
          await reset().catch(() => undefined);
        }
        this.#end("aborted");
        throw mapped;
      }
    }

    async abort(): Promise<void> {
      await this.#settled();
      if (this.#status === "committed") {
        throw committedAlreadyError(transactionalId);
      }
      // A failed transaction was aborted when it failed; a fenced one by the broker.
      if (this.#status !== "open" || fenced) return this.#end("aborted");
      try {
        await this.#kafka.abort();
      } catch (error) {
        const mapped = this.#fail("abort the transaction", error);
        // The next `begin` re-initialises, which aborts it on the broker.
        if (!fenced) return this.#end("aborted");
        this.#end("aborted");
        throw mapped;
      }
      this.#end("aborted");
    }

    /** @internal Closing the producer: abort if still open, never throw. */
    abortQuietly(): Promise<void> {
      return this.abort().catch(() => undefined);
    }

    #end(status: "committed" | "aborted"): void {
      this.#status = status;
      if (open === this) open = undefined;
    }

    #assertOpen(action: string): void {
      if (this.#status !== "open") {
        throw notOpenError(transactionalId, action, this.#status);
      }
    }

    /** Records a failure: fencing is remembered by the producer, anything else resets it. */
    #fail(action: string, error: unknown): PipelineError {
      const mapped = failure(action, error);
      if (mapped instanceof ProducerFencedError) {
        fenced ??= mapped;
        return mapped;
      }
      needsReset = true;
      return mapped;
    }

    #settled(): Promise<void> {
      return this.#chain;
    }

    #step(action: string, body: (transaction: KafkaTransaction) => Promise<void>): Promise<void> {
      const run = this.#chain.then(async () => {
        if (fenced) throw fencedError(action);
        this.#assertOpen(action);
        try {
          await body(this.#kafka);
        } catch (error) {
          const mapped = this.#fail(action, error);
          if (this.#status === "open") {
            this.#status = "failed";
            this.#failure = mapped;
            // Abort now so read_committed readers are not held at this transaction's first
            // record; if that fails too, the reset at the next `begin` aborts it.
            if (!fenced) await this.#kafka.abort().catch(() => undefined);
          }
          throw mapped;
        }
      });
      // Later steps run after this one, whatever its outcome; each reports its own.
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
        let transaction: KafkaTransaction;
        try {
          transaction = await client.transaction();
        } catch (error) {
          needsReset = true;
          throw failure("begin a transaction", error);
        }
        open = new OpenTransaction(transaction);
        return open;
      } finally {
        beginning = false;
      }
    },

    close(): Promise<void> {
      closed ??= (async () => {
        await open?.abortQuietly();
        await client.disconnect();
      })();
      return closed;
    },
  };
}
