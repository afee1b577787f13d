/**
 * The kafkajs consumer behind {@linkcode Consumer}, committing offsets itself.
 *
 * kafkajs runs with `autoCommit: false`. After `eachRecord` resolves, the record's offset + 1 is
 * marked completed; completed offsets are committed every `commitInterval` ms or
 * `commitThreshold` records, when the group starts rebalancing (still under the old
 * generation, which the broker accepts while the group prepares to rebalance), and on close.
 *
 * Why this is at-least-once: a partition's records are handled one at a time in offset order,
 * and a record whose handler rejected blocks its partition's completed offset until it is
 * delivered again and succeeds, so nothing past it is ever committed. Completions from before a
 * rebalance or crash are dropped rather than committed under the next generation; those
 * records are delivered again (duplicates, never losses).
 *
 * Pipelined records: a handler resolving with a `RecordAck` lets `eachMessage` resolve at once,
 * so kafkajs hands over the partition's next record while the first one's `durable` is pending.
 * Each partition keeps its delivered-but-uncommitted records in offset order in the shared
 * `PartitionCheckpointer` (`../checkpointer.ts`, the embedded transport's too); only the longest
 * complete prefix becomes the completed offset, which the commits above then carry. A rejected
 * `durable` drops that record and every later one of the partition (their completions are
 * ignored when they land: the partition's rewind count changed), seeks the partition back to
 * it, and skips records fetched before the seek until the sought offset comes round again. At
 * `maxPendingPerPartition` uncommitted records, `eachMessage` waits (heartbeating) for the
 * oldest before returning. Close waits for every pending `durable` before its final commit; on
 * a rebalance the commit is made once the generation's pending records settle, if the group
 * has not moved on by then (otherwise they are delivered again: duplicates, never losses).
 *
 * Backpressure: kafkajs fetches a batch per partition and hands it over one record at a time,
 * fetching again only when the batches in hand are done. So at most one record per partition
 * is in a handler at once, and at most `min(partitionConcurrency, partitions owned)` in all;
 * fetched records waiting for a handler are bounded by kafkajs's `maxBytesPerPartition`
 * (1 MiB) per partition and `maxBytes` (10 MiB) per fetch.
 *
 * @module
 */
import type { Consumer as KafkaConsumer, Kafka, KafkaMessage } from "kafkajs";
import { errorMessage, PipelineError, RetryableError } from "../../errors.ts";
import type {
  Assignment,
  Consumer,
  ConsumerOptions,
  RecordAck,
  RecordContext,
  RecordHandler,
  TopicPartition,
} from "../transport.ts";
import { isRecordAck } from "../transport.ts";
import { copartitionedAssigner } from "./_copartitioned_assigner.ts";
import { toPipelineError } from "./_errors.ts";
import { toRecord } from "./_records.ts";
import { validateConsumerOptions } from "../_consumer_options.ts";
import { PartitionCheckpointer } from "../checkpointer.ts";
import type { KafkaLogger } from "./_logger.ts";

/** Settings the consumer takes from the transport options. */
export interface ConsumerSettings {
  /** Commit completed offsets at least this often, in milliseconds. */
  readonly commitInterval: number;
  /** Commit as soon as this many records completed since the last commit. */
  readonly commitThreshold: number;
  /** How long a fetch waits for records on the broker, in milliseconds. */
  readonly fetchMaxWait: number;
  /** How long the group waits for a silent member, in milliseconds. */
  readonly sessionTimeout: number;
  /** How often the member heartbeats, in milliseconds. */
  readonly heartbeatInterval: number;
  /** The consumer's backoff after failures (kafkajs `RetryOptions`). */
  readonly retry: {
    readonly retries?: number;
    readonly initialRetryTime?: number;
    readonly maxRetryTime?: number;
  };
  /** Where commit failures that nobody awaits are reported. */
  readonly logger: KafkaLogger;
}

interface Completed {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to read: the completed record's offset + 1. */
  readonly offset: number;
}

/** One partition's uncommitted records in the current generation. */
interface PartitionAcks {
  /** Tracks the delivered records and their durable prefix. */
  readonly checkpointer: PartitionCheckpointer;
  /** After a rewind, the offset the partition was sought to: other records are skipped. */
  rewindTo?: number;
  /** The offset rewound to last, and how many rewinds in a row went back to it. */
  streakAt?: number;
  streak?: number;
}

function partitionKey(topic: string, partition: number): string {
  return `${topic}\0${partition}`;
}

/** Opens a kafkajs consumer group member, connected and subscribed but not yet running. */
export async function openConsumer(
  kafka: Kafka,
  brokers: readonly string[],
  options: ConsumerOptions,
  settings: ConsumerSettings,
): Promise<Consumer> {
  const { concurrency, maxPending } = validateConsumerOptions(options);
  const { groupId } = options;
  const consumer: KafkaConsumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    readUncommitted: options.isolation === "read_uncommitted",
    maxWaitTimeInMs: settings.fetchMaxWait,
    sessionTimeout: settings.sessionTimeout,
    heartbeatInterval: settings.heartbeatInterval,
    retry: { ...settings.retry },
    ...(options.copartitioned ? { partitionAssigners: [copartitionedAssigner] } : {}),
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [...options.topics], fromBeginning: true });
  } catch (error) {
    await consumer.disconnect().catch(() => undefined);
    throw toPipelineError(`Cannot join consumer group "${groupId}"`, brokers, error);
  }

  /** Bumped whenever kafkajs's group generation ends; completions from older ones are void. */
  let epoch = 0;
  let owned: Record<string, readonly number[]> = {};
  let completed = new Map<string, Completed>();
  /** Per partition, the lowest offset whose handler rejected and that has not succeeded since. */
  let failed = new Map<string, number>();
  let partitionAborts = new Map<string, AbortController>();
  let acks = new Map<string, PartitionAcks>();
  /** Every `durable` not settled yet, of any generation: close waits for them. */
  const unsettled = new Set<Promise<void>>();
  let sinceCommit = 0;
  let commitChain: Promise<void> = Promise.resolve();
  let running = false;
  let closing = false;
  let closed: Promise<void> | undefined;
  const closeAbort = new AbortController();
  const inFlight = new Set<Promise<unknown>>();
  const listener = options.rebalanceListener;
  /** Partitions paused after a rewind, resumed by these timers (cleared on close). */
  const backoffTimers = new Set<ReturnType<typeof setTimeout>>();
  /** Per partition of the current generation, resolves once the listener restored it. */
  let restores = new Map<string, Promise<void>>();
  let restoreAbort = new AbortController();

  function endGeneration(): void {
    epoch++;
    restoreAbort.abort();
    restores = new Map();
    const lost: TopicPartition[] = Object.entries(owned).flatMap(([topic, partitions]) =>
      partitions.map((partition) => ({ topic, partition }))
    );
    if (lost.length > 0) listener?.revoked(lost);
    owned = {};
    completed = new Map();
    failed = new Map();
    // Completions of this generation's records are ignored from now on.
    for (const state of acks.values()) state.checkpointer.discard();
    acks = new Map();
    for (const controller of partitionAborts.values()) controller.abort();
    partitionAborts = new Map();
    sinceCommit = 0;
  }

  /** Commits the completed offsets of the current generation; one commit at a time. */
  function commit(): Promise<void> {
    const run = commitChain.then(async function commitCompleted() {
      if (!running || completed.size === 0) return;
      const snapshot = [...completed.values()];
      const epochAtStart = epoch;
      sinceCommit = 0;
      await consumer.commitOffsets(
        snapshot.map(({ topic, partition, offset }) => ({
          topic,
          partition,
          offset: String(offset),
        })),
      );
      if (epoch !== epochAtStart) return;
      for (const entry of snapshot) {
        const key = partitionKey(entry.topic, entry.partition);
        if (completed.get(key) === entry) completed.delete(key);
      }
    });
    commitChain = run.catch(() => undefined);
    return run;
  }

  function commitInBackground(): void {
    commit().catch(function reportCommitFailure(error) {
      settings.logger({
        level: "warn",
        namespace: "Transport",
        message: `Cannot commit offsets of group "${groupId}": ${errorMessage(error)}; ` +
          "trying again at the next commit",
        fields: {},
      });
    });
  }

  function partitionSignal(key: string): AbortSignal {
    if (closing) return closeAbort.signal;
    let controller = partitionAborts.get(key);
    if (!controller) {
      controller = new AbortController();
      partitionAborts.set(key, controller);
    }
    // One signal per partition and generation: `close()` and the end of the generation abort
    // it, so no per-record composite signal is needed.
    return controller.signal;
  }

  consumer.on(consumer.events.GROUP_JOIN, function onGroupJoin(event) {
    endGeneration();
    const assignment: Record<string, readonly number[]> = {};
    for (const topic of options.topics) {
      const partitions = event.payload.memberAssignment[topic];
      if (partitions?.length) assignment[topic] = [...partitions].sort((a, b) => a - b);
    }
    owned = assignment;
    running = true;
    // Restores start first, so the member reports "restoring" rather than ready in between.
    if (listener !== undefined) startRestore(assignment);
    options.onStatus?.({ type: "assigned", assignment: { partitions: { ...assignment } } });
  });

  /**
   * Calls the listener for every partition of the new generation (again after a backoff while
   * it rejects); records of those partitions wait for it in `handle`, heartbeating.
   */
  function startRestore(assignment: Record<string, readonly number[]>): void {
    restoreAbort = new AbortController();
    const { signal } = restoreAbort;
    const partitions: TopicPartition[] = Object.entries(assignment).flatMap(([topic, list]) =>
      list.map((partition) => ({ topic, partition }))
    );
    if (partitions.length === 0) return;
    const restored = (async function callAssigned() {
      let delay = settings.retry.initialRetryTime ?? 300;
      while (!signal.aborted) {
        try {
          await listener!.assigned(partitions, signal);
          return;
        } catch (error) {
          if (signal.aborted) return;
          settings.logger({
            level: "error",
            namespace: "Transport",
            message: `Cannot restore the state of partitions of group "${groupId}": ` +
              `${errorMessage(error)}; trying again in ${delay} ms`,
            fields: {},
          });
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, delay);
            signal.addEventListener("abort", () => {
              clearTimeout(timer);
              resolve();
            }, { once: true });
          });
          delay = Math.min(delay * 2, settings.retry.maxRetryTime ?? 30000);
        }
      }
    })();
    for (const { topic, partition } of partitions) {
      restores.set(partitionKey(topic, partition), restored);
    }
  }

  /** Waits, heartbeating, until the partition's state is restored. */
  async function untilRestored(
    restored: Promise<void>,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    let done = false;
    void restored.then(() => done = true);
    while (!done) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        restored,
        new Promise<void>((resolve) => timer = setTimeout(resolve, settings.heartbeatInterval)),
      ]);
      clearTimeout(timer);
      if (!done) await heartbeat().catch(() => undefined);
    }
  }
  consumer.on(consumer.events.REBALANCING, function onRebalancing() {
    // Every handler has returned by now (kafkajs waits for the batches in hand), and the
    // old generation may still commit: once its pending records settle, save what is done,
    // then forget it. If the group moved on first, the join has forgotten it already.
    const rebalancing = epoch;
    options.onStatus?.({ type: "joining" });
    // A snapshot: records of the next generation join `unsettled` too, and must not keep this
    // wait (and its loop) alive under steady traffic.
    void Promise.allSettled([...unsettled]).then(function commitGeneration() {
      if (epoch !== rebalancing) return;
      commitInBackground();
      return commitChain.then(function forgetGeneration() {
        if (epoch === rebalancing) endGeneration();
      });
    });
  });
  /** Per partition, the generation its batch in hand started in. */
  const batchEpochs = new Map<string, number>();
  consumer.on(consumer.events.START_BATCH_PROCESS, function onBatchStart(event) {
    batchEpochs.set(partitionKey(event.payload.topic, event.payload.partition), epoch);
  });
  /**
   * A batch's last offset counts the control records and aborted records kafkajs never hands
   * over (a batch of only those is reported too): once every record of the batch was handed
   * over in this generation, with no rewind or failure outstanding, the partition's position is
   * past it, and its committed offset may follow once every record before is complete.
   */
  consumer.on(consumer.events.END_BATCH_PROCESS, function onBatchEnd(event) {
    const { topic, partition, firstOffset, lastOffset } = event.payload;
    const key = partitionKey(topic, partition);
    const startedIn = batchEpochs.get(key);
    batchEpochs.delete(key);
    // kafkajs stops a batch early on a seek, a pause and a stop: ours are all told apart here.
    if (startedIn !== epoch || firstOffset === null) return;
    const position = Number(lastOffset) + 1;
    const restored = restores.get(key);
    if (restored === undefined) return passTo(key, topic, partition, position);
    // A batch of only control records can come before any record: its state restores first.
    const epochAtStart = epoch;
    void restored.then(() => {
      if (epoch === epochAtStart) passTo(key, topic, partition, position);
    });
  });

  function passTo(key: string, topic: string, partition: number, position: number): void {
    if (closing || !running || failed.has(key)) return;
    const state = acksOf(key, topic, partition);
    if (state.rewindTo !== undefined) return;
    state.checkpointer.passTo(position);
  }
  for (const event of [consumer.events.CRASH, consumer.events.STOP]) {
    consumer.on(event, function onStopped() {
      running = false;
      endGeneration();
    });
  }
  consumer.on(consumer.events.CRASH, function onCrash(event) {
    // kafkajs restarts the member itself after a retriable failure (`restart: true`); with
    // `restart: false` the member is stopped for good.
    if (closing) return;
    options.onStatus?.({
      type: "crashed",
      error: event.payload.error,
      restart: event.payload.restart,
    });
  });

  const timer = setInterval(function commitOnInterval() {
    if (completed.size > 0) commitInBackground();
  }, settings.commitInterval);

  /** Resolves once every `durable` handed over so far has settled. */
  async function settledPending(): Promise<void> {
    while (unsettled.size > 0) await Promise.allSettled([...unsettled]);
  }

  function acksOf(key: string, topic: string, partition: number): PartitionAcks {
    let state = acks.get(key);
    if (state === undefined) {
      const created: PartitionAcks = {
        checkpointer: new PartitionCheckpointer({
          unsettled,
          onAdvance(next, count, passed) {
            if (passed) options.onPosition?.({ topic, partition, offset: next });
            // The next commit carries it, unless something else commits.
            if (options.commitOffsets === false) return;
            completed.set(key, { topic, partition, offset: next });
            sinceCommit += count;
            if (sinceCommit >= settings.commitThreshold) commitInBackground();
          },
          onRewind: (from, failed, error) => rewind(created, topic, partition, from, failed, error),
        }),
      };
      state = created;
      acks.set(key, state);
    }
    return state;
  }

  /**
   * Delivers the partition again from `from`, its oldest uncommitted record (the checkpointer
   * dropped every pending one): seeks back, pauses the partition, and resumes it after a backoff.
   */
  function rewind(
    state: PartitionAcks,
    topic: string,
    partition: number,
    from: number,
    failed: number,
    error: unknown,
  ): void {
    state.rewindTo = from;
    // Backs off, doubling while the same offset keeps failing: an outcome that cannot be made
    // durable (a refused dead letter, a broker away) must not spin the partition.
    state.streak = state.streakAt === from ? (state.streak ?? 0) + 1 : 1;
    state.streakAt = from;
    const backoffMs = Math.min(
      (settings.retry.initialRetryTime ?? 300) * 2 ** (state.streak - 1),
      settings.retry.maxRetryTime ?? 30_000,
    );
    settings.logger({
      level: "warn",
      namespace: "Transport",
      message: `Cannot complete record ${failed} of topic "${topic}" partition ` +
        `${partition} in group "${groupId}": ${errorMessage(error)}; the partition is ` +
        `delivered again from ${from}, its oldest uncommitted record, in ${backoffMs} ms`,
      fields: { topic, partition, offset: failed, from, backoff_ms: backoffMs },
    });
    if (closing || !running) return;
    try {
      consumer.seek({ topic, partition, offset: String(from) });
      consumer.pause([{ topic, partitions: [partition] }]);
      const timer = setTimeout(function resumeAfterBackoff() {
        backoffTimers.delete(timer);
        // Resumed whatever the generation: kafkajs keeps a pause across rebalances, and a
        // partition left paused would never be read again by this member.
        if (closing) return;
        consumer.resume([{ topic, partitions: [partition] }]);
      }, backoffMs);
      backoffTimers.add(timer);
    } catch (seekError) {
      // Not running any more: the partition's next owner starts at the committed offset.
      settings.logger({
        level: "warn",
        namespace: "Transport",
        message: `Cannot seek topic "${topic}" partition ${partition} back to ${from}: ` +
          errorMessage(seekError),
        fields: { topic, partition, offset: from },
      });
    }
  }

  /** Waits, heartbeating, while the partition has `maxPending` uncommitted records. */
  async function belowBound(
    state: PartitionAcks,
    epochAtStart: number,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    while (state.checkpointer.size >= maxPending && epoch === epochAtStart) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const beat = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), settings.heartbeatInterval);
      });
      const timedOut = await Promise.race([
        state.checkpointer.oldestSettled().then(() => false),
        beat,
      ]);
      clearTimeout(timer);
      if (timedOut) await heartbeat().catch(() => undefined);
    }
  }

  async function handle(
    eachRecord: RecordHandler,
    topic: string,
    partition: number,
    message: KafkaMessage,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    // Closing: leave the record for the next owner of the partition.
    if (closing) return;
    const record = toRecord(topic, partition, message);
    const key = partitionKey(topic, partition);
    const epochAtStart = epoch;
    const restored = restores.get(key);
    if (restored !== undefined) {
      // No record of a partition is handled before its state is restored.
      await untilRestored(restored, heartbeat);
      // The generation ended while restoring: the next owner reads it from the committed offset.
      if (epoch !== epochAtStart || closing) return;
      restores.delete(key);
    }
    const state = acksOf(key, topic, partition);
    if (state.rewindTo !== undefined) {
      // Fetched before the partition was sought back: it comes round again after the seek.
      if (record.offset !== state.rewindTo) return;
      state.rewindTo = undefined;
    }
    const rewindsAtStart = state.checkpointer.rewinds;
    const signal = partitionSignal(key);
    const context: RecordContext = {
      signal,
      async heartbeat() {
        try {
          await heartbeat();
        } catch (error) {
          partitionAborts.get(key)?.abort();
          throw toPipelineError(`Cannot heartbeat in group "${groupId}"`, brokers, error, {
            topic,
            partition,
            offset: record.offset,
          });
        }
      },
    };
    let result: void | RecordAck;
    try {
      result = await eachRecord(record, context);
    } catch (error) {
      if (epoch === epochAtStart) {
        const lowest = failed.get(key);
        if (lowest === undefined || record.offset < lowest) failed.set(key, record.offset);
      }
      // A retriable error makes kafkajs fetch the record again instead of crashing for good.
      throw new RetryableError(
        `Cannot complete record ${record.offset} of topic "${topic}" partition ${partition}: ` +
          `${errorMessage(error)}; it will be delivered again`,
        { topic, partition, offset: record.offset, cause: error },
      );
    }
    const ack = isRecordAck(result) ? result : undefined;
    if (epoch !== epochAtStart || state.checkpointer.rewinds !== rewindsAtStart) {
      // An earlier record of the partition failed meanwhile: this one is delivered again.
      state.checkpointer.forget(ack);
      return;
    }
    const lowestFailed = failed.get(key);
    if (lowestFailed !== undefined) {
      if (record.offset > lowestFailed) {
        state.checkpointer.forget(ack);
        return;
      }
      failed.delete(key);
    }
    // Complete now (`void`), or once its `durable` resolves; committed with its prefix.
    state.checkpointer.track(record.offset, ack);
    if (ack !== undefined) await belowBound(state, epochAtStart, heartbeat);
  }

  async function run(eachRecord: RecordHandler): Promise<void> {
    if (closed) throw new PipelineError(`Cannot run consumer of group "${groupId}": it is closed`);
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: concurrency,
      eachMessage({ topic, partition, message, heartbeat }) {
        const work = handle(eachRecord, topic, partition, message, heartbeat);
        inFlight.add(work);
        return work.finally(() => inFlight.delete(work));
      },
    });
  }

  async function drain(): Promise<void> {
    closing = true;
    closeAbort.abort();
    for (const controller of partitionAborts.values()) controller.abort();
    clearInterval(timer);
    for (const backoff of backoffTimers) clearTimeout(backoff);
    backoffTimers.clear();
    let failure: unknown;
    try {
      // Paused partitions are neither fetched nor handed over; kafkajs stops a batch at the
      // next record, which `handle` leaves alone now anyway.
      if (running) consumer.pause(options.topics.map((topic) => ({ topic })));
      await Promise.allSettled([...inFlight]);
      // Outcomes on their way settle on their own (sends time out); the prefix they complete
      // is committed now.
      await settledPending();
      await commit();
    } catch (error) {
      failure = error;
    }
    running = false;
    await consumer.disconnect();
    if (failure !== undefined) {
      throw toPipelineError(
        `Cannot commit offsets of group "${groupId}" on close`,
        brokers,
        failure,
      );
    }
  }

  function close(): Promise<void> {
    closed ??= drain();
    return closed;
  }

  function assignment(): Assignment {
    return { partitions: { ...owned } };
  }

  return { run, close, assignment };
}
