/**
 * The pipeline's Prometheus alert rules as code, rendered to the rules file that Prometheus
 * loads (`infra/prometheus/rules/pipeline_alerts.yml`). Every expression is built from the
 * names tables, and every rule has a `promtool test rules` unit test in
 * `tests/dashboards/alerts_test.yml`.
 *
 * @example
 * ```ts
 * import { ALERT_EXPRESSIONS, renderAlertRules } from "./alerts.ts";
 * await Deno.writeTextFile("rules.yml", renderAlertRules());
 * for (const { alert, expr } of ALERT_EXPRESSIONS) console.log(alert, expr);
 * ```
 *
 * @module
 */
import { stringify } from "yaml";
import { LABEL, METRIC } from "../pipeline/telemetry/names.ts";
import { ORDER_METRIC } from "../stages/telemetry.ts";
import { maxBy, quantile, sumBy, sumRate } from "./_promql.ts";

/** Where the generated rules file lives, relative to the repository root. */
export const RULES_FILE = "infra/prometheus/rules/pipeline_alerts.yml";

/** The rule group's name. */
export const RULE_GROUP = "orders-pipeline";

/** Where the runbooks live, relative to the repository root; each rule links its section. */
export const RUNBOOKS = "dashboards/runbooks.md";

/** Dead-lettered records per minute above which `PipelineDlqRateHigh` fires. */
export const DLQ_PER_MINUTE_MAX = 1;

/** Processing p95 in milliseconds above which `PipelineProcessingP95High` fires. */
export const PROCESSING_P95_MS_MAX = 200;

/**
 * Lag (records, per group and topic) under which a growing lag is not worth waking anyone:
 * a busy healthy consumer's lag wobbles up and down by tens of records.
 */
export const LAG_FLOOR = 100;

/** One alerting rule. */
export interface AlertRule {
  /** The alert's name, CamelCase, prefixed `Pipeline`. */
  readonly alert: string;
  /** The PromQL condition; every result series is one firing alert. */
  readonly expr: string;
  /** How long the condition must hold before the alert fires (Prometheus duration). */
  readonly for: string;
  /** `warning` wants attention in working hours, `critical` now. */
  readonly severity: "warning" | "critical";
  /** One line for the notification title (may use `$labels` and `$value` templates). */
  readonly summary: string;
  /** What is happening and what it means. */
  readonly description: string;
}

const BY_PARTITION = [LABEL.GROUP, LABEL.TOPIC, LABEL.PARTITION] as const;
const BY_TOPIC = [LABEL.GROUP, LABEL.TOPIC] as const;

/** Total lag per group and topic; `max` per partition so a rebalance's overlap is not doubled. */
const LAG_PER_TOPIC = sumBy(BY_TOPIC, maxBy(BY_PARTITION, METRIC.CONSUMER_LAG.prom));

/** Every alerting rule, in file order. */
export const ALERT_RULES: readonly AlertRule[] = [
  {
    alert: "PipelineDlqRateHigh",
    expr: `${
      sumRate(METRIC.DLQ_MESSAGES, { window: "5m", by: [LABEL.STAGE] })
    } * 60 > ${DLQ_PER_MINUTE_MAX}`,
    for: "2m",
    severity: "warning",
    summary: "Stage {{ $labels.stage }} dead-letters {{ $value | humanize }} records/min",
    description:
      `More than ${DLQ_PER_MINUTE_MAX} record per minute went to the dead-letter queue ` +
      "over the last 5 minutes. Read the DLQ envelopes' error_reason to tell poison records " +
      "from a failing dependency, fix the cause, then replay.",
  },
  {
    alert: "PipelineProcessingP95High",
    expr: `${
      quantile(0.95, ORDER_METRIC.PAYMENT_PROCESSING_LATENCY, { window: "5m" })
    } > ${PROCESSING_P95_MS_MAX}`,
    for: "5m",
    severity: "warning",
    summary: "Payment processing p95 is {{ $value | humanize }} ms",
    description: `The 95th percentile of ${ORDER_METRIC.PAYMENT_PROCESSING_LATENCY.prom} ` +
      `stayed above ${PROCESSING_P95_MS_MAX} ms for 5 minutes. Find a slow order's trace in ` +
      "Tempo (service payment-service) to see whether the gateway or retries take the time.",
  },
  {
    // deriv() of a subquery with its own resolution: independent of the evaluation interval,
    // and the floor keeps a small lag that merely wobbles upwards from paging anyone.
    alert: "PipelineConsumerLagGrowing",
    expr: `(deriv((${LAG_PER_TOPIC})[5m:30s]) > 0)\nand\n(${LAG_PER_TOPIC} > ${LAG_FLOOR})`,
    for: "5m",
    severity: "warning",
    summary: "Lag of group {{ $labels.group }} on {{ $labels.topic }} keeps growing",
    description: `The consumer lag of group {{ $labels.group }} on topic {{ $labels.topic }} ` +
      `is above ${LAG_FLOOR} records and has been growing for 5 minutes: consumers fall ` +
      "behind producers. Check worker restarts, retries and processing latency.",
  },
  {
    // `or vector(0)`: a consumer that never started has no series at all, and is stalled too.
    alert: "PipelineStalled",
    expr: `(${sumRate(ORDER_METRIC.ORDERS_PUBLISHED, { window: "2m" })} > 0)\nand\n(` +
      `(${sumRate(METRIC.MESSAGES_CONSUMED, { window: "2m" })} or vector(0)) == 0)`,
    for: "3m",
    severity: "critical",
    summary: "Orders arrive but nothing is consumed",
    description: "Orders were published over the last 2 minutes but no record was consumed, " +
      "for 3 minutes in a row: the consumers are down, stuck or cannot reach the broker.",
  },
];

/** One alert expression, ready to evaluate on Prometheus. */
export interface AlertExpression {
  /** The alert's name. */
  readonly alert: string;
  /** The PromQL condition. */
  readonly expr: string;
}

/** Every alert's expression, in file order. */
export const ALERT_EXPRESSIONS: readonly AlertExpression[] = ALERT_RULES.map((
  { alert, expr },
) => ({ alert, expr }));

/** The anchor of a rule's runbook section in {@linkcode RUNBOOKS}. */
export function runbookUrl(alert: string): string {
  return `${RUNBOOKS}#${alert.toLowerCase()}`;
}

/** A Prometheus rules file, as its YAML holds it. */
export interface PrometheusRulesFile {
  /** The rule groups. */
  groups: {
    name: string;
    rules: {
      alert: string;
      expr: string;
      for: string;
      labels: Record<string, string>;
      annotations: Record<string, string>;
    }[];
  }[];
}

/** The rules file as data, keys in the order Prometheus' docs use. */
export function alertRulesFile(): PrometheusRulesFile {
  return {
    groups: [{
      name: RULE_GROUP,
      rules: ALERT_RULES.map((rule) => ({
        alert: rule.alert,
        expr: rule.expr,
        for: rule.for,
        labels: { severity: rule.severity },
        annotations: {
          summary: rule.summary,
          description: rule.description,
          runbook_url: runbookUrl(rule.alert),
        },
      })),
    }],
  };
}

/** Renders the rules file's YAML, deterministic, with a do-not-edit header and final newline. */
export function renderAlertRules(): string {
  const header = "# Generated by dashboards/alerts.ts (`deno task dashboards`). Do not edit.\n";
  return header + stringify(alertRulesFile(), { lineWidth: 0, indent: 2 });
}
