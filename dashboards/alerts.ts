/**
 * Prometheus alert rules as code: the rules every pipeline gets from its definition
 * ({@linkcode pipelineAlertRules}: dead letters, growing lag, a stage that stopped consuming),
 * and the rendering of a rule group to the YAML file Prometheus loads. Every expression is
 * built from the names tables, and every rule has a `promtool test rules` unit test in
 * `tests/dashboards/alerts_test.yml` (run on the orders pipeline's rules file).
 *
 * @example
 * ```ts ignore
 * import { describePipeline } from "../pipeline/describe.ts";
 * import { pipelineAlertRules, renderAlertRules } from "./alerts.ts";
 * const rules = pipelineAlertRules(describePipeline(pipeline));
 * await Deno.writeTextFile("rules.yml", renderAlertRules("my-pipeline", rules));
 * ```
 *
 * @module
 */
import { stringify } from "yaml";
import type { PipelineDescription } from "../pipeline/describe.ts";
import { LABEL, MESSAGING_LABEL, METRIC } from "../pipeline/telemetry/names.ts";
import { maxBy, selector, sumBy, sumRate } from "./_promql.ts";

/** Where the runbooks live, relative to the repository root; each rule links its section. */
export const RUNBOOKS = "dashboards/runbooks.md";

/** Dead-lettered records per minute above which `PipelineDlqRateHigh` fires. */
export const DLQ_PER_MINUTE_MAX = 1;

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
  /** Labels the alert carries besides `severity` (e.g. the stage a per-stage rule is about). */
  readonly labels?: Readonly<Record<string, string>>;
  /** One line for the notification title (may use `$labels` and `$value` templates). */
  readonly summary: string;
  /** What is happening and what it means. */
  readonly description: string;
}

const BY_PARTITION = [LABEL.GROUP, LABEL.TOPIC, LABEL.PARTITION] as const;
const BY_TOPIC = [LABEL.GROUP, LABEL.TOPIC] as const;

/**
 * The rules every pipeline gets, each selecting only this pipeline's stages and groups:
 * `PipelineDlqRateHigh` (per stage), `PipelineConsumerLagGrowing` (per group and topic) and
 * one `PipelineStageStalled` per stage (its input is written, it consumes nothing).
 */
export function pipelineAlertRules(description: PipelineDescription): AlertRule[] {
  const stages = description.stages.map((s) => s.name);
  const groups = [...new Set(description.stages.map((s) => s.group))];
  // Total lag per group and topic; `max` per partition so a rebalance's overlap is not doubled.
  const lagPerTopic = sumBy(
    BY_TOPIC,
    maxBy(BY_PARTITION, selector(METRIC.CONSUMER_LAG.prom, { [LABEL.GROUP]: groups })),
  );
  return [
    {
      alert: "PipelineDlqRateHigh",
      expr: `${
        sumRate(METRIC.DLQ_MESSAGES, {
          window: "5m",
          by: [LABEL.STAGE],
          where: { [LABEL.STAGE]: stages },
        })
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
      // deriv() of a subquery with its own resolution: independent of the evaluation interval,
      // and the floor keeps a small lag that merely wobbles upwards from paging anyone.
      alert: "PipelineConsumerLagGrowing",
      expr: `(deriv((${lagPerTopic})[5m:30s]) > 0)\nand\n(${lagPerTopic} > ${LAG_FLOOR})`,
      for: "5m",
      severity: "warning",
      summary: "Lag of group {{ $labels.group }} on {{ $labels.topic }} keeps growing",
      description: `The consumer lag of group {{ $labels.group }} on topic {{ $labels.topic }} ` +
        `is above ${LAG_FLOOR} records and has been growing for 5 minutes: consumers fall ` +
        "behind producers. Check worker restarts, retries and processing latency.",
    },
    ...description.stages.map((stage): AlertRule => ({
      // `or vector(0)`: a stage that never started has no series at all, and is stalled too.
      alert: "PipelineStageStalled",
      expr: `(${
        sumRate(METRIC.MESSAGING_SENT, {
          window: "2m",
          where: { [MESSAGING_LABEL.DESTINATION]: stage.input },
        })
      } > 0)\nand\n((${
        sumRate(METRIC.MESSAGES_CONSUMED, { window: "2m", where: { [LABEL.STAGE]: stage.name } })
      } or vector(0)) == 0)`,
      for: "3m",
      severity: "critical",
      labels: { [LABEL.STAGE]: stage.name },
      summary: `Records arrive on ${stage.input} but stage ${stage.name} consumes nothing`,
      description: `Records were sent to ${stage.input} over the last 2 minutes but stage ` +
        `${stage.name} consumed none, for 3 minutes in a row: its workers are down, stuck or ` +
        "cannot reach the broker.",
    })),
  ];
}

/** One alert expression, ready to evaluate on Prometheus. */
export interface AlertExpression {
  /** The alert's name. */
  readonly alert: string;
  /** The PromQL condition. */
  readonly expr: string;
}

/** The alert and expression of each rule, in order. */
export function alertExpressions(rules: readonly AlertRule[]): AlertExpression[] {
  return rules.map(({ alert, expr }) => ({ alert, expr }));
}

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

/** The rule group name of a pipeline's rules. */
export function ruleGroupName(pipeline: string): string {
  return `${pipeline}-pipeline`;
}

/** A rules file of one group as data, keys in the order Prometheus' docs use. */
export function alertRulesFile(group: string, rules: readonly AlertRule[]): PrometheusRulesFile {
  return {
    groups: [{
      name: group,
      rules: rules.map((rule) => ({
        alert: rule.alert,
        expr: rule.expr,
        for: rule.for,
        labels: { severity: rule.severity, ...rule.labels },
        annotations: {
          summary: rule.summary,
          description: rule.description,
          runbook_url: runbookUrl(rule.alert),
        },
      })),
    }],
  };
}

/** Renders a rules file's YAML, deterministic, with a do-not-edit header and final newline. */
export function renderAlertRules(group: string, rules: readonly AlertRule[]): string {
  const header = "# Generated by dashboards/ (`deno task dashboards`). Do not edit.\n";
  return header + stringify(alertRulesFile(group, rules), { lineWidth: 0, indent: 2 });
}
