/**
 * Dead-letter replay: reads a DLQ topic and sends chosen records back to their original topic
 * with their original key, value bytes and headers, plus `x-replayed-from`.
 *
 * Semantics, in short:
 * - **One cursor per group.** The DLQ is read as consumer group `<dlq>.replay` (or
 *   `options.group`). Its committed offsets mean "looked at": a record is committed only after
 *   it was replayed (the send acknowledged) or deliberately skipped (filtered out, truncated,
 *   invalid). A second run with the same group continues after the last committed record: a
 *   replay group never replays a record it has committed. Offsets are committed in batches
 *   after the sends, so a crash mid-run may replay the last few records again (at-least-once,
 *   like the rest of the pipeline). Records a filter skipped are *not* lost
 *   (they stay on the DLQ), but this group will not look at them again: to replay them later
 *   with another filter, use another group (`--group`). Do not run two replays with the same
 *   group at once.
 * - **Bounded.** The end offsets of the DLQ are read once at the start; records written after
 *   that (for example, replayed records that failed again) are left for the next run. The
 *   replay stops at those offsets, at `limit` replayed records, when `signal` aborts, or when
 *   nothing arrives for `idleTimeoutMs` (then `reachedEnd` is `false`); it never waits forever.
 *   A record whose replay has begun (waiting for its turn under `ratePerSecond`, or sending)
 *   is finished and committed before the replay stops.
 * - **Only to the pipeline's inputs.** A record is sent back only when its `original_topic` is
 *   one of `replayTo` (the topics the pipeline's stages read); any other (a forged or foreign
 *   envelope naming, say, an output topic) is refused with an error naming the topic, counted
 *   in `skipped.refused`, and the replay goes on.
 * - **Faithful or not at all.** Envelopes with `value_truncated`, `key_truncated` or
 *   `headers_truncated` set are skipped (the whole original is still at
 *   `original_topic`/`original_partition`/`original_offset`); envelopes that are not JSON or
 *   do not match the schema are skipped with the reason. Neither stops the replay.
 * - **Headers.** The original headers are sent as they were, except the runtime's retry
 *   bookkeeping ({@linkcode RUNTIME_HEADERS}: tier, due time, attempts, original position,
 *   last error, stage, first-produced time), so the replayed record starts afresh; then
 *   `x-replayed-from: <dlq>/<partition>/<offset>` is added. With instrumentation on, the
 *   `send <topic>` span is a child of the trace context in the envelope's headers and its own
 *   `traceparent` replaces the original one, so the replay stays in the original trace.
 * - **Dry run.** Nothing is sent and nothing is committed to the replay group: the records the
 *   replay would look at are read through a throwaway group `<group>.dry-run.<time>-<n>`
 *   (from the replay group's committed offsets on), and each would-be replay is reported.
 *   The throwaway group's offsets expire on the broker after `offsets.retention.minutes`.
 * - **Rate.** Sends are spaced to at most `ratePerSecond` across all partitions.
 *
 * @example
 * ```ts
 * import { replayDeadLetters } from "./replay.ts";
 * import { createEmbeddedTransport } from "./transport/embedded/mod.ts";
 *
 * const transport = createEmbeddedTransport();
 * await transport.ensureTopics([{ name: "orders.dlq", partitions: 1 }]);
 * const report = await replayDeadLetters(transport, { dlqTopic: "orders.dlq", replayTo: ["orders"] });
 * console.log(report.examined, report.replayed); // 0 0
 * await transport.close();
 * ```
 *
 * @module
 */
import { context, propagation, ROOT_CONTEXT } from "@opentelemetry/api";
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { decodeEnvelopeBytes, parseEnvelope } from "./dead_letter.ts";
import type { DeadLetterEnvelope } from "./dead_letter.ts";
import { ConfigError, errorMessage, PipelineError } from "./errors.ts";
import { HEADER } from "./headers.ts";
import type { Instrumentation } from "./instrumentation.ts";
import { noopInstrumentation } from "./instrumentation.ts";
import type {
  ConsumedRecord,
  DeliveryReport,
  PartitionOffset,
  Producer,
  RecordContext,
  RecordHeaders,
  Transport,
} from "./transport/transport.ts";

/**
 * Headers the runtime adds while retrying a record; a replay drops them so the replayed record
 * is handled as a new one (fresh attempts, no tier delay, its own latency).
 */
export const RUNTIME_HEADERS: readonly string[] = [
  HEADER.RETRY_TIER,
  HEADER.RETRY_DUE_AT,
  HEADER.ATTEMPTS,
  HEADER.ORIGINAL_TOPIC,
  HEADER.ORIGINAL_PARTITION,
  HEADER.ORIGINAL_OFFSET,
  HEADER.ORIGINAL_TIMESTAMP,
  HEADER.ERROR_TYPE,
  HEADER.ERROR_REASON,
  HEADER.STAGE,
];

/** What happened to one DLQ record. */
export type ReplayOutcome =
  /** Sent back to its original topic (acknowledged). */
  | "replayed"
  /** Would have been sent (dry run). */
  | "would-replay"
  /** Did not match `errorType` / `stage`. */
  | "filtered"
  /** Its original topic is not one the pipeline reads (not in `replayTo`). */
  | "refused"
  /** Its value was truncated in the envelope; the original is still on its topic. */
  | "truncated"
  /** Not an envelope: not JSON, or not the envelope schema. */
  | "invalid";

/** Counts of a replay. */
export interface ReplayReport {
  /** The DLQ topic read. */
  readonly dlqTopic: string;
  /** The consumer group whose committed offsets mark what was looked at. */
  readonly group: string;
  /** DLQ records looked at. */
  examined: number;
  /** Records sent back (in a dry run: records that would have been sent). */
  replayed: number;
  /** Records looked at and not sent, by reason. */
  readonly skipped: { filter: number; truncated: number; invalid: number; refused: number };
  /** Whether this was a dry run (nothing sent, nothing committed to `group`). */
  readonly dryRun: boolean;
  /**
   * Whether every record below the DLQ's end offsets as of the start was looked at (`false`
   * after `limit`, an abort, or `idleTimeoutMs` without records).
   */
  reachedEnd: boolean;
}

/** Reported once per DLQ record looked at. */
export interface ReplayProgress {
  /** What happened to it. */
  readonly outcome: ReplayOutcome;
  /** Where it is on the DLQ. */
  readonly dlq: { readonly topic: string; readonly partition: number; readonly offset: number };
  /** Its envelope, when it parsed. */
  readonly envelope?: DeadLetterEnvelope;
  /** Where the replayed record landed (outcome `replayed`). */
  readonly delivery?: DeliveryReport;
  /** Why it was skipped, for humans. */
  readonly reason?: string;
  /** The counts so far (a snapshot). */
  readonly report: ReplayReport;
}

/** Options for {@linkcode replayDeadLetters}. */
export interface ReplayOptions {
  /** The DLQ topic to read. */
  readonly dlqTopic: string;
  /**
   * The topics records may be sent back to: the topics the pipeline's stages read (e.g.
   * `pipeline.stages.map((node) => node.input)`). A record naming another is refused.
   */
  readonly replayTo: readonly string[];
  /**
   * The consumer group whose committed offsets mark the DLQ records already looked at.
   * @default `${dlqTopic}.replay`
   */
  readonly group?: string;
  /**
   * Replay only envelopes with this `error_type` (e.g. `"RetryableError"`); others are skipped
   * and marked looked at in `group`.
   * @default undefined (any)
   */
  readonly errorType?: string;
  /**
   * Replay only envelopes of this `stage`; others are skipped and marked looked at in `group`.
   * @default undefined (any)
   */
  readonly stage?: string;
  /**
   * Stop after this many records were replayed (or would be, in a dry run); records after the
   * last one replayed are neither looked at nor committed.
   * @default Infinity
   */
  readonly limit?: number;
  /**
   * Report what would be replayed; send nothing, commit nothing to `group`.
   * @default false
   */
  readonly dryRun?: boolean;
  /**
   * At most this many records sent per second, across partitions; `Infinity` for no limit.
   * @default 100
   */
  readonly ratePerSecond?: number;
  /**
   * Stop (with `reachedEnd: false`) when no DLQ record arrived for this long, in milliseconds.
   * A round that made progress and then stalls is restarted instead, see the module doc.
   * @default 10000
   */
  readonly idleTimeoutMs?: number;
  /**
   * Spans for the sends; the `send <topic>` span is a child of the envelope's trace context.
   * @default noopInstrumentation
   */
  readonly instrumentation?: Instrumentation;
  /**
   * Called once per DLQ record looked at, after its outcome is final (sent or skipped).
   * @default no-op
   */
  readonly onProgress?: (progress: ReplayProgress) => void;
  /**
   * Stops the replay: records in flight finish, nothing more is looked at.
   * @default undefined
   */
  readonly signal?: AbortSignal;
  /**
   * Time for the rate limit.
   * @default systemClock
   */
  readonly clock?: Clock;
}

/** Thrown inside a handler to leave a record uncommitted (past the end, or after the limit). */
class ParkedError extends PipelineError {}

/** A promise that resolves when `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}

function validate(options: ReplayOptions): void {
  const { dlqTopic, replayTo, limit, ratePerSecond, idleTimeoutMs } = options;
  if (typeof dlqTopic !== "string" || dlqTopic.trim() === "") {
    throw new ConfigError(
      `Cannot replay dead letters as 'dlqTopic' must be a non-empty string: current value is ` +
        `"${dlqTopic}"`,
      { field: "dlqTopic" },
    );
  }
  if (
    !Array.isArray(replayTo) || replayTo.length === 0 ||
    replayTo.some((topic) => typeof topic !== "string" || topic.trim() === "")
  ) {
    throw new ConfigError(
      `Cannot replay dead letters as 'replayTo' must list the topics the pipeline reads: ` +
        `current value is ${JSON.stringify(replayTo)}`,
      { field: "replayTo" },
    );
  }
  if (options.group !== undefined && options.group.trim() === "") {
    throw new ConfigError(
      `Cannot replay dead letters as 'group' must be a non-empty string: current value is ""`,
      { field: "group" },
    );
  }
  if (limit !== undefined && !(limit === Infinity || (Number.isInteger(limit) && limit >= 0))) {
    throw new ConfigError(
      `Cannot replay dead letters as 'limit' must be a non-negative integer: current value is ` +
        `${limit}`,
      { field: "limit" },
    );
  }
  if (ratePerSecond !== undefined && !(ratePerSecond > 0)) {
    throw new ConfigError(
      `Cannot replay dead letters as 'ratePerSecond' must be a positive number: current value ` +
        `is ${ratePerSecond}`,
      { field: "ratePerSecond" },
    );
  }
  if (idleTimeoutMs !== undefined && !(Number.isFinite(idleTimeoutMs) && idleTimeoutMs > 0)) {
    throw new ConfigError(
      `Cannot replay dead letters as 'idleTimeoutMs' must be a positive number: current value ` +
        `is ${idleTimeoutMs}`,
      { field: "idleTimeoutMs" },
    );
  }
}

/** The headers a replayed record carries. */
export function replayHeaders(
  envelope: DeadLetterEnvelope,
  dlq: { topic: string; partition: number; offset: number },
): RecordHeaders {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(envelope.headers)) {
    if (!RUNTIME_HEADERS.includes(name)) headers[name] = value;
  }
  headers[HEADER.REPLAYED_FROM] = `${dlq.topic}/${dlq.partition}/${dlq.offset}`;
  return headers;
}

let dryRunGroups = 0;

/**
 * Replays the records of a DLQ topic to their original topics; see the module doc for the
 * semantics. Resolves with the counts once the DLQ's end offsets as of the start are reached
 * (or `limit`, `signal`, `idleTimeoutMs`).
 *
 * @throws {ConfigError} when an option is invalid (before any work).
 * @throws {PipelineError} when the transport fails (the DLQ topic is missing, the broker is
 * unreachable, a send fails); what was replayed before is committed.
 *
 * @example
 * ```ts ignore
 * const report = await replayDeadLetters(transport, {
 *   dlqTopic: "orders.dlq",
 *   errorType: "RetryableError",
 *   limit: 100,
 *   onProgress: (p) => console.error(p.outcome, p.dlq.offset),
 * });
 * ```
 */
export async function replayDeadLetters(
  transport: Transport,
  options: ReplayOptions,
): Promise<ReplayReport> {
  validate(options);
  const {
    dlqTopic,
    replayTo,
    group = `${options.dlqTopic}.replay`,
    errorType,
    stage,
    limit = Infinity,
    dryRun = false,
    ratePerSecond = 100,
    idleTimeoutMs = 10_000,
    instrumentation = noopInstrumentation,
    onProgress = () => {},
    signal,
    clock = systemClock,
  } = options;

  const report: ReplayReport = {
    dlqTopic,
    group,
    examined: 0,
    replayed: 0,
    skipped: { filter: 0, truncated: 0, invalid: 0, refused: 0 },
    dryRun,
    reachedEnd: false,
  };
  const snapshot = (): ReplayReport => ({ ...report, skipped: { ...report.skipped } });

  const end = new Map<number, number>(
    (await transport.endOffsets(dlqTopic)).end.map((p) => [p.partition, p.offset]),
  );
  const start: PartitionOffset[] = await transport.committedOffsets(group, dlqTopic);
  /** Per partition: the lowest offset not looked at yet. */
  const next = new Map<number, number>(start.map((p) => [p.partition, p.offset]));
  const isDone = (partition: number) => (next.get(partition) ?? 0) >= (end.get(partition) ?? 0);
  const allDone = () => [...end.keys()].every(isDone);
  if (allDone()) {
    report.reachedEnd = true;
    return report;
  }
  if (limit === 0 || signal?.aborted) return report;

  const readGroup = dryRun ? `${group}.dry-run.${Date.now()}-${++dryRunGroups}` : group;
  const interval = ratePerSecond === Infinity ? 0 : 1000 / ratePerSecond;
  let nextSendAt = 0;
  /** Replays started (or would-be), so concurrent partitions never exceed `limit`. */
  let reserved = 0;
  /**
   * Reserved replays not finished yet (pacing or sending). The consumer is closed only when
   * this is 0, except after a failure: closing aborts the records' signals, and a record
   * aborted while pacing would otherwise be lost halfway.
   */
  let inFlight = 0;
  let producer: Producer | undefined;
  let failure: { error: unknown } | undefined;

  async function pace(recordSignal: AbortSignal): Promise<void> {
    if (interval === 0) return;
    const now = clock.now();
    const at = Math.max(now, nextSendAt);
    nextSendAt = at + interval;
    if (at > now) await clock.sleep(at - now, recordSignal);
  }

  async function send(envelope: DeadLetterEnvelope, record: ConsumedRecord) {
    const dlq = { topic: record.topic, partition: record.partition, offset: record.offset };
    const headers = replayHeaders(envelope, dlq);
    const key = decodeEnvelopeBytes(envelope.key, envelope.key_encoding);
    const value = decodeEnvelopeBytes(envelope.value, envelope.value_encoding);
    const parent = propagation.extract(ROOT_CONTEXT, envelope.headers);
    producer ??= await transport.producer();
    const open = producer;
    const [delivery] = await context.with(parent, () =>
      instrumentation.traceSend(
        envelope.original_topic,
        headers,
        {
          key: envelope.key_encoding === "utf8" ? envelope.key ?? undefined : undefined,
          extra: { "pipeline.replayed_from": headers[HEADER.REPLAYED_FROM] },
        },
        // Build the record after traceSend wrote the span's traceparent into `headers`.
        () => open.send([{ topic: envelope.original_topic, key, value, headers }]),
      ));
    return delivery;
  }

  function finish(
    record: ConsumedRecord,
    outcome: ReplayOutcome,
    extra: Pick<ReplayProgress, "envelope" | "delivery" | "reason">,
  ): void {
    report.examined++;
    lastActivity = clock.now();
    if (outcome === "replayed" || outcome === "would-replay") report.replayed++;
    else if (outcome === "filtered") report.skipped.filter++;
    else report.skipped[outcome]++;
    next.set(record.partition, record.offset + 1);
    try {
      onProgress({
        outcome,
        dlq: { topic: record.topic, partition: record.partition, offset: record.offset },
        ...extra,
        report: snapshot(),
      });
    } catch (error) {
      // A broken progress callback must not leave a sent record uncommitted.
      console.error(`The replay's onProgress threw: ${errorMessage(error)}`);
    }
  }

  let lastActivity = clock.now();
  let progressInRound = false;

  async function handle(record: ConsumedRecord, ctx: RecordContext): Promise<void> {
    lastActivity = clock.now();
    const { partition, offset } = record;
    // Looked at in an earlier round (dry run reads from the earliest offset).
    if (offset < (next.get(partition) ?? 0)) return;
    const park = async (why: string) => {
      // Leave it uncommitted: wait until the consumer closes, then reject.
      await aborted(ctx.signal);
      throw new ParkedError(
        `Record ${offset} of "${record.topic}" left for a later replay: ${why}`,
      );
    };
    if (offset >= (end.get(partition) ?? 0)) return park("written after the replay started");
    if (failure !== undefined || signal?.aborted) return park("the replay is stopping");

    let envelope: DeadLetterEnvelope;
    try {
      if (record.value === null) throw new Error("the record has no value (a tombstone)");
      envelope = parseEnvelope(record.value);
    } catch (error) {
      finish(record, "invalid", { reason: `not a dead-letter envelope: ${errorMessage(error)}` });
      progressInRound = true;
      return;
    }
    if (
      (errorType !== undefined && envelope.error_type !== errorType) ||
      (stage !== undefined && envelope.stage !== stage)
    ) {
      finish(record, "filtered", {
        envelope,
        reason: `error type "${envelope.error_type}", stage "${envelope.stage}"`,
      });
      progressInRound = true;
      return;
    }
    if (!replayTo.includes(envelope.original_topic)) {
      finish(record, "refused", {
        envelope,
        reason: `Cannot replay ${record.topic}/${partition}/${offset} to ` +
          `"${envelope.original_topic}" as the pipeline does not read that topic: it reads ` +
          replayTo.map((topic) => `"${topic}"`).join(", "),
      });
      progressInRound = true;
      return;
    }
    if (envelope.value_truncated || envelope.key_truncated || envelope.headers_truncated) {
      const cut = envelope.value_truncated
        ? `value truncated in the envelope (${envelope.value_size} bytes)`
        : envelope.key_truncated
        ? `key truncated in the envelope (${envelope.key_size} bytes)`
        : "headers truncated in the envelope";
      finish(record, "truncated", {
        envelope,
        reason: `${cut}; the original ` +
          `is at ${envelope.original_topic}/${envelope.original_partition}/` +
          `${envelope.original_offset}`,
      });
      progressInRound = true;
      return;
    }
    if (reserved >= limit) return park("the limit is reached");
    reserved++;
    if (dryRun) {
      finish(record, "would-replay", { envelope });
      progressInRound = true;
      return;
    }
    inFlight++;
    let sending = false;
    try {
      await pace(ctx.signal);
      sending = true;
      const delivery = await send(envelope, record);
      finish(record, "replayed", { envelope, delivery });
      progressInRound = true;
    } catch (error) {
      reserved--;
      // Aborted before the send (the consumer closes after another record's failure): nothing
      // was sent, so leave the record uncommitted for a later replay rather than fail for it.
      if (!sending && ctx.signal.aborted) {
        throw new ParkedError(
          `Record ${offset} of "${record.topic}" left for a later replay: the replay is stopping`,
          { cause: error },
        );
      }
      failure ??= { error };
      throw error;
    } finally {
      inFlight--;
    }
  }

  try {
    while (true) {
      progressInRound = false;
      lastActivity = clock.now();
      const consumer = await transport.consumer({
        groupId: readGroup,
        topics: [dlqTopic],
        // One handler per partition, so a partition parked at its end never holds up another.
        partitionConcurrency: Math.max(1, end.size),
      });
      let stalled = false;
      try {
        await consumer.run(handle);
        const effectiveIdle = Math.max(idleTimeoutMs, 2 * interval);
        while (true) {
          if (allDone() || failure !== undefined) break;
          // Stop for the limit or the signal only once the reserved records are finished.
          if (inFlight === 0 && (reserved >= limit || signal?.aborted)) break;
          if (inFlight === 0 && clock.now() - lastActivity >= effectiveIdle) {
            stalled = true;
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } finally {
        await consumer.close();
      }
      if (failure !== undefined) throw failure.error;
      // A round that stalled after progress may be held up by a partition parked at its end
      // (kafkajs fetches again only when every partition of the last fetch is done): go again.
      if (!(stalled && progressInRound && !signal?.aborted)) break;
    }
  } finally {
    await producer?.close();
  }
  report.reachedEnd = allDone();
  return report;
}
