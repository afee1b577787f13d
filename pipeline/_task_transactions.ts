/**
 * The exactly-once mode's transactions, one open at a time per task (partition p of a stage's
 * input and of its retry tiers), in Kafka Streams' first exactly-once design (eos-alpha; kafkajs
 * has no KIP-447):
 *
 * - A task gets a transactional producer `<group>-<input>-<p>` when the member is given it; opening
 *   it fences the task's previous owner (its open transaction is aborted, its later calls fail).
 * - A record's sends (outputs, retry copy, dead letter, state entry) go into the task's open
 *   transaction and resolve only when it commits (reject when it aborts: the record is delivered
 *   again).
 * - A transaction commits with the input offsets of the records handed over so far whose sends
 *   are all in it or in an earlier one, on a record-count bound or after a linger; the consumer
 *   commits nothing itself.
 * - The consumer's position past records it never hands over (the control records ending the
 *   task's own transactions in its retry tiers, aborted records) joins the next transaction's
 *   offsets (an offsets-only one when none is open), as Kafka Streams commits the consumer's
 *   position: without it a tier's committed offset would stay short of its end for ever. The
 *   consumer reports it only once every record before it is complete (`onPosition`).
 * - A fenced task sends and commits nothing more: the partition belongs to another member now.
 *
 * @module
 */
import { errorMessage, PipelineError, ProducerFencedError } from "./errors.ts";
import { getLogger } from "./log.ts";
import type {
  ConsumedRecord,
  DeliveryReport,
  OutgoingRecord,
  Producer,
  Transaction,
  TransactionalProducer,
  TransactionOffset,
  Transport,
} from "./transport/transport.ts";

const log = getLogger(["pipeline", "transactions"]);

/** Options for {@linkcode TaskTransactions}. */
export interface TaskTransactionsOptions {
  readonly transport: Transport;
  /** The stage's consumer group: the offsets are committed for it. */
  readonly group: string;
  /** The stage's input topic: names the transactional ids. */
  readonly input: string;
  /** Commit once a transaction holds this many records. */
  readonly maxRecords: number;
  /** Commit a transaction this long after its first record, in ms. */
  readonly lingerMs: number;
}

/** The transactional id of task `partition` of a stage: `<group>-<input>-<partition>`. */
export function taskTransactionalId(group: string, input: string, partition: number): string {
  return `${group}-${input}-${partition}`;
}

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

interface OpenTransaction {
  readonly seq: number;
  readonly begun: Promise<Transaction>;
  readonly sends: Promise<void>[];
  readonly waiters: Waiter[];
  /** Records with a send in this transaction not handed over yet. */
  readonly unsettled: Set<string>;
  /** Set when a record with a send in it failed: it must abort. */
  failed?: unknown;
  allSettled?: () => void;
  records: number;
}

interface Entry {
  readonly offset: number;
  /** The last transaction with a send of the record, 0 for none. */
  readonly seq: number;
}

function recordId(record: ConsumedRecord): string {
  return `${record.topic}\u0000${record.offset}`;
}

class Task {
  readonly #options: TaskTransactionsOptions;
  readonly #producer: TransactionalProducer;
  readonly partition: number;
  #seq = 0;
  #open: OpenTransaction | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #chain: Promise<void> = Promise.resolve();
  /** Resolves once the transaction before the open one has ended: one at a time. */
  #previousEnded: Promise<void> = Promise.resolve();
  /** Per topic, records handed over whose offsets are not committed yet, in order. */
  #entries = new Map<string, Entry[]>();
  /** Per record with sends, the last transaction they went to. */
  #sentIn = new Map<string, number>();
  /**
   * Per record with sends not handed over yet, the transactions holding them: its hand-over
   * is told to those, whichever transaction is open by then (one may be committing).
   */
  #unsettledIn = new Map<string, Set<OpenTransaction>>();
  fenced: unknown;
  /** Set once `close` began: the task takes no more sends. */
  #closing = false;
  /** Whether a send refused while closing was logged (once per task). */
  #refusedLogged = false;
  #closed = false;
  /** Set once the member stops: every transaction commits as soon as it can. */
  #draining = false;

  constructor(
    options: TaskTransactionsOptions,
    producer: TransactionalProducer,
    partition: number,
  ) {
    this.#options = options;
    this.#producer = producer;
    this.partition = partition;
  }

  send(record: ConsumedRecord, records: readonly OutgoingRecord[]): Promise<void> {
    if (this.fenced !== undefined) return Promise.reject(this.fenced);
    // A task being revoked takes no more sends: its last commit must not wait for a record
    // whose hand-over goes to the task's next owner (or nowhere), which would hold the revoke,
    // and with it this member's next assignment of the partition, for ever.
    if (this.#closed || this.#closing) {
      if (!this.#refusedLogged) {
        this.#refusedLogged = true;
        log.info(
          "Task {partition} of {topic} refused the sends of record {offset}: the task is being " +
            "revoked; the partition's next owner handles the record again",
          { topic: this.#options.input, partition: this.partition, offset: record.offset },
        );
      }
      return Promise.reject(
        new PipelineError(
          `Cannot send in task ${this.partition} of "${this.#options.input}" as it was revoked`,
          { topic: record.topic, partition: record.partition, offset: record.offset },
        ),
      );
    }
    const open = this.#begin();
    const id = recordId(record);
    this.#sentIn.set(id, open.seq);
    open.unsettled.add(id);
    let holding = this.#unsettledIn.get(id);
    if (holding === undefined) this.#unsettledIn.set(id, holding = new Set());
    holding.add(open);
    open.records += records.length;
    const sent = open.begun.then((transaction) => transaction.send(records));
    open.sends.push(sent.catch((error) => {
      open.failed ??= error;
    }));
    const committed = new Promise<void>((resolve, reject) =>
      open.waiters.push({ resolve, reject })
    );
    if (open.records >= this.#options.maxRecords) this.#commitSoon(0);
    return committed;
  }

  /** Whether the record has sends in one of this task's transactions, not settled yet. */
  holds(record: ConsumedRecord): boolean {
    return this.#sentIn.has(recordId(record));
  }

  /** The record's handler returned (`ok`) or threw: its offset may join a commit. */
  settled(record: ConsumedRecord, ok: boolean): void {
    const id = recordId(record);
    const seq = this.#sentIn.get(id) ?? 0;
    this.#sentIn.delete(id);
    for (const open of this.#unsettledIn.get(id) ?? []) {
      if (!open.unsettled.delete(id)) continue;
      if (!ok) open.failed ??= new PipelineError("A record with sends in the transaction failed");
      if (open.unsettled.size === 0) open.allSettled?.();
    }
    this.#unsettledIn.delete(id);
    // While closing, only a record whose sends are in this task's last transaction joins it:
    // that transaction commits its outputs, so it must commit its offset too (or the next owner
    // handles it again, a duplicate for a read_committed reader).
    if (!ok || this.fenced !== undefined || (this.#closing && seq === 0)) return;
    let entries = this.#entries.get(record.topic);
    if (entries === undefined) this.#entries.set(record.topic, entries = []);
    entries.push({ offset: record.offset, seq });
    this.#commitSoon(this.#options.lingerMs);
  }

  /**
   * The consumer's position in `topic` passed records it never hands over, every record before
   * being complete: the next transaction commits up to `offset`.
   */
  passed(topic: string, offset: number): void {
    if (this.fenced !== undefined || this.#closed) return;
    let entries = this.#entries.get(topic);
    if (entries === undefined) this.#entries.set(topic, entries = []);
    const last = entries.at(-1);
    if (last !== undefined && last.offset >= offset - 1) return;
    // Committed as if the record before `offset` had been handed over, with no send of its own.
    entries.push({ offset: offset - 1, seq: 0 });
    this.#commitSoon(this.#options.lingerMs);
  }

  #begin(): OpenTransaction {
    if (this.#open !== undefined) return this.#open;
    const begun = this.#previousEnded.then(() => this.#producer.begin());
    // A failed begin fails the sends, which reject with it.
    begun.catch(() => undefined);
    this.#open = {
      seq: ++this.#seq,
      begun,
      sends: [],
      waiters: [],
      unsettled: new Set(),
      records: 0,
    };
    this.#commitSoon(this.#options.lingerMs);
    return this.#open;
  }

  /** From now on, commits without lingering: the member is stopping. */
  drain(): void {
    this.#draining = true;
    this.#commitSoon(0);
  }

  #commitSoon(delayMs: number): void {
    if (this.#draining) delayMs = 0;
    if (this.#timer !== undefined && delayMs > 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#chain = this.#chain.then(() => this.#commit()).catch(() => undefined);
    }, delayMs);
  }

  /** Commits what is there: the open transaction, or offsets alone. Never throws. */
  async #commit(): Promise<void> {
    if (this.fenced !== undefined) return;
    const hasOffsets = [...this.#entries.values()].some((e) => e.length > 0);
    if (this.#open === undefined && !hasOffsets) return;
    const open = this.#begin();
    this.#open = undefined;
    let ended!: () => void;
    this.#previousEnded = new Promise<void>((resolve) => ended = resolve);
    try {
      await this.#end(open);
    } finally {
      ended();
    }
  }

  async #end(open: OpenTransaction): Promise<void> {
    if (open.unsettled.size > 0) {
      await new Promise<void>((resolve) => open.allSettled = resolve);
    }
    const offsets: TransactionOffset[] = [];
    const taken = new Map<string, number>();
    for (const [topic, entries] of this.#entries) {
      let count = 0;
      while (count < entries.length && entries[count].seq <= open.seq) count++;
      if (count === 0) continue;
      taken.set(topic, count);
      offsets.push({ topic, partition: this.partition, offset: entries[count - 1].offset + 1 });
    }
    let transaction: Transaction | undefined;
    try {
      transaction = await open.begun;
      await Promise.all(open.sends);
      if (open.failed !== undefined) throw open.failed;
      if (offsets.length > 0) await transaction.sendOffsets(this.#options.group, offsets);
      await transaction.commit();
    } catch (error) {
      await transaction?.abort().catch(() => undefined);
      if (error instanceof ProducerFencedError) {
        this.fenced = error;
        log.warn("Task {partition} of {topic} was fenced: another member owns it now", {
          topic: this.#options.input,
          partition: this.partition,
          error_reason: errorMessage(error),
        });
      }
      // Records from the first one with a send in the aborted transaction on are delivered
      // again; the ones before keep their place for the next commit.
      for (const [topic, entries] of this.#entries) {
        const first = entries.findIndex((e) => e.seq >= open.seq);
        if (first >= 0) this.#entries.set(topic, entries.slice(0, first));
      }
      for (const waiter of open.waiters) waiter.reject(error);
      return;
    }
    for (const [topic, count] of taken) {
      this.#entries.set(topic, this.#entries.get(topic)!.slice(count));
    }
    for (const waiter of open.waiters) waiter.resolve();
  }

  /** Commits what is complete, then closes the producer (aborting nothing committed). */
  async close(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#chain;
    if (this.fenced === undefined) await this.#commit();
    this.#closed = true;
    await this.#producer.close().catch(() => undefined);
  }
}

/** The tasks of one stage member and their transactions. */
export class TaskTransactions {
  readonly #options: TaskTransactionsOptions;
  readonly #tasks = new Map<number, Promise<Task>>();
  /** The tasks whose producer is open: records are delivered only once their task is. */
  readonly #ready = new Map<number, Task>();
  /**
   * Tasks given up whose last commit is on its way: taking one back waits for `done`, and the
   * task (if it had opened) still hears of the records its last transaction holds.
   */
  readonly #closing = new Map<number, { readonly done: Promise<void>; readonly task?: Task }>();

  constructor(options: TaskTransactionsOptions) {
    this.#options = options;
  }

  /** Takes tasks over: opens (and so fences) their transactional producers. */
  async assign(partitions: readonly number[]): Promise<void> {
    for (const partition of new Set(partitions)) {
      if (this.#tasks.has(partition)) continue;
      const closing = this.#closing.get(partition)?.done ?? Promise.resolve();
      const opening = closing.then(() =>
        this.#options.transport.transactionalProducer({
          transactionalId: taskTransactionalId(this.#options.group, this.#options.input, partition),
        })
      ).then((producer) => {
        const task = new Task(this.#options, producer, partition);
        this.#ready.set(partition, task);
        return task;
      });
      this.#tasks.set(partition, opening);
      opening.catch(() => this.#tasks.delete(partition));
    }
    await Promise.all([...new Set(partitions)].map((p) => this.#tasks.get(p)));
  }

  /** Gives tasks up: commits what is complete and closes their producers. */
  async revoke(partitions: readonly number[]): Promise<void> {
    await Promise.allSettled([...new Set(partitions)].map(async (partition) => {
      const task = this.#tasks.get(partition);
      const ready = this.#ready.get(partition);
      this.#tasks.delete(partition);
      this.#ready.delete(partition);
      // An open task starts closing now (it takes no more sends from here on).
      const closing = ready !== undefined
        ? ready.close()
        : (async () => await (await task)?.close())();
      const entry = { done: closing, task: ready };
      this.#closing.set(partition, entry);
      try {
        await closing;
      } finally {
        if (this.#closing.get(partition) === entry) this.#closing.delete(partition);
      }
    }));
  }

  /** The producer a record's sends go to: its task's open transaction. */
  producerFor(record: ConsumedRecord): Producer {
    const task = this.#ready.get(record.partition);
    return {
      async send(records: readonly OutgoingRecord[]): Promise<DeliveryReport[]> {
        if (task === undefined) {
          throw new PipelineError(
            `Cannot send for partition ${record.partition} of "${record.topic}" as this member ` +
              `does not own its task`,
            { topic: record.topic, partition: record.partition, offset: record.offset },
          );
        }
        await task.send(record, records);
        // Offsets of records in a transaction are not known before it commits; no caller here
        // reads them.
        return records.map((r) => ({ topic: r.topic, partition: r.partition ?? -1, offset: -1 }));
      },
      close: () => Promise.resolve(),
    };
  }

  /** Tells the record's task that its handler returned (`ok`) or threw. */
  settled(record: ConsumedRecord, ok: boolean): void {
    // A task being revoked still hears of the records its last transaction holds: that
    // transaction commits once they have settled.
    const closing = this.#closing.get(record.partition)?.task;
    if (closing?.holds(record)) return closing.settled(record, ok);
    this.#ready.get(record.partition)?.settled(record, ok);
  }

  /**
   * The consumer's position passed records it never hands over (see
   * `ConsumerOptions.onPosition`): the position's task commits it with its next transaction.
   */
  passed(position: TransactionOffset): void {
    this.#ready.get(position.partition)?.passed(position.topic, position.offset);
  }

  /** Commits without lingering from now on: the member is stopping. */
  drain(): void {
    for (const task of this.#ready.values()) task.drain();
  }

  /** Closes every task. */
  async close(): Promise<void> {
    await this.revoke([...this.#tasks.keys()]);
  }
}
