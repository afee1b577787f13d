/**
 * The @platformatic/kafka consumer behind {@linkcode Consumer}, committing offsets itself.
 *
 * The client runs with `autocommit: false` and heartbeats on its own timer, so a slow handler
 * never costs the membership (`RecordContext.heartbeat` has nothing to add). Records come from
 * one `MessagesStream` per group generation, read here and handed to one lane per partition:
 * at most one record of a partition is in a handler at once, and at most
 * `partitionConcurrency` partitions are handled at the same time.
 *
 * Offsets (see `_offsets.ts`, on the shared `PartitionCheckpointer` of `../checkpointer.ts`,
 * which the kafkajs and embedded transports use too): the longest complete prefix of each
 * partition is committed every `commitInterval` ms or `commitThreshold` records, when the group
 * starts rebalancing (once that generation's pending records settled, if the group has not moved
 * on), and on close. A rejected `durable` or handler rewinds the partition to its oldest
 * uncommitted record: the stream's next fetch position is set back, records fetched before that
 * are skipped until the sought offset comes round again (`PartitionBook`), and the partition is
 * delivered again after a backoff (`initialRetryTime`, doubling while the same offset keeps
 * failing, up to `maxRetryTime`).
 *
 * A `rebalanceListener` is told of every partition of each new generation; no record of them is
 * handled before its `assigned` resolved (called again after a backoff while it rejects), and
 * `revoked` hears of the partitions of the generation that ended. `copartitioned` installs a
 * partition assigner of our own (`_copartitioned_assigner.ts`, through the client's
 * `partitionAssigner` and `protocols` options): partition p of every topic on one member.
 *
 * Rebalances: each join starts a new generation: the records in flight of the old one are
 * forgotten (their completions ignored), a new stream is opened (it starts at the committed
 * offsets of the partitions now owned) and the old one is closed, so no record fetched under the
 * old generation is delivered under the new one. Duplicates, never losses.
 *
 * Control records and, for `read_committed`, the aborted records the client filters out are never
 * handed over, yet the stream's next fetch position (`offsetsToFetch`) passes them. Once every
 * message the stream pushed has been taken (counted through the client's `consumer:receives`
 * diagnostics channel), that position is queued in each partition's lane behind its records,
 * and the checkpointer advances to it once they are complete (`PartitionCheckpointer.passTo`).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  Consumer as PlatformaticConsumer,
  type ConsumerOptions as PlatformaticConsumerOptions,
  consumerReceivesChannel,
  FetchIsolationLevels,
  type GroupAssignment,
  type Message,
  type MessagesStream,
} from "@platformatic/kafka";
import { errorMessage, PipelineError } from "../../errors.ts";
import type {
  Assignment,
  ConsumedRecord,
  Consumer,
  ConsumerOptions,
  RecordAck,
  RecordContext,
  RecordHandler,
  RecordHeaders,
  TopicPartition,
} from "../transport.ts";
import { isRecordAck } from "../transport.ts";
import { toPipelineError } from "./_errors.ts";
import { validateConsumerOptions } from "../_consumer_options.ts";
import { OffsetBook, type PartitionBook } from "./_offsets.ts";
import { COPARTITIONED_ASSIGNER, copartitionedAssigner } from "./_copartitioned_assigner.ts";

/** A line the consumer reports (commit failures nobody awaits, rewinds). */
export interface ConsumerLogLine {
  /** `warn` for everything this consumer reports. */
  readonly level: "warn";
  /** What happened. */
  readonly message: string;
  /** Topic, partition, offset where they apply. */
  readonly fields: Readonly<Record<string, unknown>>;
}

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
  /** The first backoff after a handler rejected, in milliseconds; doubles up to `maxRetryTime`. */
  readonly initialRetryTime: number;
  /** The longest backoff after a handler rejected, in milliseconds. */
  readonly maxRetryTime: number;
  /** Where failures that nobody awaits are reported. */
  readonly logger: (line: ConsumerLogLine) => void;
}

/** The client options every @platformatic/kafka client of a transport shares. */
export type ClientBase = Omit<
  PlatformaticConsumerOptions<Buffer, Buffer, Buffer, Buffer>,
  "groupId"
>;

/**
 * How many failed reads in a row (no record read in between) a member takes before it stops:
 * with the default backoff (3 s, doubling up to 30 s) about two minutes, longer than a broker
 * takes to restart.
 */
const READ_ATTEMPTS = 8;

/** How many fetched records may wait for their partition's lane before reading pauses. */
const MAX_QUEUED = 2048;

/** A record's `heartbeat`: the client heartbeats on its own timer, whatever the handlers do. */
function noHeartbeat(): Promise<void> {
  return Promise.resolve();
}

function decodeHeaders(headers: Map<Buffer, Buffer>): RecordHeaders {
  const out: Record<string, string> = {};
  if (headers.size === 0) return out;
  // Kafka allows a header name more than once: the last wins, as with kafkajs.
  for (const [name, value] of headers) {
    if (value === undefined || value === null) continue;
    out[name.toString("utf8")] = value.toString("utf8");
  }
  return out;
}

function toBytes(data: Buffer | undefined | null): Uint8Array | null {
  if (data === undefined || data === null) return null;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A fetched message as the transport hands it out. */
export function toRecord(message: Message<Buffer, Buffer, Buffer, Buffer>): ConsumedRecord {
  return {
    topic: message.topic,
    partition: message.partition,
    offset: Number(message.offset),
    key: toBytes(message.key),
    value: toBytes(message.value),
    headers: decodeHeaders(message.headers),
    timestamp: Number(message.timestamp),
  };
}

/** A position past records never handed over, queued behind the records before it. */
interface PassItem {
  readonly passTo: number;
}

/** The records of one partition waiting for its lane, in offset order. */
interface Lane {
  readonly book: PartitionBook;
  readonly queue: (Message<Buffer, Buffer, Buffer, Buffer> | PassItem)[];
  running: boolean;
}

/** Opens a consumer group member; `run` joins the group. */
export function openConsumer(
  base: ClientBase,
  brokers: readonly string[],
  options: ConsumerOptions,
  settings: ConsumerSettings,
): Promise<Consumer> {
  const { concurrency, maxPending } = validateConsumerOptions(options);
  const { groupId } = options;
  const topics = [...options.topics];
  const client = new PlatformaticConsumer<Buffer, Buffer, Buffer, Buffer>({
    ...base,
    groupId,
    autocommit: false,
    sessionTimeout: settings.sessionTimeout,
    rebalanceTimeout: Math.max(settings.sessionTimeout, 60_000),
    heartbeatInterval: settings.heartbeatInterval,
    maxWaitTime: settings.fetchMaxWait,
    isolationLevel: options.isolation === "read_uncommitted"
      ? FetchIsolationLevels.READ_UNCOMMITTED
      : FetchIsolationLevels.READ_COMMITTED,
    ...(options.copartitioned
      ? {
        protocols: [{ name: COPARTITIONED_ASSIGNER, version: 0 }],
        partitionAssigner: copartitionedAssigner,
      }
      : {}),
  });
  const listener = options.rebalanceListener;
  /** Per partition of the current generation, resolves once the listener restored it. */
  let restores = new Map<string, Promise<void>>();
  let restoreAbort = new AbortController();

  /** Bumped whenever a generation ends; completions and lanes from older ones are void. */
  let epoch = 0;
  let owned: Record<string, readonly number[]> = {};
  /** Every `durable` not settled yet, of any generation: close waits for them. */
  const unsettled = new Set<Promise<void>>();
  let book = new OffsetBook(rewind, unsettled, options.onPosition);
  let lanes = new Map<PartitionBook, Lane>();
  let partitionAborts = new Map<PartitionBook, AbortController>();
  let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  /** Failed reads in a row, with no record read since (see `backOff`). */
  let failedReads = 0;
  /** Messages the current stream pushed, and how many of them `pump` has taken. */
  let pushed = 0;
  let taken = 0;
  /** Per partition of the current stream, the last position queued to pass to. */
  let passing = new Map<string, number>();
  function onReceive(context: unknown): void {
    if (stream !== undefined && (context as { stream?: unknown }).stream === stream) pushed++;
  }
  consumerReceivesChannel.asyncStart.subscribe(onReceive);
  let queued = 0;
  /** Bumped by each `openStream`, so only the latest one starts reading. */
  let opening = 0;
  let active = 0;
  let resumeReading: (() => void) | undefined;
  const inFlight = new Set<Promise<void>>();
  let commitChain: Promise<void> = Promise.resolve();
  let handler: RecordHandler | undefined;
  let closing = false;
  let closed: Promise<void> | undefined;
  const closeAbort = new AbortController();

  function warn(message: string, fields: Record<string, unknown> = {}): void {
    settings.logger({ level: "warn", message, fields });
  }

  function endGeneration(): void {
    epoch++;
    restoreAbort.abort();
    restores = new Map();
    const lost: TopicPartition[] = Object.entries(owned).flatMap(([topic, partitions]) =>
      partitions.map((partition) => ({ topic, partition }))
    );
    owned = {};
    if (lost.length > 0) listener?.revoked(lost);
    // Completions of this generation's records are ignored from now on.
    book.discard();
    book = new OffsetBook(rewind, unsettled, options.onPosition);
    for (const controller of partitionAborts.values()) controller.abort();
    partitionAborts = new Map();
    for (const lane of lanes.values()) queued -= lane.queue.length;
    lanes = new Map();
    queued = Math.max(queued, 0);
    resumeReading?.();
  }

  /** Commits the completed offsets of the current generation; one commit at a time. */
  function commit(): Promise<void> {
    const run = commitChain.then(async function commitCompleted() {
      if (!book.hasCompleted) return;
      const current = book;
      const snapshot = current.snapshot();
      // In the exactly-once mode the offsets are committed with the stage's transactions.
      if (options.commitOffsets === false) return current.committed(snapshot);
      await client.commit({
        offsets: snapshot.map(({ topic, partition, offset }) => ({
          topic,
          partition,
          offset: BigInt(offset),
          leaderEpoch: -1,
        })),
      });
      current.committed(snapshot);
    });
    commitChain = run.catch(() => undefined);
    return run;
  }

  function commitInBackground(): void {
    commit().catch(function reportCommitFailure(error) {
      warn(
        `Cannot commit offsets of group "${groupId}": ${errorMessage(error)}; ` +
          "trying again at the next commit",
      );
    });
  }

  const timer = setInterval(function commitOnInterval() {
    if (book.hasCompleted) commitInBackground();
  }, settings.commitInterval);

  function partitionSignal(partitionBook: PartitionBook): AbortSignal {
    if (closing) return closeAbort.signal;
    let controller = partitionAborts.get(partitionBook);
    if (!controller) {
      controller = new AbortController();
      partitionAborts.set(partitionBook, controller);
    }
    return controller.signal;
  }

  /** Points the stream's next fetch of the partition at its rewind offset. */
  function seek(partitionBook: PartitionBook): void {
    if (partitionBook.rewindTo === undefined || stream === undefined) return;
    stream.offsetsToFetch.set(
      `${partitionBook.topic}:${partitionBook.partition}`,
      BigInt(partitionBook.rewindTo),
    );
  }

  /**
   * The checkpointer dropped every pending record of the partition after a rejection: the
   * stream is pointed back at `from`, its oldest uncommitted record, delivered again after a
   * backoff that doubles while the same offset keeps failing.
   */
  function rewind(partitionBook: PartitionBook, from: number, offset: number, error: unknown) {
    // Its position is passed again once the records delivered again are in.
    passing.delete(`${partitionBook.topic}:${partitionBook.partition}`);
    const lane = lanes.get(partitionBook);
    if (lane) {
      queued -= lane.queue.length;
      lane.queue.length = 0;
      resumeReading?.();
    }
    const backoffMs = partitionBook.backoff(
      from,
      settings.initialRetryTime,
      settings.maxRetryTime,
    );
    const { topic, partition } = partitionBook;
    warn(
      `Cannot complete record ${offset} of topic "${topic}" partition ${partition} in group ` +
        `"${groupId}": ${errorMessage(error)}; the partition is delivered again from ${from}, ` +
        `its oldest uncommitted record, in ${backoffMs} ms`,
      { topic, partition, offset, from, backoff_ms: backoffMs },
    );
    if (!closing) seek(partitionBook);
  }

  /**
   * Calls the listener for every partition of the new generation (again after a backoff while
   * it rejects); records of those partitions wait for it in `handle`. The client heartbeats on
   * its own timer meanwhile.
   */
  function startRestore(assignment: Record<string, readonly number[]>): void {
    restoreAbort = new AbortController();
    const { signal } = restoreAbort;
    const partitions: TopicPartition[] = Object.entries(assignment).flatMap(([topic, list]) =>
      list.map((partition) => ({ topic, partition }))
    );
    if (partitions.length === 0) return;
    const restored = (async function callAssigned() {
      let wait = settings.initialRetryTime;
      while (!signal.aborted) {
        try {
          await listener!.assigned(partitions, signal);
          return;
        } catch (error) {
          if (signal.aborted) return;
          warn(
            `Cannot restore the state of partitions of group "${groupId}": ` +
              `${errorMessage(error)}; trying again in ${wait} ms`,
          );
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, wait);
            signal.addEventListener("abort", () => {
              clearTimeout(timer);
              resolve();
            }, { once: true });
          });
          wait = Math.min(wait * 2, settings.maxRetryTime);
        }
      }
    })();
    const generation = restores;
    for (const { topic, partition } of partitions) {
      generation.set(`${topic}:${partition}`, restored);
    }
    // Once restored, the partitions' records need not wait (nor look the wait up): every
    // record would otherwise await a settled promise.
    restored.then(function forgetRestored() {
      if (signal.aborted) return;
      for (const { topic, partition } of partitions) {
        const key = `${topic}:${partition}`;
        if (generation.get(key) === restored) generation.delete(key);
      }
    });
  }

  /** Waits `ms`, or less if the consumer closes meanwhile. */
  function delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timeout);
        closeAbort.signal.removeEventListener("abort", done);
        resolve();
      };
      const timeout = setTimeout(done, ms);
      closeAbort.signal.addEventListener("abort", done, { once: true });
    });
  }

  async function handle(lane: Lane, message: Message<Buffer, Buffer, Buffer, Buffer>) {
    const partitionBook = lane.book;
    const record = toRecord(message);
    const epochAtStart = epoch;
    const restored = restores.size === 0
      ? undefined
      : restores.get(`${record.topic}:${record.partition}`);
    if (restored !== undefined) {
      // No record of a partition is handled before its state is restored.
      await restored;
      // The generation ended while restoring: the records are read again from the committed
      // offsets in the next one.
      if (epoch !== epochAtStart || closing) return;
    }
    const { checkpointer } = partitionBook;
    const rewindsAtStart = checkpointer.rewinds;
    const context: RecordContext = {
      signal: partitionSignal(partitionBook),
      heartbeat: noHeartbeat,
    };
    let result: void | RecordAck;
    try {
      result = await handler!(record, context);
    } catch (error) {
      if (closing || epoch !== epochAtStart || checkpointer.rewinds !== rewindsAtStart) return;
      // A rejected handler is a record that cannot complete: the checkpointer rewinds the
      // partition to its oldest uncommitted record, as for a rejected `durable`.
      checkpointer.track(record.offset, { durable: Promise.reject(error) });
      return;
    }
    const ack = isRecordAck(result) ? result : undefined;
    if (epoch !== epochAtStart || checkpointer.rewinds !== rewindsAtStart) {
      // An earlier record of the partition failed meanwhile: this one is delivered again.
      checkpointer.forget(ack);
      return;
    }
    checkpointer.track(record.offset, ack);
    if (book.sinceCommit >= settings.commitThreshold) commitInBackground();
    while (checkpointer.size >= maxPending && epoch === epochAtStart && !closing) {
      await checkpointer.oldestSettled();
    }
  }

  /** Advances the partition past records never handed over, once its state is restored. */
  async function pass(lane: Lane, position: number): Promise<void> {
    const { book: partitionBook } = lane;
    const epochAtStart = epoch;
    const restored = restores.get(`${partitionBook.topic}:${partitionBook.partition}`);
    if (restored !== undefined) {
      await restored;
      if (epoch !== epochAtStart || closing) return;
    }
    if (partitionBook.rewindTo !== undefined) return;
    partitionBook.checkpointer.passTo(position);
  }

  /**
   * Queues each partition's fetch position, when it moved past the records handed over, behind
   * them in its lane; only once every message the stream pushed was taken, so no record below
   * a position is still on its way.
   */
  function queuePasses(current: MessagesStream<Buffer, Buffer, Buffer, Buffer>): void {
    if (current !== stream || closing || pushed !== taken) return;
    for (const [key, offset] of current.offsetsToFetch) {
      const position = Number(offset);
      if (passing.get(key) === position) continue;
      const at = key.lastIndexOf(":");
      const topic = key.slice(0, at);
      const partition = Number(key.slice(at + 1));
      if (!(owned[topic] ?? []).includes(partition)) continue;
      const partitionBook = book.partition(topic, partition);
      // A rewind's seek moved the position back: the records come round again first.
      if (partitionBook.rewindTo !== undefined || position < partitionBook.expected) continue;
      passing.set(key, position);
      enqueue(partitionBook, { passTo: position });
    }
  }

  async function work(lane: Lane, epochAtStart: number): Promise<void> {
    try {
      while (lane.queue.length > 0 && !closing && epoch === epochAtStart) {
        // After a rewind the partition waits its backoff before it is delivered again.
        // (No clock read per record unless a backoff was ever set.)
        const { notBefore } = lane.book;
        const wait = notBefore === 0 ? 0 : notBefore - performance.now();
        if (wait > 0) {
          await delay(wait);
          if (closing || epoch !== epochAtStart) break;
          if (lane.queue.length === 0) break;
        }
        const item = lane.queue.shift()!;
        queued--;
        if (queued < MAX_QUEUED / 2) resumeReading?.();
        if ("passTo" in item) await pass(lane, item.passTo);
        else await handle(lane, item);
      }
    } finally {
      lane.running = false;
      active--;
      startLanes();
    }
  }

  function startLanes(): void {
    if (closing) return;
    for (const lane of lanes.values()) {
      if (active >= concurrency) return;
      if (lane.running || lane.queue.length === 0) continue;
      lane.running = true;
      active++;
      const work$ = work(lane, epoch);
      inFlight.add(work$);
      void work$.finally(() => inFlight.delete(work$));
    }
  }

  function dispatch(message: Message<Buffer, Buffer, Buffer, Buffer>): void {
    const partitionBook = book.partition(message.topic, message.partition);
    if (!partitionBook.accepts(Number(message.offset))) {
      // Fetched before a seek: ask for the sought offset again (the fetch overwrote it).
      seek(partitionBook);
      return;
    }
    enqueue(partitionBook, message);
  }

  function enqueue(
    partitionBook: PartitionBook,
    item: Message<Buffer, Buffer, Buffer, Buffer> | PassItem,
  ): void {
    let lane = lanes.get(partitionBook);
    if (lane === undefined) {
      lane = { book: partitionBook, queue: [], running: false };
      lanes.set(partitionBook, lane);
    }
    lane.queue.push(item);
    queued++;
    startLanes();
  }

  /** Reads one generation's stream until it ends or the generation does. */
  async function pump(
    current: MessagesStream<Buffer, Buffer, Buffer, Buffer>,
    epochAtStart: number,
  ) {
    // A fetch answered after a seek may move the position past it again: re-apply pending
    // seeks once its records are in (they are pushed right after the `fetch` event).
    current.on("fetch", () =>
      queueMicrotask(() => {
        if (current !== stream) return;
        for (const lane of lanes.values()) seek(lane.book);
        // A fetch of only control records pushes nothing: its position is passed from here.
        queuePasses(current);
      }));
    try {
      for await (const message of current) {
        if (closing || epoch !== epochAtStart) break;
        if (current === stream) taken++;
        failedReads = 0;
        dispatch(message);
        queuePasses(current);
        while (queued >= MAX_QUEUED && !closing && epoch === epochAtStart) {
          await new Promise<void>((resolve) => resumeReading = resolve);
          resumeReading = undefined;
        }
      }
    } catch (error) {
      if (closing || epoch !== epochAtStart) return;
      if (!(await backOff("", error)) || epoch !== epochAtStart) return;
      // Whatever the failed stream had in hand is delivered again from the committed offsets.
      // The member keeps its partitions (no join follows), so their state is restored again
      // (the listener was told they were revoked) before any record of them is handled.
      const kept = owned;
      endGeneration();
      owned = kept;
      if (listener !== undefined) startRestore(kept);
      options.onStatus?.({ type: "assigned", assignment: { partitions: { ...kept } } });
      void reopenStream(" after a failed read");
    }
  }

  /**
   * Counts a failed read (a stream that failed, or would not open) and waits before the next
   * try, longer after each failure in a row. After {@linkcode READ_ATTEMPTS} failures with no
   * record read in between, the member gives up and reports a crash without restart: the runtime
   * stops it (its worker or service is restarted, and reports what fails at start) rather than
   * leaving it in the group, owning partitions it cannot read.
   *
   * @returns whether to try again
   */
  async function backOff(why: string, error: unknown): Promise<boolean> {
    failedReads++;
    if (failedReads >= READ_ATTEMPTS) {
      const failure = toPipelineError(
        `Cannot read records of group "${groupId}"${why}`,
        brokers,
        error,
      );
      warn(`${failure.message}; giving up after ${failedReads} failed reads in a row`);
      options.onStatus?.({ type: "crashed", error: failure, restart: false });
      return false;
    }
    const pause = Math.min(
      settings.initialRetryTime * 10 * 2 ** (failedReads - 1),
      settings.maxRetryTime,
    );
    warn(
      `Cannot read records of group "${groupId}"${why}: ${errorMessage(error)}; reading again ` +
        `from the committed offsets in ${pause} ms`,
    );
    await delay(pause);
    return !closing;
  }

  /** Opens the stream again (after a failed read or a rebalance), backing off while it fails. */
  async function reopenStream(why: string): Promise<void> {
    while (!closing) {
      try {
        return await openStream();
      } catch (error) {
        if (closing || !(await backOff(why, error))) return;
      }
    }
  }

  /** Opens the stream of the current generation, then closes the previous one. */
  async function openStream(): Promise<void> {
    const mine = ++opening;
    const next = await client.consume({
      topics,
      mode: "committed",
      fallbackMode: "earliest",
      autocommit: false,
      maxWaitTime: settings.fetchMaxWait,
    });
    if (closing || mine !== opening) {
      // Closing, or a later join opened a newer stream meanwhile.
      await next.close().catch(() => undefined);
      return;
    }
    // The first join happens inside `consume`: the generation is the one current now.
    const epochAtStart = epoch;
    const previous = stream;
    stream = next;
    pushed = 0;
    taken = 0;
    passing = new Map();
    if (previous !== undefined) void previous.close().catch(() => undefined);
    void pump(next, epochAtStart);
  }

  client.on("consumer:group:join", function onJoin(payload) {
    endGeneration();
    const assignment: Record<string, readonly number[]> = {};
    for (const entry of (payload.assignments ?? []) as GroupAssignment[]) {
      if (topics.includes(entry.topic) && entry.partitions.length > 0) {
        assignment[entry.topic] = [...entry.partitions].sort((a, b) => a - b);
      }
    }
    owned = assignment;
    // Restores start first, so the member reports "restoring" rather than ready in between.
    if (listener !== undefined) startRestore(assignment);
    options.onStatus?.({ type: "assigned", assignment: { partitions: { ...assignment } } });
    // The first join happens inside `run`, which opens the first stream itself.
    if (stream !== undefined && !closing) void reopenStream(" after a rebalance");
  });
  client.on("consumer:group:rebalance", function onRebalance() {
    if (!closing) options.onStatus?.({ type: "joining" });
    // The client sends its JoinGroup right after this event, and the generation moves on once
    // every member has joined: what is complete now is committed at once, in this tick, so the
    // request goes out ahead of the join, while the broker still accepts this generation.
    if (book.hasCompleted && !closing) {
      const current = book;
      const snapshot = current.snapshot();
      client.commit({
        offsets: snapshot.map(({ topic, partition, offset }) => ({
          topic,
          partition,
          offset: BigInt(offset),
          leaderEpoch: -1,
        })),
      }).then(() => current.committed(snapshot), () => undefined);
    }
    // The rest may still make it: once the pending records settle, save what is done.
    const rebalancing = epoch;
    void Promise.allSettled([...unsettled]).then(function commitGeneration() {
      if (epoch === rebalancing && !closing) commitInBackground();
    });
  });

  async function run(eachRecord: RecordHandler): Promise<void> {
    if (closed) throw new PipelineError(`Cannot run consumer of group "${groupId}": it is closed`);
    handler = eachRecord;
    try {
      await openStream();
    } catch (error) {
      throw toPipelineError(`Cannot join consumer group "${groupId}"`, brokers, error);
    }
  }

  async function drain(): Promise<void> {
    closing = true;
    closeAbort.abort();
    for (const controller of partitionAborts.values()) controller.abort();
    clearInterval(timer);
    resumeReading?.();
    let failure: unknown;
    try {
      await Promise.allSettled([...inFlight]);
      // Outcomes on their way settle on their own (sends time out); the prefix they complete is
      // committed now.
      while (unsettled.size > 0) await Promise.allSettled([...unsettled]);
      await commit();
    } catch (error) {
      failure = error;
    }
    consumerReceivesChannel.asyncStart.unsubscribe(onReceive);
    await stream?.close().catch(() => undefined);
    await client.close().catch(() => client.close(true).catch(() => undefined));
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

  return Promise.resolve({ run, close, assignment });
}
