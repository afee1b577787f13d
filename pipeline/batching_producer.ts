/**
 * A {@linkcode Producer} that merges concurrent `send` calls into one underlying send: the
 * runner hands over each record's outputs without waiting, and one produce request carries
 * many records' outputs, instead of one round trip per record.
 *
 * Calls are queued in order and flushed as one underlying `send` when `maxBatchRecords`
 * records are queued or `lingerMs` has passed since the first queued one, whichever comes
 * first. One flush is in flight at a time (with an idempotent producer and one request in
 * flight, records land in the order they were sent); the next starts when the previous one
 * settles. Each call resolves with its own delivery reports once its flush is acknowledged. A
 * flush that fails with a retriable error (a broker away) rejects every call in it; one that
 * fails for good (say, a record larger than its topic takes) is sent again call by call, so
 * only the call at fault fails and the others' records are written (at-least-once: what the
 * failed request did write may be written twice).
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { ConfigError, isRetriable, PipelineError } from "./errors.ts";
import type { DeliveryReport, OutgoingRecord, Producer } from "./transport/transport.ts";

/** Options for {@linkcode batchingProducer}. */
export interface BatchingProducerOptions {
  /**
   * Flush as soon as this many records are queued. A single call with more records is sent
   * whole, in a flush of its own.
   * @default 500
   */
  readonly maxBatchRecords?: number;
  /**
   * Flush at the latest this many milliseconds after the first record was queued (sooner when
   * the batch is full).
   * @default 2
   */
  readonly lingerMs?: number;
  /**
   * Whether `close()` closes the wrapped producer too. Pass `false` when the wrapped producer
   * is shared and closed by its owner.
   * @default true
   */
  readonly closeProducer?: boolean;
  /**
   * Where the linger waits.
   * @default systemClock
   */
  readonly clock?: Clock;
}

/** A producer that batches concurrent sends; see the module doc. */
export interface BatchingProducer extends Producer {
  /** Resolves once every call made so far has settled (failed calls included). */
  flush(): Promise<void>;
  /** Flushes, then closes the wrapped producer (unless `closeProducer` is `false`). */
  close(): Promise<void>;
}

interface QueuedCall {
  readonly records: readonly OutgoingRecord[];
  readonly resolve: (reports: DeliveryReport[]) => void;
  readonly reject: (error: unknown) => void;
}

function validate(options: BatchingProducerOptions): Required<BatchingProducerOptions> {
  const { maxBatchRecords = 500, lingerMs = 2, closeProducer = true, clock = systemClock } =
    options;
  if (!Number.isSafeInteger(maxBatchRecords) || maxBatchRecords < 1) {
    throw new ConfigError(
      `Cannot create batching producer as 'maxBatchRecords' must be a positive integer: ` +
        `current value is ${maxBatchRecords}`,
      { field: "maxBatchRecords" },
    );
  }
  if (!Number.isFinite(lingerMs) || lingerMs < 0) {
    throw new ConfigError(
      `Cannot create batching producer as 'lingerMs' must be a non-negative number: ` +
        `current value is ${lingerMs}`,
      { field: "lingerMs" },
    );
  }
  return { maxBatchRecords, lingerMs, closeProducer, clock };
}

/**
 * Wraps `producer` so that concurrent `send` calls share produce requests.
 *
 * @example
 * ```ts ignore
 * const batching = batchingProducer(await transport.producer(), { lingerMs: 2 });
 * const a = batching.send([{ topic: "payments", key: "o-1", value: "..." }]);
 * const b = batching.send([{ topic: "payments", key: "o-2", value: "..." }]);
 * await Promise.all([a, b]); // one underlying send carried both
 * await batching.close();
 * ```
 */
export function batchingProducer(
  producer: Producer,
  options: BatchingProducerOptions = {},
): BatchingProducer {
  const { maxBatchRecords, lingerMs, closeProducer, clock } = validate(options);
  let queue: QueuedCall[] = [];
  let queuedRecords = 0;
  let inFlight: Promise<void> | undefined;
  /** Aborts the linger wait of the queued records. */
  let linger: AbortController | undefined;
  /** The linger of the queued records has passed while a flush was in flight. */
  let due = false;
  let closed: Promise<void> | undefined;
  const idle: Array<() => void> = [];

  function maybeFlush(): void {
    if (queue.length === 0) return;
    if (!due && queuedRecords < maxBatchRecords) {
      // The linger runs from the first queued record, even while a flush is in flight.
      if (linger === undefined) {
        const controller = new AbortController();
        linger = controller;
        clock.sleep(lingerMs, controller.signal).then(function lingerPassed() {
          if (linger !== controller) return;
          linger = undefined;
          due = true;
          maybeFlush();
        }, () => undefined);
      }
      return;
    }
    if (inFlight !== undefined) return;
    linger?.abort();
    linger = undefined;
    // Whole calls, up to maxBatchRecords (at least one call).
    let count = 0;
    let taken = 0;
    while (taken < queue.length) {
      const next = queue[taken].records.length;
      if (taken > 0 && count + next > maxBatchRecords) break;
      count += next;
      taken++;
    }
    const batch = queue.slice(0, taken);
    queue = queue.slice(taken);
    queuedRecords -= count;
    // What is left waited through this flush: it goes next, full or not.
    due = queue.length > 0;
    inFlight = send(batch).finally(function flushSettled() {
      inFlight = undefined;
      maybeFlush();
      if (inFlight === undefined && queue.length === 0) {
        for (const wake of idle.splice(0)) wake();
      }
    });
  }

  async function send(batch: readonly QueuedCall[]): Promise<void> {
    try {
      const reports = await producer.send(batch.flatMap((call) => call.records));
      let at = 0;
      for (const call of batch) {
        call.resolve(reports.slice(at, at + call.records.length));
        at += call.records.length;
      }
    } catch (error) {
      if (batch.length === 1 || isRetriable(error)) {
        for (const call of batch) call.reject(error);
        return;
      }
      // One call's records spoiled the request for all: find it by sending each call alone.
      for (const call of batch) {
        try {
          call.resolve(await producer.send(call.records));
        } catch (callError) {
          call.reject(callError);
        }
      }
    }
  }

  function flush(): Promise<void> {
    if (inFlight === undefined && queue.length === 0) return Promise.resolve();
    due = true;
    const settled = new Promise<void>((resolve) => idle.push(resolve));
    maybeFlush();
    return settled;
  }

  return {
    send: function sendBatched(records: readonly OutgoingRecord[]): Promise<DeliveryReport[]> {
      if (closed !== undefined) {
        return Promise.reject(
          new PipelineError("Cannot send records as the batching producer is closed"),
        );
      }
      if (records.length === 0) return Promise.resolve([]);
      return new Promise((resolve, reject) => {
        queue.push({ records, resolve, reject });
        queuedRecords += records.length;
        maybeFlush();
      });
    },
    flush,
    close: function closeBatching(): Promise<void> {
      closed ??= (async () => {
        await flush();
        if (closeProducer) await producer.close();
      })();
      return closed;
    },
  };
}
