import assert from "node:assert/strict";
import {
  DASHBOARD_UID,
  DATASOURCE_VARIABLE,
  ordersPipelineDashboard,
  PANEL_QUERIES,
  PANELS,
  PROMETHEUS_DATASOURCE_UID,
  toPromql,
} from "../../dashboards/mod.ts";

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
}

const model = ordersPipelineDashboard();
const panels = (model.panels ?? []) as unknown as BuiltPanel[];
const dataPanels = panels.filter((p) => p.type !== "row");
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

Deno.test("every panel and every target queries through the datasource variable", () => {
  assert.equal(dataPanels.length, PANELS.length);
  for (const panel of dataPanels) {
    assert.deepEqual(panel.datasource, { type: "prometheus", uid: VARIABLE_REF }, panel.title);
    assert.ok((panel.targets ?? []).length > 0, `Panel "${panel.title}" has no target`);
    for (const target of panel.targets ?? []) {
      assert.deepEqual(target.datasource, { type: "prometheus", uid: VARIABLE_REF }, panel.title);
    }
  }
});

Deno.test("every target has a refId unique in its panel, an expression and a legend", () => {
  for (const panel of dataPanels) {
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
  const graphs = dataPanels.filter((p) => p.type === "timeseries");
  assert.ok(graphs.length >= 8);
  for (const panel of graphs) {
    assert.equal(panel.options?.legend?.showLegend, true, `Legend hidden in "${panel.title}"`);
    assert.notEqual(panel.options?.legend?.displayMode, "hidden", `${panel.title}`);
  }
});

Deno.test("latency graphs ask for exemplars so points link to traces", () => {
  const latency = dataPanels.filter((p) =>
    p.type === "timeseries" && /latency|p95/i.test(p.title ?? "")
  );
  assert.ok(latency.length >= 2);
  for (const panel of latency) {
    assert.equal(panel.fieldConfig?.defaults?.unit, "ms", `${panel.title}`);
    for (const target of panel.targets ?? []) {
      assert.equal(target.exemplar, true, `No exemplars in "${panel.title}" ${target.refId}`);
    }
  }
});

Deno.test("the dashboard has the panels the operators asked for", () => {
  const titles = dataPanels.map((p) => p.title);
  for (
    const wanted of [
      "Orders published/s",
      "Publish failures/s",
      "Publish p95 latency",
      "Consumed/s",
      "Processing p95",
      "Payment failures/s",
      "DLQ/s",
      "Published vs consumed",
      "DLQ and failures over time",
      "Consumer lag per partition",
      "Retries per tier",
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

Deno.test("PANEL_QUERIES lists exactly the dashboard's targets", () => {
  const fromModel = dataPanels.flatMap((p) =>
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
