/**
 * The stage runner: what happens to one record. Decode and validate it, skip it when its key
 * already has an outcome, call the handler with in-place retries, then produce the outputs,
 * forward it to the next retry tier, or dead-letter it.
 *
 * Pipelined: once the outcome is decided its sends are queued on the producer (a
 * `BatchingProducer` merges them with other records' sends) and the record handler resolves
 * with a `RecordAck` whose `durable` resolves when they are all acknowledged. The transport
 * delivers the partition's next record meanwhile, and commits this record's offset only once
 * `durable` resolved (and every earlier record is complete): at-least-once, nothing lost. If
 * the outcome cannot be made durable (the broker is gone), `durable` rejects and the record is
 * delivered again. A keyed stage's state entry (see `state_store.ts`) is sent to its changelog
 * only once the outcome is durable (with it, in the exactly-once mode's transaction), and
 * applied in memory, and `onOutcome` called, once the entry is durable too; a later record with
 * the same key waits for an earlier one's outcome still on its way before it looks the key up.
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import { decodeValue, encodeValue } from "./codec.ts";
import { deadLetterRecord } from "./dead_letter.ts";
import type { ResolvedStageNode } from "./definition.ts";
import type { ErrorContext } from "./errors.ts";
import {
  errorMessage,
  errorType,
  isRetriable,
  KeyMismatchError,
  PoisonRecordError,
  RetryableError,
} from "./errors.ts";
import { HEADER, TRACE_HEADERS } from "./headers.ts";
import type { StageState, StateEntry } from "./state_store.ts";
import type { Random } from "./random.ts";
import { backoffDelay } from "./retry.ts";
import { getLogger } from "./log.ts";
import type { StageContext } from "./stage.ts";
import type { Instrumentation, ProcessOutcome } from "./instrumentation.ts";
import { noopInstrumentation } from "./instrumentation.ts";
import type {
  ConsumedRecord,
  OutgoingRecord,
  Producer,
  RecordAck,
  RecordContext,
  RecordHandler,
  RecordHeaders,
} from "./transport/transport.ts";

/** The final word on one delivery of a record. */
export type OutcomeKind = ProcessOutcome;

/** Reported once per delivery of a record, after its outcome is durable. */
export interface StageOutcome {
  /** The stage. */
  readonly stage: string;
  /** What happened. */
  readonly kind: OutcomeKind;
  /** The record. */
  readonly record: ConsumedRecord;
  /** Handler attempts made in this delivery. */
  readonly attempts: number;
  /** Attempts in this delivery that were retries (not the record's first try). */
  readonly retries: number;
  /** The error type, for dead-lettered and retry-scheduled outcomes. */
  readonly errorType?: string;
  /** The error message, for dead-lettered and retry-scheduled outcomes. */
  readonly errorReason?: string;
  /** Records produced to the output topic. */
  readonly outputs: number;
}

/** Options for {@linkcode createRecordHandler}. */
export interface RecordHandlerOptions {
  /** The producer outputs, retries and dead letters are sent with. */
  readonly producer: Producer;
  /**
   * The producer a record's sends (outputs, retry copy, dead letter, state entry) go to instead
   * of `producer`: its task's transaction in the exactly-once mode.
   * @default every record's sends go to `producer`
   */
  readonly producerFor?: (record: ConsumedRecord) => Producer;
  /** The consumer group, for telemetry. */
  readonly group: string;
  /**
   * Time and waiting.
   * @default systemClock
   */
  readonly clock: Clock;
  /** Randomness for backoff jitter. */
  readonly random: Random;
  /** The member's state of a keyed stage; required when the stage has a `key`. */
  readonly state?: StageState;
  /** Called once per delivery, after its outcome is durable. */
  readonly onOutcome?: (outcome: StageOutcome) => void;
  /**
   * Tracing and metrics.
   * @default no-op
   */
  readonly instrumentation?: Instrumentation;
}

const encoder = new TextEncoder();
/** Record keys as text, decoded once per record with one decoder. */
const keyDecoder = new TextDecoder();
const HEARTBEAT_EVERY_MS = 3000;
const log = getLogger(["pipeline", "runner"]);

function int(headers: RecordHeaders, name: string): number | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  const parsed = Number(value);
  return Number.isSafeInteger(parsed) ? parsed : undefined;
}

/**
 * Heartbeats for every record whose handler is running, from one timer: a slow handler must
 * not get its member evicted from the group, and a timer per record would cost more than most
 * handlers. The timer runs while handlers do and stops at the first tick that finds none; it
 * never keeps the process alive by itself.
 */
class Heartbeats {
  readonly #running = new Set<RecordContext>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Heartbeats for `context` every few seconds until {@linkcode delete}. */
  add(context: RecordContext): void {
    this.#running.add(context);
    if (this.#timer !== undefined) return;
    const timer = setInterval(() => this.#beat(), HEARTBEAT_EVERY_MS);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Stops the heartbeats for `context`. */
  delete(context: RecordContext): void {
    this.#running.delete(context);
  }

  #beat(): void {
    if (this.#running.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    for (const context of this.#running) {
      // A failed heartbeat means a rebalance is under way; the transport then aborts
      // `context.signal`, which is how the handler learns of it.
      context.heartbeat().catch(() => undefined);
    }
  }
}

/**
 * A key's record being handled: later records of the key wait for its release. The promise
 * they wait on is made only when one does (rarely: a key's records are usually far apart).
 */
class KeyLock {
  #released = false;
  #promise: Promise<void> | undefined;
  #resolve: (() => void) | undefined;

  /** Settles (never rejects) once {@linkcode release} was called. */
  released(): Promise<void> {
    if (this.#released) return Promise.resolve();
    return this.#promise ??= new Promise<void>((resolve) => this.#resolve = resolve);
  }

  /** Releases the key. */
  release(): void {
    this.#released = true;
    this.#resolve?.();
  }
}

/** A stage's `setAttributes` when no span records them. */
function ignoreAttributes(): void {}

/** Headers that travel with a record through every hop: trace context and nothing else. */
function traceHeaders(headers: RecordHeaders): RecordHeaders {
  const kept: RecordHeaders = {};
  for (const name of TRACE_HEADERS) {
    if (headers[name] !== undefined) kept[name] = headers[name];
  }
  return kept;
}

/** Waits, heartbeating, until a record in a retry tier is due. */
async function waitUntilDue(
  dueAt: number,
  clock: Clock,
  context: RecordContext,
): Promise<void> {
  for (let wait = dueAt - clock.now(); wait > 0; wait = dueAt - clock.now()) {
    await clock.sleep(Math.min(wait, HEARTBEAT_EVERY_MS), context.signal);
    await context.heartbeat();
  }
}

/**
 * Builds the record handler that runs one stage node on each record it is given. Hand it to
 * `Consumer.run`.
 *
 * @example
 * ```ts ignore
 * const consumer = await transport.consumer({ groupId: node.group, topics: [node.input, ...node.retryTopics] });
 * await consumer.run(createRecordHandler(node, { producer, group: node.group, clock: systemClock, random: Math.random }));
 * ```
 */
export function createRecordHandler(
  node: ResolvedStageNode,
  options: RecordHandlerOptions,
): RecordHandler {
  const { stage, retry } = node;
  const { producer, clock, random, state, onOutcome, group } = options;
  const telemetry = options.instrumentation ?? noopInstrumentation;
  /** Spans are recorded: only then are the per-record trace wrappers worth their closures. */
  const traced = telemetry.enabled;
  if (stage.key && state === undefined) {
    throw new TypeError(`Stage "${stage.name}" is keyed but no state was given`);
  }
  const tierOf = new Map(node.retryTopics.map((topic, i) => [topic, i + 1]));
  /** Whether a record's sends commit or abort as one (its task's transaction). */
  const atomic = options.producerFor !== undefined;

  const heartbeats = new Heartbeats();

  /**
   * Idempotency keys whose record is being handled here and whose outcome is not durable yet,
   * with a promise that settles (never rejects) once it is, or once the record failed.
   */
  const pendingKeys = new Map<string, KeyLock>();

  /** `metrics.sent(topic)` as a callback, one per topic rather than a closure per send. */
  const sentCallbacks = new Map<string, () => void>();
  function sentTo(topic: string): () => void {
    let callback = sentCallbacks.get(topic);
    if (callback === undefined) {
      callback = () => telemetry.metrics.sent(topic);
      sentCallbacks.set(topic, callback);
    }
    return callback;
  }

  /**
   * Queues a record on the producer in a `send` span; resolves once it is acknowledged. With
   * tracing off there is no span to open and no context to inject: the record goes as it is.
   */
  function send(
    via: Producer,
    record: OutgoingRecord,
    key: string | undefined,
  ): Promise<void> {
    if (!traced) {
      return via.send([record]).then(sentTo(record.topic));
    }
    const headers = { ...record.headers };
    // Called, not awaited: the span starts and the trace context is injected right now.
    return telemetry.traceSend(record.topic, headers, { key, stage: stage.name }, async () => {
      await via.send([{ ...record, headers }]);
      telemetry.metrics.sent(record.topic);
    });
  }

  /**
   * One attempt: runs the handler on a decoded `input` and encodes its outputs. Not a closure
   * per attempt: it is what nearly every record runs once.
   */
  async function attemptOnce(
    record: ConsumedRecord,
    input: unknown,
    attempt: number,
    context: RecordContext,
    keyText: string | undefined,
    errorContext: ErrorContext,
  ): Promise<OutgoingRecord[]> {
    const stageContext: StageContext = {
      record,
      attempt,
      signal: context.signal,
      clock,
      setAttributes: traced
        ? (attributes) => telemetry.setSpanAttributes(attributes)
        : ignoreAttributes,
    };
    // A slow handler must not get its member evicted from the group.
    heartbeats.add(context);
    let result;
    try {
      result = await stage.handle(input, stageContext);
    } finally {
      heartbeats.delete(context);
    }
    if (result === null || result === undefined) return [];
    if (!Array.isArray(result)) return [encodeOutput(record, result, keyText, errorContext)];
    return result.map((output) => encodeOutput(record, output, keyText, errorContext));
  }

  /** An output of the handler as the record to send. */
  function encodeOutput(
    record: ConsumedRecord,
    output: unknown,
    keyText: string | undefined,
    errorContext: ErrorContext,
  ): OutgoingRecord {
    const key = stage.outputKey?.(output) ?? keyText ?? null;
    return {
      topic: node.output!,
      // The consumed record's key bytes when the output's key is the same text: not encoded
      // again.
      key: key !== null && key === keyText && record.key !== null ? record.key : key,
      value: encodeValue(stage.output!, output, errorContext),
      headers: traceHeaders(record.headers),
    };
  }

  /** Waits for every send; rejects with the first failure once all have settled. */
  async function allDurable(sends: readonly Promise<unknown>[]): Promise<void> {
    // The usual cases, one output or one state entry, need no settling of an array.
    if (sends.length === 0) return;
    if (sends.length === 1) return void await sends[0];
    const results = await Promise.allSettled(sends);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure !== undefined) throw failure.reason;
  }

  /**
   * The changelog write of a record's key's new `entry`, if it has one, as a send: the key's
   * bytes are the consumed record's own (its key is the key's, checked on decode).
   */
  function stateSend(
    via: Producer,
    record: ConsumedRecord,
    keyText: string | undefined,
    entry: StateEntry | null | undefined,
  ): Promise<unknown> | undefined {
    if (entry === undefined || state === undefined || keyText === undefined) return undefined;
    // Not traced as a `send` span: a state write is bookkeeping, not a message.
    return via.send([
      state.changelogRecord(record.partition, keyText, entry, record.key ?? undefined),
    ]);
  }

  return async function handleRecord(
    record: ConsumedRecord,
    context: RecordContext,
  ): Promise<RecordAck> {
    const out = options.producerFor?.(record) ?? producer;
    const tier = tierOf.get(record.topic) ?? 0;
    if (tier > 0) {
      // Capped at now plus the tier's delay: a forged or skewed due time must not hold the
      // tier's partition for longer than the tier promises.
      const latest = clock.now() + retry.tiers[tier - 1].delayMs;
      const dueAt = int(record.headers, HEADER.RETRY_DUE_AT) ?? 0;
      await waitUntilDue(Math.min(dueAt, latest), clock, context);
    }
    const started = clock.now();
    const keyText = record.key === null ? undefined : keyDecoder.decode(record.key);
    const priorAttempts = int(record.headers, HEADER.ATTEMPTS) ?? 0;
    const original = tier === 0 ? undefined : {
      topic: record.headers[HEADER.ORIGINAL_TOPIC] ?? node.input,
      partition: int(record.headers, HEADER.ORIGINAL_PARTITION) ?? record.partition,
      offset: int(record.headers, HEADER.ORIGINAL_OFFSET) ?? record.offset,
    };
    const errorContext = {
      stage: stage.name,
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
    };
    telemetry.metrics.consumed(stage.name, record.topic, record.partition);
    telemetry.metrics.inFlight(1);
    // The hand-over: once the record's outcome is decided and its sends are queued, the
    // transport may deliver the next record while this one's outcome becomes durable. Until
    // then a failure is the handler's. `phase`: 0 until either, 1 handed over, 2 failed first;
    // the handler waits (one promise, only if the body did not hand over synchronously).
    let phase = 0;
    let failure: unknown;
    let wake: (() => void) | undefined;
    const handOver = () => {
      if (phase !== 0) return;
      phase = 1;
      wake?.();
    };
    // The process span stays open until the outcome is durable, so the send spans stay inside
    // it and its duration (and the processing-latency metric) still means "until durable".
    const body = async () => {
      const finish = (outcome: Omit<StageOutcome, "stage" | "record">) => {
        const now = clock.now();
        const ms = now - started;
        if (outcome.kind === "output" || outcome.kind === "dead-lettered") {
          const firstProduced = int(record.headers, HEADER.ORIGINAL_TIMESTAMP) ??
            record.timestamp;
          telemetry.metrics.e2eLatency(stage.name, Math.max(0, now - firstProduced));
        }
        telemetry.metrics.processDuration(
          stage.name,
          record.topic,
          ms,
          outcome.kind,
          stage.processingLatency,
        );
        onOutcome?.({ stage: stage.name, record, ...outcome });
      };
      /**
       * Hands the record over with these sends queued, and waits until they are durable; then
       * writes the key's new state `entry` (if any) and waits for it too. Outside a transaction
       * the entry goes only after the outputs are acknowledged: the changelog and the outputs are
       * different partitions, and a broker killed mid-request (or two flushes of a batching
       * producer) can keep one and lose the other. An entry kept without its output would make
       * every later delivery of the record a duplicate, with no outcome on the broker; an output
       * kept without its entry is only an at-least-once duplicate. In a transaction (the
       * exactly-once mode) both go together: they commit or abort as one.
       */
      const durable = async (sends: readonly Promise<void>[], entry?: StateEntry | null) => {
        if (atomic) {
          const write = stateSend(out, record, keyText, entry);
          const all = write === undefined ? sends : [write, ...sends];
          handOver();
          return await allDurable(all);
        }
        handOver();
        // One send (the usual case) is awaited as it is.
        await (sends.length === 1 ? sends[0] : allDurable(sends));
        await stateSend(out, record, keyText, entry);
      };
      /**
       * Dead-letters the record, bounded by its encoded size so the DLQ topic always takes it.
       * `entry`: the key's new state entry when the dead letter is the outcome of the record's
       * key (it decoded and its key matched), so a redelivery of the key is a duplicate.
       */
      const deadLetter = async (
        error: unknown,
        attempts: number,
        retries: number,
        entry?: StateEntry | null,
      ) => {
        const settlesKey = entry !== undefined && entry !== null;
        const { envelope, record: dead } = deadLetterRecord(record, {
          stage: stage.name,
          error,
          attempts: priorAttempts + attempts,
          failedAt: clock.now(),
          original,
        }, {
          topic: node.deadLetter,
          maxMessageBytes: node.deadLetterMaxBytes,
          headers: {
            [HEADER.STAGE]: stage.name,
            [HEADER.ERROR_TYPE]: errorType(error),
            ...(settlesKey ? { [HEADER.KEY_OUTCOME]: "dead-lettered" } : {}),
          },
        });
        telemetry.recordError(error);
        await durable([send(out, dead, keyText)], entry);
        if (entry !== undefined) state!.set(record.partition, keyText!, entry);
        telemetry.metrics.deadLettered(stage.name, envelope.error_type, node.deadLetter);
        log.warn("Record dead-lettered to {dlq}: {error_type}: {error_reason}", {
          ...errorContext,
          key: keyText,
          dlq: node.deadLetter,
          error_type: envelope.error_type,
          error_reason: envelope.error_reason,
          attempts: envelope.attempts,
        });
        return {
          errorType: envelope.error_type,
          errorReason: envelope.error_reason,
          attempts,
          retries,
        };
      };

      /** Queues a copy of the record to retry tier `target` (1-based); resolves once durable. */
      const forward = (target: number, attempts: number, extra: RecordHeaders) =>
        send(out, {
          topic: node.retryTopics[target - 1],
          // Same partition number: partition p of the input and of every tier is one task,
          // owned by one member with partition p's state.
          partition: record.partition,
          key: record.key,
          value: record.value,
          headers: {
            ...record.headers,
            [HEADER.RETRY_TIER]: String(target),
            [HEADER.RETRY_DUE_AT]: String(clock.now() + retry.tiers[target - 1].delayMs),
            [HEADER.ATTEMPTS]: String(attempts),
            [HEADER.ORIGINAL_TOPIC]: original?.topic ?? record.topic,
            [HEADER.ORIGINAL_PARTITION]: String(original?.partition ?? record.partition),
            [HEADER.ORIGINAL_OFFSET]: String(original?.offset ?? record.offset),
            [HEADER.ORIGINAL_TIMESTAMP]: record.headers[HEADER.ORIGINAL_TIMESTAMP] ??
              String(record.timestamp),
            [HEADER.STAGE]: stage.name,
            ...extra,
          },
        }, keyText);

      // 1. Decode: poison and invalid records, and records under a key that is not their
      // value's, go straight to the DLQ. None of them settles its key: the key's real record
      // may still come.
      let input: unknown;
      let idempotencyKey: string | undefined;
      try {
        if ((stage.requireKey || stage.key) && record.key === null) {
          throw new PoisonRecordError("Cannot accept record as it has no key", errorContext);
        }
        input = decodeValue(stage.input, record.value, {
          maxBytes: stage.maxValueBytes,
          context: errorContext,
        });
        if (stage.key) {
          const derivedKey = stage.key(input);
          if (derivedKey !== keyText) {
            throw new KeyMismatchError({
              ...errorContext,
              recordKey: keyText ?? null,
              derivedKey,
            });
          }
          idempotencyKey = derivedKey;
        }
      } catch (error) {
        const failed = await deadLetter(error, 0, 0);
        finish({ kind: "dead-lettered", outputs: 0, ...failed });
        return;
      }

      // 2. Idempotency: an input that already has an outcome is skipped. An earlier record
      // with the same key whose outcome is still on its way is waited for first: its outcome
      // either becomes durable (and this one is a duplicate) or fails (and this one is handled).
      let lock: KeyLock | undefined;
      if (idempotencyKey !== undefined) {
        for (
          let earlier = pendingKeys.get(idempotencyKey);
          earlier !== undefined;
          earlier = pendingKeys.get(idempotencyKey)
        ) {
          await earlier.released();
        }
        lock = new KeyLock();
        pendingKeys.set(idempotencyKey, lock);
      }
      try {
        if (idempotencyKey !== undefined && !state!.owns(record.partition)) {
          // Never handled as new on a store that is not there: that could charge twice.
          throw new RetryableError(
            `Cannot check key "${idempotencyKey}" as the state of partition ${record.partition} ` +
              `is not restored on this member; it will be delivered again`,
            errorContext,
          );
        }
        const entry = idempotencyKey === undefined
          ? undefined
          : state!.get(record.partition, idempotencyKey);
        const parked = entry?.outcome === "parked" && node.orderedRetries ? entry : undefined;
        const known = entry === undefined
          ? undefined
          : entry.outcome === "parked"
          ? entry.settled
          : entry.outcome;
        /** This record's identity in its key's queue: its offset in the input partition. */
        const identity = original?.offset ?? record.offset;
        /** The key's entry once this record has `outcome` (`undefined`: nothing to write). */
        const nextEntry = (
          outcome: "output" | "dead-lettered" | "duplicate" | { tier: number },
        ): StateEntry | null | undefined => {
          if (idempotencyKey === undefined) return undefined;
          const at = clock.now();
          if (parked !== undefined) {
            if (typeof outcome === "object") {
              const queue = parked.queue.map((q) =>
                q.offset === identity ? { offset: identity, tier: outcome.tier } : q
              );
              return { ...parked, queue, at };
            }
            const rest = parked.queue.filter((q) => q.offset !== identity);
            const settled = outcome === "output" || parked.settled === "output"
              ? "output"
              : outcome === "dead-lettered"
              ? "dead-lettered"
              : parked.settled;
            if (rest.length > 0) return { outcome: "parked", queue: rest, settled, at };
            // The queue is empty and no record of the key had an outcome: the key is free.
            return settled === undefined ? null : { outcome: settled, at };
          }
          if (outcome === "duplicate") return undefined;
          if (typeof outcome === "object") {
            if (!node.orderedRetries) return undefined;
            return { outcome: "parked", queue: [{ offset: identity, tier: outcome.tier }], at };
          }
          return { outcome, at };
        };

        // Ordered retries: a record of a key with an earlier record in a tier follows it.
        if (parked !== undefined && parked.queue[0]?.offset !== identity) {
          const head = parked.queue[0];
          const target = Math.min(node.retryTopics.length, Math.max(head?.tier ?? 1, tier, 1));
          const inQueue = parked.queue.some((q) => q.offset === identity);
          const queue = inQueue
            ? parked.queue.map((q) =>
              q.offset === identity ? { offset: identity, tier: target } : q
            )
            : [...parked.queue, { offset: identity, tier: target }];
          const following: StateEntry = { ...parked, queue, at: clock.now() };
          await durable([
            forward(target, priorAttempts, {
              [HEADER.PARKED_BEHIND]: String(head?.offset ?? ""),
            }),
          ], following);
          state!.set(record.partition, idempotencyKey!, following);
          log.info("Record follows an earlier record of key {key} into retry tier {tier}", {
            ...errorContext,
            key: keyText,
            tier: target,
            parked_behind: head?.offset,
          });
          finish({ kind: "retry-scheduled", attempts: 0, retries: 0, outputs: 0 });
          return;
        }

        // A record replayed from the DLQ on purpose gets another chance; only an output ends it.
        const replayed = record.headers[HEADER.REPLAYED_FROM] !== undefined;
        if (known === "output" || (known === "dead-lettered" && !replayed)) {
          // The head of a key's queue that is a duplicate leaves the queue.
          const after = nextEntry("duplicate");
          if (after !== undefined) {
            await durable([], after);
            state!.set(record.partition, idempotencyKey!, after);
          }
          telemetry.metrics.duplicateSkipped(stage.name);
          log.info("Record skipped: key {key} already has an outcome ({outcome})", {
            ...errorContext,
            key: keyText,
            outcome: known,
          });
          finish({ kind: "duplicate", attempts: 0, retries: 0, outputs: 0 });
          return;
        }

        // 3. Handle, with in-place retries. Only the handler and the encoding of its outputs
        // are attempts: a failure to send the outputs is the transport's, not the record's.
        let lastError: unknown;
        let attempts = 0;
        let encoded: OutgoingRecord[] | undefined;
        for (let i = 1; i <= retry.attempts; i++) {
          attempts = i;
          const attempt = priorAttempts + i;
          if (attempt > 1) telemetry.metrics.retried(stage.name, tier);
          try {
            encoded = await (traced
              ? telemetry.traceAttempt(
                stage.name,
                attempt,
                () => attemptOnce(record, input, attempt, context, keyText, errorContext),
              )
              : attemptOnce(record, input, attempt, context, keyText, errorContext));
            break;
          } catch (error) {
            if (context.signal.aborted) throw error;
            lastError = error;
            telemetry.metrics.failed(stage.name, errorType(error));
            if (!isRetriable(error)) break;
            if (i < retry.attempts) {
              const delayMs = backoffDelay(retry, i, random);
              log.debug("Attempt {attempt} failed, retrying in {delay_ms} ms: {error_reason}", {
                ...errorContext,
                key: keyText,
                attempt,
                delay_ms: delayMs,
                error_type: errorType(error),
                error_reason: errorMessage(error),
              });
              await clock.sleep(delayMs, context.signal);
              await context.heartbeat();
            }
          }
        }
        const retries = priorAttempts > 0 ? attempts : attempts - 1;

        // 4. Outputs are durable before the offset can be committed. A send that fails rejects
        // the record's `durable`, so the record is delivered again (never dead-lettered for
        // it). The sends are queued now and acknowledged together with other records' sends.
        if (encoded !== undefined) {
          const after = nextEntry("output");
          await durable(
            encoded.map((output) =>
              send(
                out,
                output,
                // Bytes only when they are the consumed record's key (see above).
                typeof output.key === "string" ? output.key : output.key ? keyText : undefined,
              )
            ),
            after,
          );
          if (after !== undefined) state!.set(record.partition, idempotencyKey!, after);
          finish({ kind: "output", attempts, retries, outputs: encoded.length });
          return;
        }

        // 5. Retryable and tiers left: forward to the next tier, without blocking this
        // partition.
        if (isRetriable(lastError) && tier < node.retryTopics.length) {
          const next = tier + 1;
          const after = nextEntry({ tier: next });
          await durable([
            forward(next, priorAttempts + attempts, {
              [HEADER.ERROR_TYPE]: errorType(lastError),
              [HEADER.ERROR_REASON]: lastError instanceof Error
                ? lastError.message
                : String(lastError),
            }),
          ], after);
          if (after !== undefined) state!.set(record.partition, idempotencyKey!, after);
          log.info("Record sent to retry tier {tier} ({retry_topic}), due in {delay_ms} ms", {
            ...errorContext,
            key: keyText,
            tier: next,
            retry_topic: node.retryTopics[tier],
            delay_ms: retry.tiers[tier].delayMs,
            error_type: errorType(lastError),
          });
          finish({
            kind: "retry-scheduled",
            attempts,
            retries,
            outputs: 0,
            errorType: errorType(lastError),
            errorReason: lastError instanceof Error ? lastError.message : String(lastError),
          });
          return;
        }

        // 6. Out of attempts, or fatal: dead-letter.
        const failed = await deadLetter(lastError, attempts, retries, nextEntry("dead-lettered"));
        finish({ kind: "dead-lettered", outputs: 0, ...failed });
      } finally {
        if (lock !== undefined) {
          if (pendingKeys.get(idempotencyKey!) === lock) pendingKeys.delete(idempotencyKey!);
          lock.release();
        }
      }
    };
    const processing = traced ? telemetry.traceProcess(record, group, stage.name, body) : body();

    const durable = processing.then(
      () => {
        telemetry.metrics.inFlight(-1);
        // Outcomes with nothing to send (a duplicate) never handed over.
        handOver();
      },
      (error: unknown) => {
        telemetry.metrics.inFlight(-1);
        if (phase === 0) {
          phase = 2;
          failure = error;
          wake?.();
        }
        if (!context.signal.aborted) {
          // Reported as a failed message of the send's error type; the transport delivers the
          // record again after a backoff.
          telemetry.metrics.failed(stage.name, errorType(error));
          log.error("Record outcome not durable, it will be delivered again: {error_reason}", {
            ...errorContext,
            key: keyText,
            error_type: errorType(error),
            error_reason: errorMessage(error),
          });
        }
        throw error;
      },
    );
    if (phase === 0) await new Promise<void>((resolve) => wake = resolve);
    if (phase === 2) {
      // Until the hand-over, a failure is the handler's: it rejects the handler itself.
      // `durable` rejects with the same error; nobody else will look at it.
      durable.catch(() => undefined);
      throw failure;
    }
    return { durable };
  };
}

/** Encodes a string key as the transport expects. */
export function keyBytes(key: string): Uint8Array {
  return encoder.encode(key);
}
