/**
 * An idempotency store backed by the topics a stage writes: every input that has an outcome
 * left a record in the stage's output topic or its dead-letter topic, so reading those topics
 * tells any member, in any process or worker, which inputs are already done. This is the store
 * members need when they do not share memory (workers, restarts, several hosts).
 *
 * @module
 */
import type { ResolvedStageNode } from "./definition.ts";
import { PipelineError } from "./errors.ts";
import { HEADER } from "./headers.ts";
import type { IdempotencyStore, KnownOutcome } from "./idempotency.ts";
import type {
  Assignment,
  ConsumedRecord,
  Consumer,
  PartitionOffset,
  Transport,
} from "./transport/transport.ts";

/** Options for {@linkcode topicIdempotencyStore}. */
export interface TopicIdempotencyStoreOptions {
  /**
   * The topics whose records mark an input as done: the stage's output topic and its
   * dead-letter topic. A record of the first topic means `"output"`, of any other topic
   * `"dead-lettered"`.
   */
  readonly topics: readonly string[];
  /**
   * The idempotency key a record stands for, or `undefined` to ignore the record. For the
   * dead-letter topic this is the record key, which the runtime sets to the original key.
   */
  keyOf(record: ConsumedRecord): string | undefined;
  /**
   * The consumer group the reader's own group id is derived from:
   * `<group>.idempotency.<uuid>`.
   * @default "idempotency"
   */
  readonly group?: string;
  /**
   * How long one `restore()` may take, in milliseconds.
   * @default 60000
   */
  readonly restoreTimeoutMs?: number;
}

/** A {@linkcode IdempotencyStore} that learns outcomes from topics. */
export interface TopicIdempotencyStore extends IdempotencyStore {
  /** Keys known, from the topics and from `set`. */
  readonly size: number;
  /** The reader's consumer group id. */
  readonly groupId: string;
  /** Stops reading the topics. The store still answers from what it learned. */
  close(): Promise<void>;
}

interface Waiter {
  readonly ends: readonly { topic: string; partition: number; offset: number }[];
  readonly resolve: () => void;
}

/**
 * Creates a store that remembers outcomes found in `topics`. `restore()` reads them from the
 * beginning (the first call) or from where it last got to (later calls) up to the end offsets
 * taken when it was called; `get` and `set` work as in {@linkcode memoryIdempotencyStore}.
 *
 * The reader is a consumer in a fresh group of its own (the {@linkcode Transport} has no
 * group-less reader), so it owns every partition; it keeps reading between restores, which
 * only makes the store more current.
 *
 * @example
 * ```ts ignore
 * const store = topicIdempotencyStore(transport, {
 *   topics: ["payments", "orders.dlq"],
 *   keyOf: (record) => record.key === null ? undefined : new TextDecoder().decode(record.key),
 * });
 * await store.restore();
 * console.log(await store.get("order-1")); // "output" if a payment for it exists
 * ```
 */
export function topicIdempotencyStore(
  transport: Transport,
  options: TopicIdempotencyStoreOptions,
): TopicIdempotencyStore {
  const { topics, keyOf, group = "idempotency", restoreTimeoutMs = 60_000 } = options;
  if (topics.length === 0) {
    throw new PipelineError(
      `Cannot create the topic idempotency store as 'topics' is empty`,
      { field: "topics" },
    );
  }
  const groupId = `${group}.idempotency.${crypto.randomUUID()}`;
  const outcomes = new Map<string, KnownOutcome>();
  // Next offset to read, per "topic\0partition".
  const positions = new Map<string, number>();
  let waiters: Waiter[] = [];
  let consumer: Consumer | undefined;
  let starting: Promise<Consumer> | undefined;
  let closed = false;

  const positionKey = (topic: string, partition: number) => `${topic}\0${partition}`;

  function caughtUp(waiter: Waiter): boolean {
    return waiter.ends.every((end) =>
      (positions.get(positionKey(end.topic, end.partition)) ?? 0) >= end.offset
    );
  }

  function wake(): void {
    const still: Waiter[] = [];
    for (const waiter of waiters) {
      if (caughtUp(waiter)) waiter.resolve();
      else still.push(waiter);
    }
    waiters = still;
  }

  // deno-lint-ignore require-await -- a RecordHandler returns a promise; this one has nothing to wait for.
  async function learn(record: ConsumedRecord): Promise<void> {
    const key = keyOf(record);
    if (key !== undefined) {
      const outcome: KnownOutcome = record.topic === topics[0] ? "output" : "dead-lettered";
      // An output wins over a dead letter: the input was handled.
      if (outcomes.get(key) !== "output") outcomes.set(key, outcome);
    }
    const at = positionKey(record.topic, record.partition);
    positions.set(at, Math.max(positions.get(at) ?? 0, record.offset + 1));
    wake();
  }

  function reader(): Promise<Consumer> {
    starting ??= openReader().catch((error: unknown) => {
      // Not cached: a broker hiccup at start must not break the store until the worker restarts.
      starting = undefined;
      throw error;
    });
    return starting;
  }

  async function openReader(): Promise<Consumer> {
    const opened = await transport.consumer({
      groupId,
      topics,
      partitionConcurrency: Math.max(1, await partitionCount()),
    });
    try {
      await opened.run(learn);
    } catch (error) {
      await opened.close();
      throw error;
    }
    consumer = opened;
    return opened;
  }

  async function partitionCount(): Promise<number> {
    let count = 0;
    for (const topic of topics) count += (await transport.endOffsets(topic)).end.length;
    return count;
  }

  /**
   * The end offsets to read up to: partitions with records still in the log. A partition that
   * is empty, or that retention emptied (start == end > 0), has nothing to read, and the reader
   * would never see a record there to move its position to the end.
   */
  async function endsNow(): Promise<{ topic: string; partition: number; offset: number }[]> {
    const ends: { topic: string; partition: number; offset: number }[] = [];
    for (const topic of topics) {
      const offsets = await transport.endOffsets(topic);
      const starts = new Map(offsets.start.map((p: PartitionOffset) => [p.partition, p.offset]));
      ends.push(
        ...offsets.end
          .filter((end: PartitionOffset) => end.offset > (starts.get(end.partition) ?? 0))
          .map((end: PartitionOffset) => ({ topic, partition: end.partition, offset: end.offset })),
      );
    }
    return ends;
  }

  return {
    groupId,
    get size(): number {
      return outcomes.size;
    },
    async restore(signal?: AbortSignal): Promise<void> {
      if (closed) throw new PipelineError(`Cannot restore idempotency store "${groupId}": closed`);
      const ends = await endsNow();
      await reader();
      await new Promise<void>((resolve, reject) => {
        const entry: Waiter = { ends, resolve: () => done(resolve) };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== entry);
          done(() =>
            reject(
              new PipelineError(
                `Cannot restore idempotency store from topics ${
                  topics.map((t) => `"${t}"`).join(", ")
                } within ${restoreTimeoutMs} ms`,
                { topic: topics[0] },
              ),
            )
          );
        }, restoreTimeoutMs);
        const onAbort = () => {
          waiters = waiters.filter((w) => w !== entry);
          done(() => reject(signal?.reason));
        };
        function done(settle: () => void): void {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          settle();
        }
        if (signal?.aborted) return onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
        if (caughtUp(entry)) return entry.resolve();
        waiters.push(entry);
      });
    },
    get(key: string): Promise<KnownOutcome | undefined> {
      return Promise.resolve(outcomes.get(key));
    },
    set(key: string, outcome: KnownOutcome): Promise<void> {
      if (outcomes.get(key) !== "output") outcomes.set(key, outcome);
      return Promise.resolve();
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      const opened = consumer ?? (starting ? await starting.catch(() => undefined) : undefined);
      await opened?.close();
    },
  };
}

/**
 * Wraps a store so that `get` first restores it whenever the member's assignment changed
 * since the last restore (the first record after a rebalance): partitions taken over from
 * another member may hold inputs that member already handled.
 *
 * @param assignment the member's current assignment, or `undefined` while it is not known yet
 *   (then every `get` restores, which is cheap once caught up)
 */
export function restoringOnAssignment(
  store: IdempotencyStore,
  assignment: () => Assignment | undefined,
): IdempotencyStore {
  let restoredFor: string | undefined;
  let inFlight: Promise<void> | undefined;

  function canonical(current: Assignment | undefined): string {
    if (current === undefined) return "";
    return JSON.stringify(
      Object.keys(current.partitions).sort().map((topic) => [
        topic,
        [...current.partitions[topic]].sort((a, b) => a - b),
      ]),
    );
  }

  async function ensureRestored(): Promise<void> {
    while (true) {
      const wanted = canonical(assignment());
      if (wanted !== "" && wanted === restoredFor) return;
      if (inFlight) {
        await inFlight;
        if (wanted === "") return;
        continue;
      }
      inFlight = store.restore()
        .then(() => {
          restoredFor = wanted;
        })
        .finally(() => inFlight = undefined);
      await inFlight;
      if (wanted === "") return;
    }
  }

  return {
    restore: (signal?: AbortSignal) => store.restore(signal),
    async get(key: string): Promise<KnownOutcome | undefined> {
      await ensureRestored();
      return store.get(key);
    },
    set: (key: string, outcome: KnownOutcome) => store.set(key, outcome),
  };
}

const decoder = new TextDecoder();

/**
 * The topic-backed store of a keyed stage: its output topic and its dead-letter topic. The
 * stage keys outputs and dead letters by the record key (the DLQ keeps the original key), so a
 * record key in either topic marks that input as done; a dead letter only when it settled its
 * key (header `x-key-outcome`): an undecodable record, or one under a key that is not its
 * value's, leaves its key open for the real record.
 */
export function stageOutcomeStore(
  transport: Transport,
  node: ResolvedStageNode,
): TopicIdempotencyStore {
  return topicIdempotencyStore(transport, {
    topics: node.output === undefined ? [node.deadLetter] : [node.output, node.deadLetter],
    keyOf(record) {
      if (record.key === null) return undefined;
      if (record.topic === node.deadLetter && record.headers[HEADER.KEY_OUTCOME] === undefined) {
        return undefined;
      }
      return decoder.decode(record.key);
    },
    group: node.group,
  });
}
