import assert from "node:assert/strict";
import {
  GRAFANA_DATASOURCE,
  NO_EXEMPLARS_NOTE,
  pipelineAlertRules,
  pipelineDashboard,
  pipelinePanels,
  ROW,
  SPAN_METRICS_EXEMPLARS_NOTE,
  stageRow,
  TOPOLOGY_PANEL,
  topologyFrames,
} from "../../dashboards/mod.ts";
import { panelQueries } from "../../dashboards/_panels.ts";
import { describePipeline } from "../../pipeline/describe.ts";
import { METRIC, SPAN_METRIC } from "../../pipeline/telemetry/names.ts";
import { DECLARED_LABELS, declaredSeries, promqlNames } from "./_promql_names.ts";
import { sensors } from "./_sensors_pipeline.ts";

const description = describePipeline(sensors);
const panels = pipelinePanels(description);
const queries = panelQueries(panels);

function panel(title: string) {
  const found = panels.find((p) => p.title === title);
  assert.ok(found, `no panel "${title}"`);
  return found;
}

Deno.test("each stage gets a row: throughput, latency, traces, retries, dead letters, lag", () => {
  const rows = [...new Set(panels.map((p) => p.row))];
  assert.deepEqual(rows, [
    ROW.TOPOLOGY,
    ROW.PIPELINE,
    stageRow("check-temperature"),
    stageRow("notify"),
    ROW.RUNTIME,
  ]);
  for (const stage of ["check-temperature", "notify"]) {
    assert.deepEqual(
      panels.filter((p) => p.row === stageRow(stage)).map((p) => p.title),
      [
        `${stage}: throughput`,
        `${stage}: processing latency`,
        `${stage}: latency from traces`,
        `${stage}: retries by tier`,
        `${stage}: dead letters by error type`,
        `${stage}: lag by partition`,
      ],
    );
  }
});

Deno.test("a stage's panels select that stage, its group and the framework's metric names", () => {
  const exprs = (title: string) => panel(title).queries.map((q) => q.expr);
  assert.deepEqual(exprs("check-temperature: retries by tier"), [
    `sum by (tier) (rate(${METRIC.RETRIES.prom}{stage="check-temperature"}[$__rate_interval]))`,
  ]);
  assert.deepEqual(exprs("notify: dead letters by error type"), [
    `sum by (error_type) (rate(${METRIC.DLQ_MESSAGES.prom}{stage="notify"}[$__rate_interval]))`,
  ]);
  assert.deepEqual(exprs("check-temperature: lag by partition"), [
    `max by (topic, partition) (${METRIC.CONSUMER_LAG.prom}{group="thermostat"})`,
  ]);
  assert.deepEqual(exprs("notify: lag by partition"), [
    `max by (topic, partition) (${METRIC.CONSUMER_LAG.prom}{group="notifier"})`,
  ]);
  const throughput = exprs("notify: throughput").join("\n");
  assert.ok(throughput.includes(`${METRIC.MESSAGES_CONSUMED.prom}{stage="notify"}`));
  assert.ok(throughput.includes(`${METRIC.MESSAGING_PROCESS_DURATION.prom}_count{stage="notify"}`));
  assert.match(panel("check-temperature: retries by tier").description, /1 to 2 are its retry/);
});

Deno.test("pipeline-wide panels select exactly this pipeline's stages and topics", () => {
  const [sent] = panel("Sent/s by topic").queries;
  assert.ok(
    sent.expr.includes(
      'messaging_destination_name=~"readings|alerts|sensors\\\\.dlq|readings\\\\.retry\\\\.1|readings\\\\.retry\\\\.2"',
    ),
    sent.expr,
  );
  const [consumed] = panel("Consumed/s by stage").queries;
  assert.ok(consumed.expr.includes('stage=~"check-temperature|notify"'), consumed.expr);
});

Deno.test("every generated query uses declared metric and label names only", () => {
  const series = declaredSeries();
  for (const query of queries) {
    const names = promqlNames(query.expr);
    assert.ok(names.metrics.length > 0, query.expr);
    for (const metric of names.metrics) assert.ok(series.has(metric), `${metric} in ${query.expr}`);
    for (const label of names.labels) {
      assert.ok(DECLARED_LABELS.has(label), `${label} in ${query.expr}`);
    }
  }
});

Deno.test("exemplars: span-metrics latency asks for them, the pipeline's own histograms say none", () => {
  const spanBuckets = `${SPAN_METRIC.LATENCY.prom}_bucket`;
  const own = new Set(Object.values(METRIC).map((m) => `${m.prom}_bucket`));
  for (const p of panels) {
    const metrics = p.queries.flatMap((q) => promqlNames(q.expr).metrics);
    if (metrics.includes(spanBuckets)) {
      assert.ok(p.description.includes(SPAN_METRICS_EXEMPLARS_NOTE), p.title);
      assert.ok(p.queries.every((q) => q.exemplar === true), `${p.title} asks no exemplars`);
      assert.ok(p.queries.every((q) => q.expr.includes('span_kind="SPAN_KIND_CONSUMER"')));
    }
    if (metrics.some((m) => own.has(m))) {
      assert.ok(p.description.includes(NO_EXEMPLARS_NOTE), `"${p.title}" must say: no exemplars`);
      assert.ok(p.queries.every((q) => q.exemplar !== true), `${p.title} asks exemplars`);
    }
  }
  assert.equal(
    panels.filter((p) => p.title.endsWith(": latency from traces")).length,
    description.stages.length,
  );
});

Deno.test("the node graph draws sources, topics, stages, retry tiers and dead letters", () => {
  const topology = panel(TOPOLOGY_PANEL);
  assert.equal(topology.kind, "nodegraph");
  assert.deepEqual(topology.frames, topologyFrames(description));
  const [nodes, edges] = topologyFrames(description);
  const column = (frame: typeof nodes, name: string) =>
    frame.data.values[frame.schema.fields.findIndex((f) => f.name === name)];
  for (const frame of [nodes, edges]) {
    for (const values of frame.data.values) {
      assert.equal(values.length, frame.data.values[0].length);
    }
  }
  assert.deepEqual(column(nodes, "id"), [
    "source:sensor-feed",
    "topic:readings",
    "topic:alerts",
    "topic:sensors.dlq",
    "topic:readings.retry.1",
    "topic:readings.retry.2",
    "stage:check-temperature",
    "stage:notify",
  ]);
  // Every node is in exactly one colour class: its arc__ fields add up to 1.
  const arcs = nodes.schema.fields.flatMap((f, i) =>
    f.name.startsWith("arc__") ? [nodes.data.values[i] as number[]] : []
  );
  for (let n = 0; n < column(nodes, "id").length; n++) {
    assert.equal(arcs.reduce((sum, arc) => sum + arc[n], 0), 1);
  }
  const edgeText = column(edges, "source").map((s, i) =>
    `${s} -> ${column(edges, "target")[i]}: ${column(edges, "mainstat")[i]}`
  );
  assert.deepEqual(edgeText, [
    "source:sensor-feed -> topic:readings: publishes",
    "topic:readings -> stage:check-temperature: consumed by",
    "stage:check-temperature -> topic:alerts: outputs",
    "stage:check-temperature -> topic:readings.retry.1: retry tier 1 after 1000 ms",
    "topic:readings.retry.1 -> stage:check-temperature: consumed by",
    "stage:check-temperature -> topic:readings.retry.2: retry tier 2 after 5000 ms",
    "topic:readings.retry.2 -> stage:check-temperature: consumed by",
    "stage:check-temperature -> topic:sensors.dlq: dead letters",
    "topic:alerts -> stage:notify: consumed by",
    "stage:notify -> topic:sensors.dlq: dead letters",
  ]);
});

Deno.test("the built dashboard: uid from the name, node graph on Grafana's datasource, tidy grid", () => {
  const model = pipelineDashboard(description);
  assert.equal(model.uid, "sensors-pipeline");
  assert.equal(model.title, 'Pipeline "sensors"');
  const built = (model.panels ?? []) as unknown as {
    type: string;
    title?: string;
    datasource?: unknown;
    gridPos: { x: number; y: number; w: number; h: number };
  }[];
  const graph = built.find((p) => p.type === "nodeGraph");
  assert.deepEqual(graph?.datasource, GRAFANA_DATASOURCE);
  const cells = new Set<string>();
  for (const { title, gridPos: { x, y, w, h } } of built) {
    assert.ok(x >= 0 && x + w <= 24, `${title} is off the grid`);
    for (let cx = x; cx < x + w; cx++) {
      for (let cy = y; cy < y + h; cy++) {
        assert.ok(!cells.has(`${cx},${cy}`), `${title} overlaps at ${cx},${cy}`);
        cells.add(`${cx},${cy}`);
      }
    }
  }
  assert.equal(built.filter((p) => p.type !== "row").length, panels.length);
});

Deno.test("alert rules select this pipeline's stages and groups; one stalled rule per stage", () => {
  const rules = pipelineAlertRules(description);
  assert.deepEqual(rules.map((r) => r.alert), [
    "PipelineDlqRateHigh",
    "PipelineConsumerLagGrowing",
    "PipelineStageStalled",
    "PipelineStageStalled",
  ]);
  assert.ok(rules[0].expr.includes('stage=~"check-temperature|notify"'), rules[0].expr);
  assert.ok(rules[1].expr.includes('group=~"thermostat|notifier"'), rules[1].expr);
  assert.deepEqual(rules.slice(2).map((r) => r.labels), [
    { stage: "check-temperature" },
    { stage: "notify" },
  ]);
  assert.ok(rules[2].expr.includes('messaging_destination_name="readings"'), rules[2].expr);
  assert.ok(rules[3].expr.includes('messaging_destination_name="alerts"'), rules[3].expr);
});
