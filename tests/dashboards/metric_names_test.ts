import assert from "node:assert/strict";
import { ALERT_EXPRESSIONS, PANEL_QUERIES } from "../../dashboards/mod.ts";
import { METRIC } from "../../pipeline/telemetry/names.ts";
import { ORDER_METRIC } from "../../stages/telemetry.ts";
import { DECLARED_LABELS, declaredSeries, KNOWN_FUNCTIONS, promqlNames } from "./_promql_names.ts";

const QUERIES = [
  ...PANEL_QUERIES.map((q) => ({ where: `panel "${q.panel}" ${q.refId}`, expr: q.expr })),
  ...ALERT_EXPRESSIONS.map((a) => ({ where: `alert "${a.alert}"`, expr: a.expr })),
];

Deno.test("promqlNames() tells metrics, labels and functions apart", () => {
  const names = promqlNames(
    'histogram_quantile(0.95, sum by (le, stage) (rate(x_bucket{topic="a b"}[$__rate_interval])))' +
      " > 1e3 and (sum(y_total offset 5m) or vector(0)) == 0",
  );
  assert.deepEqual(names.metrics, ["x_bucket", "y_total"]);
  assert.deepEqual(names.labels, ["le", "stage", "topic"]);
  assert.deepEqual(names.functions, ["histogram_quantile", "sum", "rate", "sum", "vector"]);
  assert.deepEqual(names.rangeArguments, [{ fn: "rate", metric: "x_bucket" }]);
});

Deno.test("every dashboard and alert query uses only metric names from the names tables", () => {
  const series = declaredSeries();
  for (const { where, expr } of QUERIES) {
    const { metrics } = promqlNames(expr);
    assert.ok(metrics.length > 0, `${where} reads no metric: ${expr}`);
    for (const metric of metrics) {
      assert.ok(series.has(metric), `${where} reads undeclared metric "${metric}": ${expr}`);
    }
  }
});

Deno.test("every query groups and matches only on declared labels", () => {
  for (const { where, expr } of QUERIES) {
    for (const label of promqlNames(expr).labels) {
      assert.ok(DECLARED_LABELS.has(label), `${where} uses undeclared label "${label}": ${expr}`);
    }
  }
});

Deno.test("every query calls only known PromQL functions", () => {
  for (const { where, expr } of QUERIES) {
    for (const fn of promqlNames(expr).functions) {
      assert.ok(KNOWN_FUNCTIONS.has(fn), `${where} calls unknown function "${fn}": ${expr}`);
    }
  }
});

Deno.test("rate() and increase() read only counters and histograms' buckets and counts", () => {
  const series = declaredSeries();
  for (const { where, expr } of QUERIES) {
    for (const { fn, metric } of promqlNames(expr).rangeArguments) {
      if (fn === "deriv") continue;
      const kind = series.get(metric);
      // A histogram's _bucket, _count and _sum series are counters too.
      const ok = kind === "counter" || kind === "histogram";
      assert.ok(ok, `${where} applies ${fn}() to ${kind} "${metric}": ${expr}`);
    }
  }
});

Deno.test("the dashboard shows every domain metric and the runtime's health metrics", () => {
  const used = new Set(PANEL_QUERIES.flatMap((q) => promqlNames(q.expr).metrics));
  const wanted = [
    ...Object.values(ORDER_METRIC),
    METRIC.MESSAGES_CONSUMED,
    METRIC.MESSAGES_FAILED,
    METRIC.DLQ_MESSAGES,
    METRIC.RETRIES,
    METRIC.WORKER_RESTARTS,
    METRIC.IN_FLIGHT,
    METRIC.CONSUMER_LAG,
    METRIC.END_TO_END_LATENCY,
  ];
  for (const metric of wanted) {
    const shown = used.has(metric.prom) || used.has(`${metric.prom}_bucket`);
    assert.ok(shown, `No panel shows "${metric.prom}"`);
  }
});
