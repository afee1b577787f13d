/**
 * A {@linkcode Transport} decorator that timestamps what the pipeline asks of its transport:
 * every producer `send` (records per call, time to durable) and every record handler call
 * (time in the handler, and per partition the idle gap since the previous record finished,
 * which is time spent waiting for fetches). It changes no behaviour unless `coalesce` is set.
 *
 * `coalesce` is an experiment for a proposed transport change: `send` calls made while one is
 * in flight are merged into one underlying `send` (one produce request) once it returns.
 *
 * @module
 */
import type {
  Consumer,
  ConsumerOptions,
  DeliveryReport,
  OutgoingRecord,
  Producer,
  RecordHandler,
  Transport,
} from "../pipeline/transport/transport.ts";
import { percentiles } from "./_stats.ts";
import type { Percentiles } from "./_stats.ts";

/** Options for {@linkcode profileTransport}. */
export interface ProfileOptions {
  /**
   * Merge `send` calls made while another is in flight into one underlying `send`.
   * @default false
   */
  readonly coalesce?: boolean;
}

/** What the profile saw, summarised. */
export interface TransportProfile {
  /** Underlying producer `send` calls, by the topic of their first record. */
  readonly sends: Readonly<Record<string, SendProfile>>;
  /** Time one record spends in the stage's handler (includes its output `send`), in ms. */
  readonly handlerMs: Percentiles;
  /** Per partition, time from one record's handler end to the next one's start, in ms. */
  readonly partitionGapMs: Percentiles;
  /** The most handler calls running at once. */
  readonly maxConcurrentHandlers: number;
  /** Records handled. */
  readonly handled: number;
}

/** Underlying producer `send` calls to one topic. */
export interface SendProfile {
  /** Calls (produce requests). */
  readonly calls: number;
  /** Records sent through those calls. */
  readonly records: number;
  /** Records per call. */
  readonly recordsPerSend: Percentiles;
  /** Time from `send` to durable, per call, in ms. */
  readonly sendMs: Percentiles;
}

/** A transport that records timings; call `profile()` for the summary. */
export interface ProfiledTransport extends Transport {
  /** The timings so far. */
  profile(): TransportProfile;
}

interface Pending {
  readonly records: readonly OutgoingRecord[];
  resolve(reports: DeliveryReport[]): void;
  reject(error: unknown): void;
}

/**
 * Wraps a transport so its sends and record handlers are timed.
 *
 * @example
 * ```ts ignore
 * const transport = profileTransport(createKafkaTransport("127.0.0.1:9092"));
 * // run the pipeline on it, then:
 * console.log(transport.profile().sendMs.p50);
 * ```
 */
export function profileTransport(
  inner: Transport,
  options: ProfileOptions = {},
): ProfiledTransport {
  const { coalesce = false } = options;
  const sends = new Map<string, { ms: number[]; sizes: number[] }>();
  const handlerMs: number[] = [];
  const gapMs: number[] = [];
  const lastEnd = new Map<string, number>();
  let running = 0;
  let maxRunning = 0;

  async function timedSend(producer: Producer, records: readonly OutgoingRecord[]) {
    const started = performance.now();
    const reports = await producer.send(records);
    const topic = records[0]?.topic ?? "";
    let entry = sends.get(topic);
    if (!entry) sends.set(topic, entry = { ms: [], sizes: [] });
    entry.ms.push(performance.now() - started);
    entry.sizes.push(records.length);
    return reports;
  }

  function wrapProducer(producer: Producer): Producer {
    if (!coalesce) {
      return {
        send: (records) => timedSend(producer, records),
        close: () => producer.close(),
      };
    }
    let queue: Pending[] = [];
    let flushing = false;
    async function flush(): Promise<void> {
      flushing = true;
      while (queue.length > 0) {
        const batch = queue;
        queue = [];
        try {
          const reports = await timedSend(producer, batch.flatMap((p) => p.records));
          let at = 0;
          for (const pending of batch) {
            pending.resolve(reports.slice(at, at + pending.records.length));
            at += pending.records.length;
          }
        } catch (error) {
          for (const pending of batch) pending.reject(error);
        }
      }
      flushing = false;
    }
    return {
      send(records: readonly OutgoingRecord[]): Promise<DeliveryReport[]> {
        return new Promise((resolve, reject) => {
          queue.push({ records, resolve, reject });
          if (!flushing) void flush();
        });
      },
      close: () => producer.close(),
    };
  }

  function wrapHandler(handler: RecordHandler): RecordHandler {
    return async function profiledHandler(record, context) {
      const key = `${record.topic}\0${record.partition}`;
      const started = performance.now();
      const previous = lastEnd.get(key);
      if (previous !== undefined) gapMs.push(started - previous);
      maxRunning = Math.max(maxRunning, ++running);
      try {
        // The result may be a RecordAck: it must reach the transport, or nothing waits for it.
        return await handler(record, context);
      } finally {
        running--;
        const ended = performance.now();
        handlerMs.push(ended - started);
        lastEnd.set(key, ended);
      }
    };
  }

  return {
    kind: inner.kind,
    target: inner.target,
    ensureTopics: (topics) => inner.ensureTopics(topics),
    async producer(): Promise<Producer> {
      return wrapProducer(await inner.producer());
    },
    async consumer(consumerOptions: ConsumerOptions): Promise<Consumer> {
      const consumer = await inner.consumer(consumerOptions);
      return {
        run: (handler) => consumer.run(wrapHandler(handler)),
        close: () => consumer.close(),
        assignment: () => consumer.assignment(),
      };
    },
    // Transactions are not profiled (yet): the bench runs at-least-once.
    transactionalProducer: (options) => inner.transactionalProducer(options),
    endOffsets: (topic) => inner.endOffsets(topic),
    committedOffsets: (groupId, topic) => inner.committedOffsets(groupId, topic),
    readPartitions: (topic, partitions, each, signal) =>
      inner.readPartitions(topic, partitions, each, signal),
    close: () => inner.close(),
    profile(): TransportProfile {
      return {
        sends: Object.fromEntries(
          [...sends].map(([topic, { ms, sizes }]) => [topic, {
            calls: ms.length,
            records: sizes.reduce((sum, n) => sum + n, 0),
            recordsPerSend: percentiles(sizes),
            sendMs: percentiles(ms),
          }]),
        ),
        handlerMs: percentiles(handlerMs),
        partitionGapMs: percentiles(gapMs),
        maxConcurrentHandlers: maxRunning,
        handled: handlerMs.length,
      };
    },
  };
}
