/**
 * End-to-end metrics: the real pipeline command exports OTLP metrics every second to the
 * Collector built from Go modules (the stack's `prometheus` exporter settings), which Debian's
 * Prometheus scrapes (the stack's relabelling) with the generated alert rules loaded. Then every
 * dashboard query and every alert expression is evaluated by that Prometheus.
 *
 * Ignored with the reason on a machine without the Collector or Prometheus; failed under CI.
 */

import assert from "node:assert/strict";
import { ALERT_EXPRESSIONS, PANEL_QUERIES, RULE_GROUP, RULES_FILE } from "../../dashboards/mod.ts";
import { METRIC, type MetricName, SPAN_METRIC } from "../../pipeline/telemetry/names.ts";
import { PROCESS_PAYMENT } from "../../stages/process_payment.ts";
import { ORDER_METRIC, SERVICE } from "../../stages/telemetry.ts";
import {
  pollUntil,
  type PromSample,
  queryPrometheus,
  startCollector,
  startPrometheus,
} from "../_observability.ts";
import { OTELCOL_TOOL, PROMETHEUS_TOOL, runPipeline, toolTest } from "./_e2e.ts";

const RULES_PATH = new URL(`../../${RULES_FILE}`, import.meta.url).pathname;

/**
 * 15 s at 40 orders/s with half the gateway calls failing: orders are paid, retried and
 * dead-lettered while metrics are exported every second and scraped every second.
 */
const PIPELINE_ARGS = [
  "--rate",
  "40",
  "--duration",
  "15",
  "--failure-rate",
  "0.5",
  "--gateway-latency-ms",
  "2",
  "--seed",
  "2",
  "--drain-timeout",
  "30",
];

/**
 * Metrics this run cannot produce, each with the reason. A panel query over one of them may
 * come back empty (it must still evaluate); any other panel query must return data. Worker
 * restarts start at 0 for every stage, so a healthy run shows 0, not "no data".
 */
const NOT_PRODUCED: ReadonlyMap<string, string> = new Map([
  [
    `${SPAN_METRIC.LATENCY.prom}_bucket`,
    "Tempo's metrics generator writes span metrics; Tempo cannot run here (no container " +
    "registry, AGPL sources not built here)",
  ],
]);

/** The reference services' metric names, as Prometheus must show them. */
const REFERENCE_SERIES = [
  "orders_published_total",
  "orders_failed_total",
  "order_publish_latency_ms_bucket",
  "messages_consumed_total",
  "payment_processing_latency_ms_bucket",
  "messages_failed_total",
  "dlq_messages_total",
] as const;

await toolTest(
  "pipeline metrics in Prometheus answer every dashboard query and alert expression",
  [OTELCOL_TOOL, PROMETHEUS_TOOL],
  async () => {
    await using collector = await startCollector();
    await using prometheus = await startPrometheus({
      scrapeTarget: collector.scrapeTarget,
      ruleFiles: [RULES_PATH],
    });
    const query = (promql: string) => queryPrometheus(prometheus.url, promql);

    const run = await runPipeline(PIPELINE_ARGS, {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_METRIC_EXPORT_INTERVAL: "1000",
        OTEL_TRACES_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
      },
      timeoutMs: 75_000,
    });
    assert.equal(run.code, 0, `pipeline failed:\n${run.stderr}`);
    const summary = run.summary;
    assert.ok(summary !== undefined, `no summary line:\n${run.stdout}`);
    assert.ok(summary.generated > 100, `too few orders: ${JSON.stringify(summary)}`);
    assert.ok(summary.dead_lettered > 0, `nothing dead-lettered: ${JSON.stringify(summary)}`);
    assert.ok(summary.retries > 0, `nothing retried: ${JSON.stringify(summary)}`);

    // The final export (at shutdown) has been scraped once the counters match the summary.
    const total = async (metric: MetricName) => (await query(`sum(${metric.prom})`))[0]?.value ?? 0;
    await pollUntil(async () =>
      await total(ORDER_METRIC.ORDERS_PUBLISHED) === summary.published &&
        await total(METRIC.MESSAGES_CONSUMED) === summary.generated &&
        await total(METRIC.DLQ_MESSAGES) === summary.dead_lettered &&
        await total(METRIC.RETRIES) === summary.retries ||
      undefined, {
      timeoutMs: 20_000,
      intervalMs: 500,
      description: `final counters of ${JSON.stringify(summary)} in Prometheus`,
    }).catch(async (error) => {
      const seen = await Promise.all(
        [
          ORDER_METRIC.ORDERS_PUBLISHED,
          METRIC.MESSAGES_CONSUMED,
          METRIC.DLQ_MESSAGES,
          METRIC.RETRIES,
        ]
          .map(async (m) => `${m.prom}=${await total(m)}`),
      );
      throw new Error(`${error.message}: Prometheus has ${seen.join(", ")}`, { cause: error });
    });

    const names = new Set(await seriesNames(prometheus.url));

    // The reference's names, exactly; the ones this run cannot produce are at least declared.
    const declared = new Set(
      [...Object.values(METRIC), ...Object.values(ORDER_METRIC)].flatMap((m) => [
        m.prom,
        `${m.prom}_bucket`,
      ]),
    );
    for (const name of REFERENCE_SERIES) {
      if (NOT_PRODUCED.has(name) && !names.has(name)) {
        assert.ok(declared.has(name), `"${name}" is not declared in the names tables`);
        continue;
      }
      assert.ok(names.has(name), `series "${name}" missing from Prometheus`);
    }

    // No publish failed on the embedded transport: the counter is there, at 0.
    assert.equal(await total(ORDER_METRIC.ORDERS_FAILED), 0);
    const [dlqOne] = await query(`sum(${METRIC.DLQ_MESSAGES.prom}) by (stage, job)`);
    assert.deepEqual(dlqOne?.metric, { stage: PROCESS_PAYMENT, job: SERVICE.ORDER });
    const lag = await query(METRIC.CONSUMER_LAG.prom);
    assert.ok(lag.length > 0, "no consumer lag series");
    for (const { metric } of lag) {
      assert.equal(metric.group, "payment-service");
      assert.match(metric.partition ?? "", /^\d+$/);
      assert.ok(metric.topic !== undefined);
    }

    // Every dashboard query evaluates; all but those over unproduced metrics return data.
    const empty: string[] = [];
    for (const panelQuery of PANEL_QUERIES) {
      const label = `panel "${panelQuery.panel}" ${panelQuery.refId}: ${panelQuery.promql}`;
      let rows: PromSample[];
      try {
        rows = await query(panelQuery.promql);
      } catch (error) {
        assert.fail(`${label} does not evaluate: ${(error as Error).message}`);
      }
      if (rows.length > 0) continue;
      const excused = [...NOT_PRODUCED.keys()].find((name) => panelQuery.promql.includes(name));
      if (excused === undefined) empty.push(label);
      else {
        console.log(`no data, as expected: ${label}: ${NOT_PRODUCED.get(excused)}`);
      }
    }
    assert.deepEqual(empty, [], "dashboard queries without data");

    // Every alert expression evaluates (an alert that does not fire is an empty result).
    for (const { alert, expr } of ALERT_EXPRESSIONS) {
      await query(expr).catch((error) => assert.fail(`alert "${alert}": ${error.message}`));
    }
    // And Prometheus itself evaluates the generated rules file without errors.
    const rules = await pollUntil(async () => {
      const groups = await ruleGroups(prometheus.url);
      const group = groups.find((g) => g.name === RULE_GROUP);
      return group !== undefined && group.rules.every((r) => r.lastEvaluation > "1971")
        ? group.rules
        : undefined;
    }, { timeoutMs: 10_000, description: `rule group "${RULE_GROUP}" evaluated` });
    assert.deepEqual(
      rules.map((r) => r.name).sort(),
      ALERT_EXPRESSIONS.map((a) => a.alert).sort(),
    );
    for (const rule of rules) {
      assert.equal(rule.health, "ok", `rule "${rule.name}": ${rule.lastError ?? ""}`);
    }
  },
);

async function seriesNames(url: string): Promise<string[]> {
  const response = await fetch(`${url}/api/v1/label/__name__/values`);
  const body = await response.json() as { status: string; data: string[] };
  assert.equal(body.status, "success");
  return body.data;
}

interface RuleState {
  name: string;
  health: string;
  lastError?: string;
  lastEvaluation: string;
}

async function ruleGroups(url: string): Promise<Array<{ name: string; rules: RuleState[] }>> {
  const response = await fetch(`${url}/api/v1/rules`);
  const body = await response.json() as {
    status: string;
    data: { groups: Array<{ name: string; rules: RuleState[] }> };
  };
  assert.equal(body.status, "success");
  return body.data.groups;
}
