/**
 * Panels as data, and the one place that turns them into Grafana's JSON model with the Grafana
 * Foundation SDK. Every dashboard of this folder (the generated pipeline dashboards and the
 * orders dashboard's business panels) is a list of {@linkcode PanelSpec}s built here.
 *
 * @module
 */
import * as common from "@grafana/grafana-foundation-sdk/common";
import type * as cog from "@grafana/grafana-foundation-sdk/cog";
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import * as nodegraph from "@grafana/grafana-foundation-sdk/nodegraph";
import * as prometheus from "@grafana/grafana-foundation-sdk/prometheus";
import * as stat from "@grafana/grafana-foundation-sdk/stat";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";
import { toPromql } from "./_promql.ts";

/** The name of the datasource variable every Prometheus panel queries through. */
export const DATASOURCE_VARIABLE = "datasource";

/** The provisioned Prometheus datasource's uid, the variable's default. */
export const PROMETHEUS_DATASOURCE_UID = "prometheus";

/** The provisioned Tempo datasource's uid, where exemplars' trace ids lead. */
export const TEMPO_DATASOURCE_UID = "tempo";

/** Every Prometheus panel's datasource, chosen by the `datasource` variable. */
export const PANEL_DATASOURCE: { readonly type: "prometheus"; readonly uid: string } = {
  type: "prometheus",
  uid: `\${${DATASOURCE_VARIABLE}}`,
};

/**
 * Grafana's built-in datasource (`-- Grafana --`, always there, nothing to provision or
 * install), referred to as Grafana's own support snapshots do: its `snapshot` query type
 * returns the data frames stored in the query itself.
 */
export const GRAFANA_DATASOURCE: { readonly type: "grafana"; readonly uid: "grafana" } = {
  type: "grafana",
  uid: "grafana",
};

/**
 * What a panel over the pipeline's own histograms says about exemplars, plainly: there are
 * none, and where to go instead.
 */
export const NO_EXEMPLARS_NOTE =
  "No exemplars: the OpenTelemetry JS SDK records none on the pipeline's own histograms, so " +
  "these points do not link to traces; the span-metrics panels (from traces) do.";

/** What a span-metrics panel says about its exemplars. */
export const SPAN_METRICS_EXEMPLARS_NOTE =
  "From Tempo's span metrics: each exemplar (a dot on the graph) is a real span; click it to " +
  "open its trace in Tempo.";

/** One Prometheus query of a panel. */
export interface QuerySpec {
  /** The query's refId, unique within its panel. */
  readonly refId: string;
  /** The PromQL expression, possibly with Grafana macros such as `$__rate_interval`. */
  readonly expr: string;
  /** The series' legend, Grafana's `{{label}}` template. */
  readonly legend: string;
  /** Whether to fetch exemplars (trace ids on latency points). */
  readonly exemplar?: boolean;
}

/** One field of a data frame, as Grafana's `DataFrameJSON` schema holds it. */
export interface FrameField {
  /** The field's name; the node graph reads `id`, `title`, `source`, `target`, `arc__*`... */
  readonly name: string;
  /** `string` or `number`. */
  readonly type: "string" | "number";
  /** Display settings (a display name, a fixed colour). */
  readonly config?: Readonly<Record<string, unknown>>;
}

/** A data frame in Grafana's JSON form (`DataFrameJSON`): a schema and column values. */
export interface DataFrameJson {
  /** The frame's name and fields. */
  readonly schema: {
    readonly name: string;
    readonly meta?: Readonly<Record<string, unknown>>;
    readonly fields: readonly FrameField[];
  };
  /** One array of values per field, in field order. */
  readonly data: { readonly values: readonly (readonly (string | number)[])[] };
}

/** One panel, as data. */
export interface PanelSpec {
  /** The panel's title, unique in the dashboard. */
  readonly title: string;
  /** The row the panel sits in. */
  readonly row: string;
  /**
   * `stat` for a big number, `timeseries` for a graph, `nodegraph` for a topology drawn from
   * {@linkcode PanelSpec.frames}.
   */
  readonly kind: "stat" | "timeseries" | "nodegraph";
  /** Grafana's unit id (`ops`, `ms`, `s`, `short`, ...). */
  readonly unit: string;
  /** What the panel shows, in a sentence or two. */
  readonly description: string;
  /** The panel's width on Grafana's 24-column grid. */
  readonly width: number;
  /**
   * The panel's height in grid rows.
   * @default {4 for stat, 8 for timeseries, 12 for nodegraph}
   */
  readonly height?: number;
  /** The panel's Prometheus queries (none for a node graph). */
  readonly queries: readonly QuerySpec[];
  /** Draw bars instead of lines (counts per interval). */
  readonly bars?: boolean;
  /** The static data frames of a node graph (`nodes` and `edges`). */
  readonly frames?: readonly DataFrameJson[];
}

/** One dashboard query, ready to evaluate. */
export interface PanelQuery {
  /** The panel's title. */
  readonly panel: string;
  /** The query's refId in its panel. */
  readonly refId: string;
  /** The expression as Grafana sends it (with macros such as `$__rate_interval`). */
  readonly expr: string;
  /** The same expression with Grafana's macros replaced, for Prometheus' own API. */
  readonly promql: string;
  /** Whether the panel asks for exemplars with it. */
  readonly exemplar: boolean;
}

/** A query spec, its exemplar flag left out unless set. */
export function q(refId: string, expr: string, legend: string, exemplar?: boolean): QuerySpec {
  return exemplar ? { refId, expr, legend, exemplar } : { refId, expr, legend };
}

/** Every Prometheus query of `panels`, in panel order. */
export function panelQueries(panels: readonly PanelSpec[]): PanelQuery[] {
  return panels.flatMap((panel) =>
    panel.queries.map(({ refId, expr, exemplar }) => ({
      panel: panel.title,
      refId,
      expr,
      promql: toPromql(expr),
      exemplar: exemplar === true,
    }))
  );
}

function target(spec: QuerySpec): prometheus.DataqueryBuilder {
  const builder = new prometheus.DataqueryBuilder()
    .datasource(PANEL_DATASOURCE)
    .refId(spec.refId)
    .expr(spec.expr)
    .legendFormat(spec.legend)
    .range();
  return spec.exemplar ? builder.exemplar(true) : builder;
}

function statPanel(spec: PanelSpec, id: number): stat.PanelBuilder {
  const panel = new stat.PanelBuilder()
    .id(id)
    .title(spec.title)
    .description(spec.description)
    .datasource(PANEL_DATASOURCE)
    .unit(spec.unit)
    .span(spec.width)
    .height(spec.height ?? 4)
    .graphMode(common.BigValueGraphMode.Area)
    .colorMode(common.BigValueColorMode.Value)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(["lastNotNull"]).values(false));
  for (const query of spec.queries) panel.withTarget(target(query));
  return panel;
}

function timeseriesPanel(spec: PanelSpec, id: number): timeseries.PanelBuilder {
  const panel = new timeseries.PanelBuilder()
    .id(id)
    .title(spec.title)
    .description(spec.description)
    .datasource(PANEL_DATASOURCE)
    .unit(spec.unit)
    .span(spec.width)
    .height(spec.height ?? 8)
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.Table)
        .placement(common.LegendPlacement.Bottom)
        .calcs(["mean", "max", "lastNotNull"]),
    )
    .tooltip(
      new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(
        common.SortOrder.Descending,
      ),
    )
    .fillOpacity(10)
    .drawStyle(spec.bars ? common.GraphDrawStyle.Bars : common.GraphDrawStyle.Line);
  for (const query of spec.queries) panel.withTarget(target(query));
  return panel;
}

/** The `-- Grafana --` datasource's snapshot query: the frames travel inside the dashboard. */
interface SnapshotQuery extends cog.Dataquery {
  readonly refId: string;
  readonly datasource: typeof GRAFANA_DATASOURCE;
  readonly queryType: "snapshot";
  readonly snapshot: readonly DataFrameJson[];
}

function snapshotTarget(frames: readonly DataFrameJson[]): cog.Builder<cog.Dataquery> {
  return {
    build: function buildSnapshotQuery(): SnapshotQuery {
      return {
        refId: "A",
        datasource: GRAFANA_DATASOURCE,
        queryType: "snapshot",
        snapshot: frames,
        // The SDK's marker of a query type; a method, so JSON.stringify leaves it out.
        _implementsDataqueryVariant() {},
      };
    },
  };
}

function nodegraphPanel(spec: PanelSpec, id: number): nodegraph.PanelBuilder {
  return new nodegraph.PanelBuilder()
    .id(id)
    .title(spec.title)
    .description(spec.description)
    .datasource(GRAFANA_DATASOURCE)
    .span(spec.width)
    .height(spec.height ?? 12)
    .withTarget(snapshotTarget(spec.frames ?? []));
}

/** What a dashboard is besides its panels. */
export interface DashboardSpec {
  /** The stable uid, so links and provisioning survive regeneration. */
  readonly uid: string;
  /** The title. */
  readonly title: string;
  /** What the dashboard shows. */
  readonly description: string;
  /** Grafana tags. */
  readonly tags: readonly string[];
  /** The panels, in layout order; a new row starts wherever `row` changes. */
  readonly panels: readonly PanelSpec[];
}

/**
 * Builds Grafana's JSON model of a dashboard for file provisioning: a Prometheus datasource
 * variable, rows, and the panels in order.
 */
export function buildDashboard(spec: DashboardSpec): dashboard.Dashboard {
  const builder = new dashboard.DashboardBuilder(spec.title)
    .uid(spec.uid)
    .description(spec.description)
    .tags([...spec.tags])
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .refresh("10s")
    .time({ from: "now-30m", to: "now" })
    .timezone("browser")
    .annotation(
      new dashboard.AnnotationQueryBuilder()
        .name("Annotations & Alerts")
        .builtIn(1)
        .datasource({ type: "grafana", uid: "-- Grafana --" })
        .type("dashboard")
        .enable(true)
        .hide(true)
        .iconColor("rgba(0, 211, 255, 1)"),
    )
    .withVariable(
      new dashboard.DatasourceVariableBuilder(DATASOURCE_VARIABLE)
        .label("Prometheus")
        .type("prometheus")
        .current({ text: "Prometheus", value: PROMETHEUS_DATASOURCE_UID, selected: true }),
    );
  let id = 0;
  let row: string | undefined;
  for (const panel of spec.panels) {
    if (panel.row !== row) {
      row = panel.row;
      builder.withRow(new dashboard.RowBuilder(row).id(++id));
    }
    switch (panel.kind) {
      case "stat":
        builder.withPanel(statPanel(panel, ++id));
        break;
      case "timeseries":
        builder.withPanel(timeseriesPanel(panel, ++id));
        break;
      case "nodegraph":
        builder.withPanel(nodegraphPanel(panel, ++id));
        break;
    }
  }
  return builder.build();
}
