/**
 * The metrics the stage runner records, over the instruments named in {@linkcode METRIC}, and
 * a way for domain code to record its own declared metrics. Histograms carry bucket advice
 * from {@linkcode LATENCY_BUCKETS_MS} or {@linkcode LATENCY_BUCKETS_S} by unit.
 *
 * Exemplars: `@opentelemetry/sdk-metrics` 3.1 has no exemplar support (no reservoir, no
 * exemplar filter, nothing in its data points), so histogram points carry no trace ids.
 *
 * @example
 * ```ts
 * import { metrics } from "@opentelemetry/api";
 * import { createPipelineMetrics } from "./metrics.ts";
 * const m = createPipelineMetrics(metrics.getMeter("pipeline"));
 * m.consumed("pay", "events", 0);
 * m.processDuration("pay", "events", 12.5, "output");
 * ```
 *
 * @module
 */

import type {
  Attributes,
  Counter,
  Histogram,
  Meter,
  ObservableGauge,
  ObservableResult,
} from "@opentelemetry/api";
import type { LagSample, PipelineMetrics } from "../instrumentation.ts";
import {
  ATTR,
  LABEL,
  LATENCY_BUCKETS_MS,
  LATENCY_BUCKETS_S,
  METRIC,
  type MetricName,
} from "./names.ts";

export type { LagSample, PipelineMetrics, ProcessOutcome } from "../instrumentation.ts";
export { NOOP_PIPELINE_METRICS } from "../instrumentation.ts";

/** The bucket bounds advised for a histogram of `unit`, or `undefined` for the SDK default. */
export function bucketsFor(unit: string): number[] | undefined {
  if (unit === "ms") return [...LATENCY_BUCKETS_MS];
  if (unit === "s") return [...LATENCY_BUCKETS_S];
  return undefined;
}

const KAFKA = "kafka";

/**
 * Creates the runner's metrics on `meter`. {@linkcode setupTelemetry} does this for you.
 */
export function createPipelineMetrics(meter: Meter): PipelineMetrics {
  const counters = new Map<string, Counter>();
  const histograms = new Map<string, Histogram>();
  function counterOf(name: MetricName): Counter {
    let c = counters.get(name.otel);
    if (c === undefined) {
      c = meter.createCounter(name.otel, { description: name.description, unit: name.unit });
      counters.set(name.otel, c);
    }
    return c;
  }
  function histogramOf(name: MetricName): Histogram {
    let h = histograms.get(name.otel);
    if (h === undefined) {
      const buckets = bucketsFor(name.unit);
      h = meter.createHistogram(name.otel, {
        description: name.description,
        unit: name.unit,
        advice: buckets === undefined ? undefined : { explicitBucketBoundaries: buckets },
      });
      histograms.set(name.otel, h);
    }
    return h;
  }

  const consumedTotal = counterOf(METRIC.MESSAGES_CONSUMED);
  const consumedSemconv = counterOf(METRIC.MESSAGING_CONSUMED);
  const failedTotal = counterOf(METRIC.MESSAGES_FAILED);
  const dlqTotal = counterOf(METRIC.DLQ_MESSAGES);
  const retries = counterOf(METRIC.RETRIES);
  const duplicates = counterOf(METRIC.DUPLICATES_SKIPPED);
  const restarts = counterOf(METRIC.WORKER_RESTARTS);
  const sentSemconv = counterOf(METRIC.MESSAGING_SENT);
  const processDuration = histogramOf(METRIC.MESSAGING_PROCESS_DURATION);
  const operationDuration = histogramOf(METRIC.MESSAGING_OPERATION_DURATION);
  const e2e = histogramOf(METRIC.END_TO_END_LATENCY);
  const inFlight = meter.createUpDownCounter(METRIC.IN_FLIGHT.otel, {
    description: METRIC.IN_FLIGHT.description,
    unit: METRIC.IN_FLIGHT.unit,
  });

  const lagSources = new Set<() => readonly LagSample[]>();
  let lagGauge: ObservableGauge | undefined;
  function observeLagNow(result: ObservableResult): void {
    for (const source of lagSources) {
      for (const s of source()) {
        result.observe(s.lag, {
          [LABEL.TOPIC]: s.topic,
          [LABEL.PARTITION]: String(s.partition),
          [LABEL.GROUP]: s.group,
        });
      }
    }
  }

  return {
    consumed: function consumed(stage, topic, partition, group) {
      consumedTotal.add(1, {
        [LABEL.STAGE]: stage,
        [LABEL.TOPIC]: topic,
        [LABEL.PARTITION]: String(partition),
      });
      const attrs: Attributes = {
        [ATTR.MESSAGING_SYSTEM]: KAFKA,
        [ATTR.MESSAGING_DESTINATION_NAME]: topic,
        [ATTR.MESSAGING_DESTINATION_PARTITION_ID]: String(partition),
        [ATTR.MESSAGING_OPERATION_NAME]: "process",
      };
      if (group !== undefined) attrs[ATTR.MESSAGING_CONSUMER_GROUP_NAME] = group;
      consumedSemconv.add(1, attrs);
    },
    failed: function failed(stage, errorType) {
      failedTotal.add(1, { [LABEL.STAGE]: stage, [LABEL.ERROR_TYPE]: errorType });
    },
    deadLettered: function deadLettered(stage, errorType, topic) {
      dlqTotal.add(1, {
        [LABEL.STAGE]: stage,
        [LABEL.ERROR_TYPE]: errorType,
        [LABEL.TOPIC]: topic,
      });
    },
    retried: function retried(stage, tier) {
      retries.add(1, { [LABEL.STAGE]: stage, [LABEL.TIER]: String(tier) });
    },
    duplicateSkipped: function duplicateSkipped(stage) {
      duplicates.add(1, { [LABEL.STAGE]: stage });
    },
    processDuration: function recordProcessDuration(stage, topic, ms, outcome, stageHistogram) {
      processDuration.record(ms / 1000, {
        [ATTR.MESSAGING_SYSTEM]: KAFKA,
        [ATTR.MESSAGING_DESTINATION_NAME]: topic,
        [ATTR.MESSAGING_OPERATION_NAME]: "process",
        [LABEL.STAGE]: stage,
        [LABEL.OUTCOME]: outcome,
      });
      if (stageHistogram !== undefined) {
        histogramOf(stageHistogram).record(ms, { [LABEL.STAGE]: stage, [LABEL.OUTCOME]: outcome });
      }
    },
    sent: function sent(topic, count = 1, errorType) {
      const attrs: Attributes = {
        [ATTR.MESSAGING_SYSTEM]: KAFKA,
        [ATTR.MESSAGING_DESTINATION_NAME]: topic,
        [ATTR.MESSAGING_OPERATION_NAME]: "send",
      };
      if (errorType !== undefined) attrs[ATTR.ERROR_TYPE] = errorType;
      sentSemconv.add(count, attrs);
    },
    operationDuration: function recordOperationDuration(operation, topic, seconds, errorType) {
      const attrs: Attributes = {
        [ATTR.MESSAGING_SYSTEM]: KAFKA,
        [ATTR.MESSAGING_DESTINATION_NAME]: topic,
        [ATTR.MESSAGING_OPERATION_NAME]: operation,
      };
      if (errorType !== undefined) attrs[ATTR.ERROR_TYPE] = errorType;
      operationDuration.record(seconds, attrs);
    },
    inFlight: function recordInFlight(delta, stage) {
      inFlight.add(delta, stage === undefined ? undefined : { [LABEL.STAGE]: stage });
    },
    observeLag: function observeLag(fn) {
      if (lagGauge === undefined) {
        lagGauge = meter.createObservableGauge(METRIC.CONSUMER_LAG.otel, {
          description: METRIC.CONSUMER_LAG.description,
          unit: METRIC.CONSUMER_LAG.unit,
        });
        lagGauge.addCallback(observeLagNow);
      }
      lagSources.add(fn);
      return function unobserveLag() {
        lagSources.delete(fn);
      };
    },
    e2eLatency: function recordE2eLatency(stage, ms) {
      e2e.record(ms, { [LABEL.STAGE]: stage });
    },
    workerRestart: function workerRestart(stage) {
      restarts.add(1, { [LABEL.STAGE]: stage });
    },
    counter: counterOf,
    histogram: histogramOf,
  };
}
