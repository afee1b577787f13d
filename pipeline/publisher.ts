/**
 * Publishing from a source: validate each value against the source's schema, key it, trace
 * it (`send <topic>`), and send it in batches whose every record is acknowledged before the
 * publish resolves.
 *
 * @module
 */
import { encodeValue } from "./codec.ts";
import type { Pipeline } from "./definition.ts";
import type { Instrumentation } from "./instrumentation.ts";
import { noopInstrumentation } from "./instrumentation.ts";
import type {
  DeliveryReport,
  OutgoingRecord,
  Producer,
  RecordHeaders,
} from "./transport/transport.ts";

/** Options for {@linkcode createPublisher}. */
export interface PublisherOptions {
  /** The producer to send with. */
  readonly producer: Producer;
  /**
   * Tracing and metrics.
   * @default no-op
   */
  readonly instrumentation?: Instrumentation;
}

/** Publishes a source's values to its topic. */
export interface Publisher<T> {
  /** The topic written. */
  readonly topic: string;
  /**
   * Sends values as one batch; resolves with one report per value once all are durable.
   * Each value is sent in the trace context active when `publish` is called.
   */
  publish(values: readonly T[], headers?: RecordHeaders): Promise<DeliveryReport[]>;
}

/**
 * Creates the publisher of a pipeline source.
 *
 * @example
 * ```ts ignore
 * const publisher = createPublisher<Order>(pipeline, "publish-order", { producer });
 * await publisher.publish([order]);
 * ```
 */
export function createPublisher<T>(
  pipeline: Pipeline,
  sourceName: string,
  options: PublisherOptions,
): Publisher<T> {
  const source = pipeline.source(sourceName);
  const { producer, instrumentation = noopInstrumentation } = options;
  return {
    topic: source.output,
    async publish(values: readonly T[], headers: RecordHeaders = {}): Promise<DeliveryReport[]> {
      // Validate every value before anything is sent or traced: a bad value fails the batch.
      const records: OutgoingRecord[] = values.map((value) => ({
        topic: source.output,
        key: source.key?.(value) ?? null,
        value: encodeValue(source.schema, value, { stage: source.name, topic: source.output }),
        headers: { ...headers },
      }));
      let release!: (reports: DeliveryReport[]) => void;
      let fail!: (error: unknown) => void;
      const sent = new Promise<DeliveryReport[]>((resolve, reject) => {
        release = resolve;
        fail = reject;
      });
      // One span per record, all open across the one batched send they share. The span's
      // trace context is injected into the record's headers before the send starts.
      const spans = records.map((record, index) =>
        instrumentation.traceSend(
          source.output,
          record.headers as RecordHeaders,
          { key: typeof record.key === "string" ? record.key : undefined, stage: source.name },
          async () => (await sent)[index],
        )
      );
      producer.send(records).then(release, fail);
      const reports = await Promise.all(spans);
      for (let i = 0; i < reports.length; i++) instrumentation.metrics.sent(source.output);
      return reports;
    },
  };
}
