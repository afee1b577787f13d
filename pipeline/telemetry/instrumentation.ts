/**
 * The OpenTelemetry implementation of the framework's one instrumentation interface
 * (`Instrumentation` in `pipeline/instrumentation.ts`): a PRODUCER span around every send, a
 * CONSUMER span around every record processed (parented to, or linked with, the producer's
 * context carried in the record headers), a child span per handler attempt, and the metrics it
 * is given. Plus helpers for domain code: {@linkcode setSpanAttributes} and
 * {@linkcode currentTraceIds}.
 *
 * When telemetry is off, `noopInstrumentation` calls the function straight away: no span, no
 * context switch, no header written.
 *
 * @example The runner's loop, in short
 * ```ts ignore
 * const { instrumentation: ins } = telemetry;
 * await consumer.run((record) =>
 *   ins.traceProcess(record, group, stage, async () => {
 *     for (let attempt = 1; ; attempt++) {
 *       try {
 *         const out = await ins.traceAttempt(stage, attempt, () => handler(value));
 *         const headers = { ...passThrough };
 *         await ins.traceSend(outTopic, headers, { key: out.key, stage }, () =>
 *           producer.send([{ topic: outTopic, key: out.key, value: out.value, headers }]));
 *         return;
 *       } catch (error) {
 *         if (!isRetriable(error) || attempt >= max) {
 *           ins.recordError(error); // the process span shows the failure; the DLQ send follows
 *           await ins.traceSend(dlqTopic, dlqHeaders, { stage }, () => producer.send(...));
 *           return;
 *         }
 *       }
 *     }
 *   })
 * );
 * ```
 *
 * @module
 */

import {
  type Attributes,
  type Context,
  context,
  createContextKey,
  defaultTextMapGetter,
  defaultTextMapSetter,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapPropagator,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import type { ConsumedRecord, RecordHeaders } from "../transport/transport.ts";
import {
  type Instrumentation,
  NOOP_PIPELINE_METRICS,
  type ParentingMode,
  type PipelineMetrics,
  type SendAttributes,
} from "../instrumentation.ts";
import { errorMessage, errorType } from "../errors.ts";
import { ATTR, OPERATION_TYPE, SPAN } from "./names.ts";

/** Options for {@linkcode createInstrumentation}. */
export interface InstrumentationOptions {
  /**
   * The tracer spans come from.
   * @default {trace.getTracer("pipeline")}
   */
  readonly tracer?: Tracer;
  /**
   * The propagator that writes and reads the headers.
   * @default {the global propagator}
   */
  readonly propagator?: TextMapPropagator;
  /**
   * How consumer spans relate to the producer context.
   * @default {"parent"}
   */
  readonly mode?: ParentingMode;
  /**
   * The metrics the instrumentation hands out as its `metrics`.
   * @default {NOOP_PIPELINE_METRICS}
   */
  readonly metrics?: PipelineMetrics;
}

const MESSAGING_SYSTEM_KAFKA = "kafka";
/** Where the context of a record being processed keeps its `process` span. */
const PROCESS_SPAN = createContextKey("pipeline process span");
const decoder = new TextDecoder();

/**
 * Creates the instrumentation over a tracer and propagator. {@linkcode setupTelemetry} does
 * this for you; call it directly in tests with an in-memory tracer.
 *
 * @example
 * ```ts
 * import { createInstrumentation } from "./instrumentation.ts";
 * const ins = createInstrumentation({ mode: "link" });
 * const headers: Record<string, string> = {};
 * await ins.traceSend("events", headers, { key: "k1" }, async () => {});
 * ```
 */
export function createInstrumentation(options: InstrumentationOptions = {}): Instrumentation {
  const {
    tracer = trace.getTracer("pipeline"),
    propagator = undefined,
    mode = "parent",
    metrics = NOOP_PIPELINE_METRICS,
  } = options;
  const inject = (ctx: Context, headers: RecordHeaders) =>
    propagator === undefined
      ? propagation.inject(ctx, headers, defaultTextMapSetter)
      : propagator.inject(ctx, headers, defaultTextMapSetter);
  const extract = (headers: RecordHeaders): Context =>
    propagator === undefined
      ? propagation.extract(ROOT_CONTEXT, headers, defaultTextMapGetter)
      : propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);

  return {
    enabled: true,
    mode,
    traceSend: function traceSend<T>(
      topic: string,
      headers: RecordHeaders,
      attrs: SendAttributes,
      fn: () => Promise<T>,
    ): Promise<T> {
      const attributes: Attributes = {
        [ATTR.MESSAGING_SYSTEM]: MESSAGING_SYSTEM_KAFKA,
        [ATTR.MESSAGING_DESTINATION_NAME]: topic,
        [ATTR.MESSAGING_OPERATION_TYPE]: OPERATION_TYPE.SEND,
        [ATTR.MESSAGING_OPERATION_NAME]: OPERATION_TYPE.SEND,
        ...attrs.extra,
      };
      if (attrs.key !== undefined) attributes[ATTR.MESSAGING_KAFKA_MESSAGE_KEY] = attrs.key;
      if (attrs.partition !== undefined) {
        attributes[ATTR.MESSAGING_DESTINATION_PARTITION_ID] = String(attrs.partition);
      }
      if (attrs.stage !== undefined) attributes[ATTR.PIPELINE_STAGE] = attrs.stage;
      return tracer.startActiveSpan(
        SPAN.send(topic),
        { kind: SpanKind.PRODUCER, attributes },
        (span) => {
          inject(context.active(), headers);
          return runInSpan(span, fn, false);
        },
      );
    },
    traceProcess: function traceProcess<T>(
      record: ConsumedRecord,
      group: string,
      stage: string,
      fn: (span: Span) => Promise<T>,
    ): Promise<T> {
      const attributes: Attributes = {
        [ATTR.MESSAGING_SYSTEM]: MESSAGING_SYSTEM_KAFKA,
        [ATTR.MESSAGING_DESTINATION_NAME]: record.topic,
        [ATTR.MESSAGING_OPERATION_TYPE]: OPERATION_TYPE.PROCESS,
        [ATTR.MESSAGING_OPERATION_NAME]: OPERATION_TYPE.PROCESS,
        [ATTR.MESSAGING_DESTINATION_PARTITION_ID]: String(record.partition),
        [ATTR.MESSAGING_KAFKA_OFFSET]: record.offset,
        [ATTR.MESSAGING_CONSUMER_GROUP_NAME]: group,
        [ATTR.PIPELINE_STAGE]: stage,
      };
      if (record.key !== null) {
        attributes[ATTR.MESSAGING_KAFKA_MESSAGE_KEY] = decoder.decode(record.key);
      }
      const producer = extract(record.headers);
      let parent: Context = producer;
      let links: Link[] | undefined;
      if (mode === "link") {
        parent = ROOT_CONTEXT;
        const linked = trace.getSpanContext(producer);
        if (linked !== undefined) links = [{ context: linked }];
      }
      return tracer.startActiveSpan(
        SPAN.process(record.topic),
        { kind: SpanKind.CONSUMER, attributes, links },
        parent,
        (span) =>
          context.with(
            context.active().setValue(PROCESS_SPAN, span),
            () => runInSpan(span, () => fn(span), false),
          ),
      );
    },
    traceAttempt: function traceAttempt<T>(
      stage: string,
      attempt: number,
      fn: () => Promise<T>,
    ): Promise<T> {
      return tracer.startActiveSpan(
        SPAN.attempt(stage),
        {
          kind: SpanKind.INTERNAL,
          attributes: { [ATTR.PIPELINE_STAGE]: stage, [ATTR.PIPELINE_ATTEMPT]: attempt },
        },
        (span) => runInSpan(span, fn, true),
      );
    },
    setSpanAttributes: setRecordAttributes,
    recordError: function recordActiveError(error: unknown): void {
      recordError(error);
    },
    metrics,
  };
}

async function runInSpan<T>(
  span: Span,
  fn: () => Promise<T>,
  exceptionEvent: boolean,
): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    markFailed(span, error, exceptionEvent);
    throw error;
  } finally {
    span.end();
  }
}

function markFailed(span: Span, error: unknown, exceptionEvent: boolean): void {
  span.setAttribute(ATTR.ERROR_TYPE, errorType(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
  if (exceptionEvent) {
    span.recordException(error instanceof Error ? error : errorMessage(error));
  }
}

/**
 * Marks the active span (or `span`) as failed with `error` without throwing: for outcomes the
 * runner handles itself, such as a record sent to the dead-letter queue. Sets `error.type`,
 * status ERROR and an exception event. Does nothing when no span is active.
 */
export function recordError(error: unknown, span: Span | undefined = trace.getActiveSpan()): void {
  if (span === undefined || !span.isRecording()) return;
  markFailed(span, error, true);
}

/**
 * Adds attributes to the active span: how domain code records business attributes
 * (`setSpanAttributes({ "order.id": id })` in a handler). Does nothing without a span.
 *
 * @example
 * ```ts
 * import { setSpanAttributes } from "./instrumentation.ts";
 * setSpanAttributes({ "item.count": 3 });
 * ```
 */
export function setSpanAttributes(attrs: Attributes): void {
  const span = trace.getActiveSpan();
  if (span !== undefined && span.isRecording()) span.setAttributes(attrs);
}

/**
 * Adds attributes to the `process` span of the record being handled, and to the active span
 * when that is another one (an `attempt` span): what a stage's `setAttributes` promises, so
 * business ids such as `order.id` find the record's span whichever attempt set them. Outside
 * a record, the same as {@linkcode setSpanAttributes}.
 *
 * @example
 * ```ts
 * import { setRecordAttributes } from "./instrumentation.ts";
 * setRecordAttributes({ "order.id": "o-1" });
 * ```
 */
export function setRecordAttributes(attrs: Attributes): void {
  const active = trace.getActiveSpan();
  const process = context.active().getValue(PROCESS_SPAN) as Span | undefined;
  if (process !== undefined && process !== active && process.isRecording()) {
    process.setAttributes(attrs);
  }
  if (active !== undefined && active.isRecording()) active.setAttributes(attrs);
}

/** The ids of the active span, as logs carry them. */
export interface TraceIds {
  /** 32 lowercase hex digits, when a span is active. */
  readonly trace_id?: string;
  /** 16 lowercase hex digits, when a span is active. */
  readonly span_id?: string;
}

/**
 * The trace and span ids of the active span, or an empty object when there is none (or
 * telemetry is off).
 *
 * @example
 * ```ts
 * import { currentTraceIds } from "./instrumentation.ts";
 * console.log(currentTraceIds()); // {} outside any span
 * ```
 */
export function currentTraceIds(): TraceIds {
  const ctx = trace.getActiveSpan()?.spanContext();
  if (ctx === undefined || !trace.isSpanContextValid(ctx)) return {};
  return { trace_id: ctx.traceId, span_id: ctx.spanId };
}
