/**
 * Running a pipeline on a transport: provision its topics, start consumer group members for
 * its stages, and know when every record published so far has an outcome (drained).
 *
 * @module
 */
import { batchingProducer } from "./batching_producer.ts";
import type { BatchingProducerOptions } from "./batching_producer.ts";
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import type { Pipeline, ResolvedStageNode } from "./definition.ts";
import { errorMessage, PipelineError } from "./errors.ts";
import { getLogger } from "./log.ts";
import { processingGuarantee } from "./guarantee.ts";
import type { ProcessingGuarantee } from "./guarantee.ts";
import { createStageState, writeTombstones } from "./state_store.ts";
import type { RestoreEvent, StageState } from "./state_store.ts";
import type { Instrumentation } from "./instrumentation.ts";
import type { Random } from "./random.ts";
import { createRecordHandler } from "./runner.ts";
import type { StageOutcome } from "./runner.ts";
import type {
  ConsumedRecord,
  Consumer,
  ConsumerStatus,
  Producer,
  RebalanceListener,
  RecordHandler,
  TopicPartition,
  Transport,
} from "./transport/transport.ts";
import type { MemberState } from "./health.ts";
import { TaskTransactions } from "./_task_transactions.ts";

const log = getLogger(["pipeline", "run"]);

function floorKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}
/**
 * How often a member expires state entries past their retention: a quarter of the retention,
 * from 1 s to 60 s. The entries held are those of the retention plus up to one interval, so a
 * short retention gets a short interval (memory stays bounded by about 1.25 retentions of keys).
 */
export function expiryIntervalMs(stateRetentionMs: number): number {
  return Math.min(60_000, Math.max(1_000, Math.floor(stateRetentionMs / 4)));
}

/** Options for {@linkcode startStageMember}. */
export interface StageMemberOptions {
  /** The transport to consume and produce on. */
  readonly transport: Transport;
  /** The producer for outputs, retries and dead letters (shared by members of one process). */
  readonly producer: Producer;
  /**
   * Time and waiting.
   * @default systemClock
   */
  readonly clock?: Clock;
  /**
   * Randomness for backoff jitter.
   * @default Math.random
   */
  readonly random?: Random;
  /**
   * Told when the member starts restoring partitions' state and when they are restored (a
   * member restoring is not ready: wire it to `/readyz`).
   * @default none
   */
  readonly onRestore?: (event: RestoreEvent) => void;
  /** Called once per delivery, after its outcome is durable. */
  readonly onOutcome?: (outcome: StageOutcome) => void;
  /** Tracing and metrics. */
  readonly instrumentation?: Instrumentation;
  /**
   * How the member batches its sends (outputs, retry forwards, dead letters) on `producer`:
   * records handed over are acknowledged together, so a partition's next record need not wait
   * for a produce round trip. Linger runs on the real clock whatever `clock` is.
   * @default `maxBatchRecords` 500, `lingerMs` 2
   */
  readonly batching?: Omit<BatchingProducerOptions, "closeProducer" | "clock">;
  /**
   * Records of one partition handed over but not yet durable before the member waits.
   * @default 1000
   */
  readonly maxPendingPerPartition?: number;
  /**
   * Told the member's readiness state (see `health.ts`): `assigning` from the start and at
   * each rebalance, `restoring` while the state stores of partitions it was given restore from
   * their changelogs (keyed stages), `consuming` once every one is restored (at once for a
   * stage without state), `stopped` when the client library stopped the consumer for good;
   * the member's owner then closes and replaces it.
   * @default none
   */
  readonly onState?: (state: MemberState, detail?: string) => void;
  /**
   * The processing guarantee (`PROCESSING_GUARANTEE`).
   * @default "at_least_once"
   */
  readonly guarantee?: ProcessingGuarantee;
  /**
   * Exactly-once mode: a task's transaction commits once it holds this many records.
   * @default 500
   */
  readonly transactionMaxRecords?: number;
  /**
   * Exactly-once mode: a task's transaction commits this long after its first record, in ms.
   * @default 100
   */
  readonly transactionLingerMs?: number;
}

/** The default of {@linkcode StageMemberOptions.transactionMaxRecords}. */
export const DEFAULT_TRANSACTION_MAX_RECORDS = 500;
/** The default of {@linkcode StageMemberOptions.transactionLingerMs}. */
export const DEFAULT_TRANSACTION_LINGER_MS = 100;

/** One running member of a stage's consumer group. */
export interface StageMember {
  /** The stage. */
  readonly stage: string;
  /** The consumer. */
  readonly consumer: Consumer;
  /** The member's state, for a keyed stage. */
  readonly state?: StageState;
  /**
   * Drains: stops fetching, finishes records in flight and waits for their outcomes to be
   * durable, commits, leaves the group, then flushes the member's batched sends.
   */
  close(): Promise<void>;
}

/**
 * Starts one consumer group member running a stage over its input and retry topics. Every
 * partition of those topics may be consumed at once, so a record waiting in a retry tier
 * never blocks the main topic.
 */
export async function startStageMember(
  node: ResolvedStageNode,
  options: StageMemberOptions,
): Promise<StageMember> {
  // Refused before anything starts: a member never runs with a guarantee it cannot keep.
  const guarantee = processingGuarantee(options.guarantee);
  const topics = [node.input, ...node.retryTopics];
  const { transport } = options;
  const clock = options.clock ?? systemClock;
  const partitions = node.retryTopics.length + 1;
  const { onState } = options;
  /** Whether the consumer has its partitions (since the last join). */
  let assigned = false;
  /** Input partitions whose state store is restoring: the member is not ready meanwhile. */
  const restoring = new Set<number>();
  function reportAssigned(): void {
    if (assigned) onState?.(restoring.size > 0 ? "restoring" : "consuming");
  }
  /** Turns the consumer's membership reports into the member's readiness state. */
  function onStatus(status: ConsumerStatus): void {
    if (status.type === "assigned") {
      assigned = true;
      reportAssigned();
      return;
    }
    assigned = false;
    // The restores of the last generation are aborted by the rebalance; the next ones report.
    restoring.clear();
    if (status.type === "joining") {
      onState?.("assigning");
    } else {
      onState?.(status.restart ? "assigning" : "stopped", errorMessage(status.error));
    }
  }
  /** Keeps the partitions restoring, whichever of the restore and the assignment comes first. */
  function restoreReported(event: RestoreEvent): void {
    for (const partition of event.partitions) {
      if (event.kind === "restoring") restoring.add(partition);
      else restoring.delete(partition);
    }
    reportAssigned();
  }
  onState?.("assigning");
  const state = node.changelog === undefined ? undefined : createStageState(transport, {
    changelog: node.changelog,
    retentionMs: node.stateRetentionMs,
    clock,
    onRestore(event) {
      if (event.kind === "restoring") {
        log.info("Restoring the state of partitions {partitions} from {changelog}", {
          stage: node.stage.name,
          changelog: event.changelog,
          partitions: event.partitions.join(","),
        });
      } else {
        log.info("Restored {keys} keys of partitions {partitions} in {ms} ms", {
          stage: node.stage.name,
          changelog: event.changelog,
          partitions: event.partitions.join(","),
          keys: event.keys,
          ms: event.ms,
        });
      }
      restoreReported(event);
      options.onRestore?.(event);
    },
  });
  const tasks = guarantee !== "exactly_once" ? undefined : new TaskTransactions({
    transport,
    group: node.group,
    input: node.input,
    maxRecords: options.transactionMaxRecords ?? DEFAULT_TRANSACTION_MAX_RECORDS,
    lingerMs: options.transactionLingerMs ?? DEFAULT_TRANSACTION_LINGER_MS,
  });
  /**
   * Exactly-once mode: per task partition, the offsets its group had committed once this member
   * opened (and so fenced) the task. The consumer read its position before that, while the
   * previous owner's last transaction may still have been committing (kafkajs' OffsetFetch does
   * not wait for pending transactional offsets: no KIP-447); records below are that
   * transaction's, already settled.
   */
  const floors = new Map<string, { readonly offset: number; logged: boolean }>();
  async function readFloors(partitions: readonly TopicPartition[]): Promise<void> {
    const numbers = new Set(partitions.map((p) => p.partition));
    for (const topic of new Set(partitions.map((p) => p.topic))) {
      for (const { partition, offset } of await transport.committedOffsets(node.group, topic)) {
        if (numbers.has(partition)) {
          floors.set(floorKey(topic, partition), { offset, logged: false });
        }
      }
    }
  }
  /** Whether the record is below its task's floor (skipped: logged once per floor). */
  function belowFloor(record: ConsumedRecord): boolean {
    const key = floorKey(record.topic, record.partition);
    const floor = floors.get(key);
    if (floor === undefined) return false;
    if (record.offset >= floor.offset) {
      // Records come in offset order: the floor is behind from now on.
      floors.delete(key);
      return false;
    }
    if (!floor.logged) {
      floor.logged = true;
      log.info(
        "Skipping records {offset} to {last} of {topic} partition {partition}: the previous " +
          "owner's last transaction committed past them",
        {
          stage: node.stage.name,
          topic: record.topic,
          partition: record.partition,
          offset: record.offset,
          last: floor.offset - 1,
        },
      );
    }
    return true;
  }
  const listener: RebalanceListener | undefined = state === undefined && tasks === undefined
    ? undefined
    : {
      async assigned(partitions, signal) {
        // The task's producer first: opening it fences the previous owner, whose open
        // transaction (changelog entries included) is aborted before the restore reads.
        // Without tasks the restore starts synchronously, before the consumer reports the
        // assignment, so the member goes from assigning straight to restoring.
        if (tasks !== undefined) {
          await tasks.assign(partitions.map((p) => p.partition));
          await readFloors(partitions);
        }
        await state?.listener.assigned(partitions, signal);
      },
      revoked(partitions) {
        // Partitions revoked while restoring are no longer waited for.
        for (const { partition } of partitions) restoring.delete(partition);
        state?.listener.revoked(partitions);
        tasks?.revoke(partitions.map((p) => p.partition)).catch((error: unknown) =>
          log.warn("Cannot close the transactions of revoked tasks: {error_reason}", {
            stage: node.stage.name,
            error_reason: errorMessage(error),
          })
        );
        reportAssigned();
      },
    };
  const consumer = await transport.consumer({
    onStatus,
    groupId: node.group,
    topics,
    // Each topic of the stage has the input's partition count.
    partitionConcurrency: partitions * (await transport.endOffsets(node.input)).end.length,
    maxPendingPerPartition: options.maxPendingPerPartition,
    // Partition p of the input and of every tier is one task, owning partition p's state.
    copartitioned: true,
    rebalanceListener: listener,
    // In the exactly-once mode the offsets are committed with the tasks' transactions, past
    // the control records that end them in the retry tiers too.
    commitOffsets: tasks === undefined,
    onPosition: tasks === undefined ? undefined : (position) => tasks.passed(position),
  });
  // The member's own batching over the shared producer, which its owner closes.
  const producer = batchingProducer(options.producer, {
    ...options.batching,
    closeProducer: false,
  });
  const inner = createRecordHandler(node, {
    producer,
    producerFor: tasks === undefined ? undefined : (record) => tasks.producerFor(record),
    group: node.group,
    clock,
    random: options.random ?? Math.random,
    state,
    onOutcome: options.onOutcome,
    instrumentation: options.instrumentation,
  });
  const handler: RecordHandler = tasks === undefined ? inner : async (record, context) => {
    if (floors.size > 0 && belowFloor(record)) return;
    let ok = false;
    try {
      const result = await inner(record, context);
      ok = true;
      return result;
    } finally {
      tasks.settled(record, ok);
    }
  };
  try {
    await consumer.run(handler);
  } catch (error) {
    await consumer.close().catch(() => undefined);
    await tasks?.close();
    await producer.close();
    throw error;
  }
  // Expired entries leave memory and get tombstones in the changelog (compaction drops them).
  // One expiry writes at a time, a bounded batch per send: the next waits until it is done.
  let expiring = false;
  const expiry = state === undefined ? undefined : setInterval(function expireState() {
    if (expiring) return;
    const tombstones = state.expire();
    if (tombstones.length === 0) return;
    expiring = true;
    writeTombstones(producer, tombstones).catch((error: unknown) => {
      // Harmless: the entries are gone from memory, and a restore drops them again.
      log.warn("Cannot write {count} state tombstones: {error_reason}", {
        count: tombstones.length,
        error_reason: errorMessage(error),
      });
    }).finally(() => expiring = false);
  }, expiryIntervalMs(node.stateRetentionMs));
  let closed: Promise<void> | undefined;
  async function closeMember(): Promise<void> {
    clearInterval(expiry);
    tasks?.drain();
    try {
      await consumer.close();
    } finally {
      await tasks?.close();
      await producer.close();
    }
  }
  return {
    stage: node.stage.name,
    consumer,
    state,
    close: () => closed ??= closeMember(),
  };
}

/** Options for {@linkcode startPipeline}. */
export interface StartPipelineOptions extends Omit<StageMemberOptions, "producer" | "onState"> {
  /**
   * Told each member's readiness state, with its id (`<stage>#<index>`).
   * @default none
   */
  readonly onMemberState?: (
    member: string,
    stage: string,
    state: MemberState,
    detail?: string,
  ) => void;
  /**
   * Members per stage in this process.
   * @default the stage's `concurrency`
   */
  readonly members?: (node: ResolvedStageNode) => number;
}

/** A pipeline running in this process. */
export interface RunningPipeline {
  /** The pipeline. */
  readonly pipeline: Pipeline;
  /** The producer members share; sources may publish with it. */
  readonly producer: Producer;
  /** The members, by stage. */
  readonly members: readonly StageMember[];
  /** Drains every member, then closes the producer. */
  stop(): Promise<void>;
}

/**
 * Provisions the pipeline's topics and starts its stages in this process.
 *
 * @example
 * ```ts ignore
 * const running = await startPipeline(pipeline, { transport });
 * // publish, then:
 * await waitUntilDrained(pipeline, transport);
 * await running.stop();
 * ```
 */
export async function startPipeline(
  pipeline: Pipeline,
  options: StartPipelineOptions,
): Promise<RunningPipeline> {
  const { transport } = options;
  processingGuarantee(options.guarantee);
  await transport.ensureTopics(pipeline.topics);
  const producer = await transport.producer();
  const members: StageMember[] = [];
  try {
    for (const node of pipeline.stages) {
      const count = options.members?.(node) ?? node.concurrency;
      for (let i = 0; i < count; i++) {
        const id = `${node.stage.name}#${i}`;
        const onMemberState = options.onMemberState;
        const onState = onMemberState === undefined
          ? undefined
          : (state: MemberState, detail?: string) =>
            onMemberState(id, node.stage.name, state, detail);
        members.push(await startStageMember(node, { ...options, producer, onState }));
      }
    }
  } catch (error) {
    await Promise.allSettled(members.map((m) => m.close()));
    await producer.close();
    throw error;
  }
  return {
    pipeline,
    producer,
    members,
    async stop(): Promise<void> {
      const closed = await Promise.allSettled(members.map((m) => m.close()));
      await producer.close();
      const failure = closed.find((c) => c.status === "rejected");
      if (failure) throw (failure as PromiseRejectedResult).reason;
    },
  };
}

/** How far behind a stage's group is on one topic. */
export interface StageLag {
  /** The stage. */
  readonly stage: string;
  /** The group. */
  readonly group: string;
  /** The topic. */
  readonly topic: string;
  /** Records not yet committed, summed over partitions. */
  readonly lag: number;
  /** Per partition: records not yet committed. */
  readonly partitions: readonly { partition: number; lag: number }[];
}

/** The lag of every stage on its input and retry topics. */
export async function pipelineLag(pipeline: Pipeline, transport: Transport): Promise<StageLag[]> {
  const lags: StageLag[] = [];
  for (const node of pipeline.stages) {
    for (const topic of [node.input, ...node.retryTopics]) {
      const [end, committed] = await Promise.all([
        transport.endOffsets(topic),
        transport.committedOffsets(node.group, topic),
      ]);
      const done = new Map(committed.map((c) => [c.partition, c.offset]));
      const partitions = end.end.map((e) => ({
        partition: e.partition,
        lag: Math.max(0, e.offset - (done.get(e.partition) ?? 0)),
      }));
      lags.push({
        stage: node.stage.name,
        group: node.group,
        topic,
        lag: partitions.reduce((sum, p) => sum + p.lag, 0),
        partitions,
      });
    }
  }
  return lags;
}

/** Whether every consumed topic's end offsets still equal the committed offsets just read. */
async function endOffsetsUnchanged(
  pipeline: Pipeline,
  transport: Transport,
  lags: readonly StageLag[],
): Promise<boolean> {
  for (const lag of lags) {
    const node = pipeline.stage(lag.stage);
    const committed = await transport.committedOffsets(node.group, lag.topic);
    const end = await transport.endOffsets(lag.topic);
    const done = new Map(committed.map((c) => [c.partition, c.offset]));
    if (end.end.some((e) => e.offset !== (done.get(e.partition) ?? 0))) return false;
  }
  return true;
}

/** Options for {@linkcode waitUntilDrained}. */
export interface WaitUntilDrainedOptions {
  /**
   * Give up after this long, in milliseconds.
   * @default 60000
   */
  readonly timeoutMs?: number;
  /**
   * How often to look, in milliseconds.
   * @default 50
   */
  readonly pollMs?: number;
  /** Stops waiting early. */
  readonly signal?: AbortSignal;
  /** Called on each look with the total lag, for progress lines. */
  readonly onPoll?: (lag: number) => void;
}

/**
 * Resolves once every stage has committed every record of its input and retry topics, i.e.
 * every record published so far has a durable outcome. Retry tiers are included, so a record
 * waiting out a tier delay keeps the pipeline undrained until it is done.
 *
 * @throws {PipelineError} when `timeoutMs` passes first, with the lag that is left
 */
export async function waitUntilDrained(
  pipeline: Pipeline,
  transport: Transport,
  options: WaitUntilDrainedOptions = {},
): Promise<void> {
  const { timeoutMs = 60_000, pollMs = 50, signal, onPoll } = options;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    signal?.throwIfAborted();
    const lags = await pipelineLag(pipeline, transport);
    const total = lags.reduce((sum, l) => sum + l.lag, 0);
    onPoll?.(total);
    // A record can move from one stage's input to the next between two reads of one poll;
    // drained only counts when no topic grew while the committed offsets were read.
    if (total === 0 && await endOffsetsUnchanged(pipeline, transport, lags)) return;
    if (Date.now() > deadline) {
      const behind = lags.filter((l) => l.lag > 0).map((l) =>
        `${l.group} on "${l.topic}": ${l.lag}`
      );
      throw new PipelineError(
        `Cannot drain pipeline "${pipeline.name}" within ${timeoutMs} ms: records left: ${
          behind.join(", ") || "(topics still growing)"
        }`,
      );
    }
    await systemClock.sleep(pollMs, signal);
  }
}
