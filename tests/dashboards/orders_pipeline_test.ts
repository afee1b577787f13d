import assert from "node:assert/strict";
import {
  DASHBOARD_UID,
  DATASOURCE_VARIABLE,
  GRAFANA_DATASOURCE,
  NO_EXEMPLARS_NOTE,
  ordersPipelineDashboard,
  PANEL_QUERIES,
  PANELS,
  PROMETHEUS_DATASOURCE_UID,
  SPAN_METRICS_EXEMPLARS_NOTE,
  toPromql,
} from "../../dashboards/mod.ts";
import { METRIC, SPAN_METRIC } from "../../pipeline/telemetry/names.ts";
import { ORDER_METRIC } from "../../stages/telemetry.ts";
import { promqlNames } from "./_promql_names.ts";

/** A panel of the built model, as far as these tests look at it. */
interface BuiltPanel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: {
    refId?: string;
    expr?: string;
    legendFormat?: string;
    exemplar?: boolean;
    datasource?: { type?: string; uid?: string };
  }[];
  options?: { legend?: { showLegend?: boolean; displayMode?: string } };
  fieldConfig?: { defaults?: { unit?: string } };
  description?: string;
}

const model = ordersPipelineDashboard();
const panels = (model.panels ?? []) as unknown as BuiltPanel[];
const dataPanels = panels.filter((p) => p.type !== "row");
/** The panels that query Prometheus: all but the topology's node graph. */
const promPanels = dataPanels.filter((p) => p.type !== "nodeGraph");
const VARIABLE_REF = `\${${DATASOURCE_VARIABLE}}`;

Deno.test("the dashboard keeps its uid and title", () => {
  assert.equal(model.uid, DASHBOARD_UID);
  assert.equal(model.uid, "orders-pipeline");
  assert.equal(model.title, "Orders pipeline");
});

Deno.test("the dashboard has a Prometheus datasource variable defaulting to the provisioned uid", () => {
  const variables = model.templating?.list ?? [];
  const variable = variables.find((v) => v.name === DATASOURCE_VARIABLE);
  assert.ok(variable, `No variable "${DATASOURCE_VARIABLE}"`);
  assert.equal(variable.type, "datasource");
  assert.equal(variable.query, "prometheus");
  assert.equal(variable.current?.value, PROMETHEUS_DATASOURCE_UID);
});

Deno.test("every Prometheus panel and target queries through the datasource variable", () => {
  assert.equal(dataPanels.length, PANELS.length);
  assert.equal(promPanels.length, dataPanels.length - 1, "one node graph");
  for (const panel of promPanels) {
    assert.deepEqual(panel.datasource, { type: "prometheus", uid: VARIABLE_REF }, panel.title);
    assert.ok((panel.targets ?? []).length > 0, `Panel "${panel.title}" has no target`);
    for (const target of panel.targets ?? []) {
      assert.deepEqual(target.datasource, { type: "prometheus", uid: VARIABLE_REF }, panel.title);
    }
  }
});

Deno.test("every target has a refId unique in its panel, an expression and a legend", () => {
  for (const panel of promPanels) {
    const refIds = (panel.targets ?? []).map((t) => t.refId);
    for (const refId of refIds) assert.match(refId ?? "", /^[A-Z]$/, `${panel.title}`);
    assert.equal(new Set(refIds).size, refIds.length, `Duplicate refId in "${panel.title}"`);
    for (const target of panel.targets ?? []) {
      assert.ok(target.expr, `Empty expression in "${panel.title}"`);
      assert.ok(target.legendFormat, `No legend format in "${panel.title}" ${target.refId}`);
    }
  }
});

Deno.test("every time series panel shows its legend", () => {
  const graphs = promPanels.filter((p) => p.type === "timeseries");
  assert.ok(graphs.length >= 8);
  for (const panel of graphs) {
    assert.equal(panel.options?.legend?.showLegend, true, `Legend hidden in "${panel.title}"`);
    assert.notEqual(panel.options?.legend?.displayMode, "hidden", `${panel.title}`);
  }
});

Deno.test("span-metrics latency panels ask for exemplars, which open the trace in Tempo", () => {
  const fromTraces = promPanels.filter((p) =>
    (p.targets ?? []).some((t) => t.expr?.includes(`${SPAN_METRIC.LATENCY.prom}_bucket`))
  );
  assert.ok(fromTraces.length >= 1, "no panel over Tempo's span metrics");
  for (const panel of fromTraces) {
    assert.equal(panel.fieldConfig?.defaults?.unit, "s", `${panel.title}`);
    assert.ok(panel.description?.includes(SPAN_METRICS_EXEMPLARS_NOTE), `${panel.title}`);
    for (const target of panel.targets ?? []) {
      assert.equal(target.exemplar, true, `No exemplars in "${panel.title}" ${target.refId}`);
    }
  }
});

Deno.test("panels over the pipeline's own histograms say they carry no exemplars, and ask none", () => {
  const own = new Set(
    [...Object.values(METRIC), ...Object.values(ORDER_METRIC)].map((m) => `${m.prom}_bucket`),
  );
  const graphs = promPanels.filter((p) =>
    (p.targets ?? []).some((t) => promqlNames(t.expr ?? "").metrics.some((m) => own.has(m)))
  );
  assert.ok(graphs.length >= 5, `only ${graphs.map((p) => p.title)}`);
  for (const panel of graphs) {
    assert.ok(panel.description?.includes(NO_EXEMPLARS_NOTE), `"${panel.title}" says nothing`);
    for (const target of panel.targets ?? []) {
      assert.notEqual(target.exemplar, true, `"${panel.title}" ${target.refId} asks exemplars`);
    }
  }
});

Deno.test("the topology node graph reads nodes and edges frames from Grafana's own datasource", () => {
  const graph = dataPanels.find((p) => p.type === "nodeGraph");
  assert.ok(graph, "no node graph");
  assert.deepEqual(graph.datasource, GRAFANA_DATASOURCE);
  const [target] = graph.targets as unknown as {
    queryType: string;
    datasource: unknown;
    snapshot: {
      schema: { name: string; fields: { name: string }[] };
      data: { values: unknown[][] };
    }[];
  }[];
  assert.equal(target.queryType, "snapshot");
  assert.deepEqual(target.datasource, GRAFANA_DATASOURCE);
  const [nodes, edges] = target.snapshot;
  assert.equal(nodes.schema.name, "nodes");
  assert.equal(edges.schema.name, "edges");
  const column = (frame: typeof nodes, name: string) =>
    frame.data.values[frame.schema.fields.findIndex((f) => f.name === name)] as string[];
  assert.deepEqual(column(nodes, "title"), [
    "publish-order",
    "orders",
    "payments",
    "orders.dlq",
    "orders.retry.1",
    "orders.retry.2",
    "payment-service-process-payment-changelog",
    "process-payment",
  ]);
  const ids = new Set(column(nodes, "id"));
  const sources = column(edges, "source");
  const targets = column(edges, "target");
  for (const id of [...sources, ...targets]) assert.ok(ids.has(id), `edge to unknown node ${id}`);
  assert.deepEqual(sources.map((s, i) => `${s} -> ${targets[i]}`), [
    "source:publish-order -> topic:orders",
    "topic:orders -> stage:process-payment",
    "stage:process-payment -> topic:payments",
    "stage:process-payment -> topic:orders.retry.1",
    "topic:orders.retry.1 -> stage:process-payment",
    "stage:process-payment -> topic:orders.retry.2",
    "topic:orders.retry.2 -> stage:process-payment",
    "stage:process-payment -> topic:orders.dlq",
    "stage:process-payment -> topic:payment-service-process-payment-changelog",
  ]);
});

Deno.test("the dashboard has the panels the operators asked for", () => {
  const titles = dataPanels.map((p) => p.title);
  for (
    const wanted of [
      "Orders published/s",
      "Publish failures/s",
      "Publish p95 latency",
      "Processing p95",
      "Payment failures/s",
      "Orders dead-lettered/s",
      "Published vs paid",
      "Publish and processing p95",
      "Topology",
      "Consumed/s by stage",
      "Sent/s by topic",
      "Dead letters/s by stage",
      "process-payment: throughput",
      "process-payment: processing latency",
      "process-payment: latency from traces",
      "process-payment: retries by tier",
      "process-payment: dead letters by error type",
      "process-payment: lag by partition",
      "End-to-end latency",
      "Worker restarts",
      "Records in flight",
    ]
  ) {
    assert.ok(titles.includes(wanted), `No panel "${wanted}"`);
  }
  assert.equal(new Set(titles).size, titles.length, "Duplicate panel titles");
});

Deno.test("panels have unique ids and fit the 24-column grid without overlapping", () => {
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length);
  const cells = new Set<string>();
  for (const panel of panels) {
    const { x, y, w, h } = panel.gridPos ?? { x: -1, y: -1, w: 0, h: 0 };
    assert.ok(x >= 0 && w > 0 && x + w <= 24, `Panel "${panel.title}" is off the grid`);
    for (let cx = x; cx < x + w; cx++) {
      for (let cy = y; cy < y + h; cy++) {
        const cell = `${cx},${cy}`;
        assert.ok(!cells.has(cell), `Panel "${panel.title}" overlaps another at ${cell}`);
        cells.add(cell);
      }
    }
  }
});

Deno.test("PANEL_QUERIES lists exactly the dashboard's Prometheus targets", () => {
  const fromModel = promPanels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr }))
  );
  assert.deepEqual(
    PANEL_QUERIES.map(({ panel, refId, expr }) => ({ panel, refId, expr })),
    fromModel,
  );
  for (const query of PANEL_QUERIES) {
    assert.equal(query.promql, toPromql(query.expr));
    assert.ok(!query.promql.includes("$"), `Grafana macro left in ${query.promql}`);
  }
});
