/**
 * The "Orders pipeline" Grafana dashboard as code: throughput, failures, DLQ, lag, retries,
 * latency (exemplar links to Tempo enabled, for exporters that record them) and the runtime's own health.
 *
 * Panels are declared as data ({@linkcode PANELS}) and built with the Grafana Foundation SDK;
 * every query is listed in {@linkcode PANEL_QUERIES} so tests can run each one on Prometheus.
 *
 * @example
 * ```ts
 * import { ordersPipelineDashboard, PANEL_QUERIES } from "./orders_pipeline.ts";
 * const model = ordersPipelineDashboard(); // Grafana's dashboard JSON model
 * for (const { panel, promql } of PANEL_QUERIES) console.log(panel, promql);
 * ```
 *
 * @module
 */
import * as common from "@grafana/grafana-foundation-sdk/common";
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import * as prometheus from "@grafana/grafana-foundation-sdk/prometheus";
import * as stat from "@grafana/grafana-foundation-sdk/stat";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";
import { LABEL, METRIC } from "../pipeline/telemetry/names.ts";
import { ORDER_METRIC } from "../stages/telemetry.ts";
import { increase, maxBy, quantile, sumBy, sumRate, toPromql } from "./_promql.ts";

/** The dashboard's stable uid, so links and provisioning survive regeneration. */
export const DASHBOARD_UID = "orders-pipeline";

/** The dashboard's title. */
export const DASHBOARD_TITLE = "Orders pipeline";

/** The name of the datasource variable every panel queries through. */
export const DATASOURCE_VARIABLE = "datasource";

/** The provisioned Prometheus datasource's uid, the variable's default. */
export const PROMETHEUS_DATASOURCE_UID = "prometheus";

/** What latency panels say about exemplars: the link is set up, the SDK records none yet. */
const EXEMPLAR_NOTE =
  "exemplars, where the metrics path carries them, open the trace (the OTel JS SDK records none yet).";

/** The provisioned Tempo datasource's uid, where exemplars' trace ids lead. */
export const TEMPO_DATASOURCE_UID = "tempo";

/** Every panel's datasource: Prometheus, chosen by the `datasource` variable. */
export const PANEL_DATASOURCE: { readonly type: "prometheus"; readonly uid: string } = {
  type: "prometheus",
  uid: `\${${DATASOURCE_VARIABLE}}`,
};

/** One query of a panel. */
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

/** One panel, as data. */
export interface PanelSpec {
  /** The panel's title, unique in the dashboard. */
  readonly title: string;
  /** The row the panel sits in. */
  readonly row: string;
  /** `stat` for a big number, `timeseries` for a graph. */
  readonly kind: "stat" | "timeseries";
  /** Grafana's unit id (`ops`, `ms`, `short`, ...). */
  readonly unit: string;
  /** What the panel shows, in a sentence. */
  readonly description: string;
  /** The panel's width on Grafana's 24-column grid. */
  readonly width: number;
  /** The panel's queries. */
  readonly queries: readonly QuerySpec[];
  /** Draw bars instead of lines (counts per interval). */
  readonly bars?: boolean;
}

const STAGE = LABEL.STAGE;
const BY_PARTITION = [LABEL.GROUP, LABEL.TOPIC, LABEL.PARTITION] as const;

/** Lag per partition; `max` so a partition reported twice around a rebalance is not doubled. */
const LAG_PER_PARTITION = maxBy(BY_PARTITION, METRIC.CONSUMER_LAG.prom);

function q(refId: string, expr: string, legend: string, exemplar?: boolean): QuerySpec {
  return exemplar ? { refId, expr, legend, exemplar } : { refId, expr, legend };
}

/** Every panel of the dashboard, in layout order. */
export const PANELS: readonly PanelSpec[] = [
  {
    title: "Orders published/s",
    row: "Overview",
    kind: "stat",
    unit: "ops",
    width: 4,
    description: "Orders acknowledged by the broker on the orders topic, per second.",
    queries: [q("A", sumRate(ORDER_METRIC.ORDERS_PUBLISHED), "published")],
  },
  {
    title: "Publish failures/s",
    row: "Overview",
    kind: "stat",
    unit: "ops",
    width: 3,
    description: "Orders the order service could not publish, per second.",
    queries: [q("A", sumRate(ORDER_METRIC.ORDERS_FAILED), "failed")],
  },
  {
    title: "Publish p95 latency",
    row: "Overview",
    kind: "stat",
    unit: "ms",
    width: 3,
    description: "95th percentile of the time from send to broker acknowledgement.",
    queries: [q("A", quantile(0.95, ORDER_METRIC.ORDER_PUBLISH_LATENCY), "p95")],
  },
  {
    title: "Consumed/s",
    row: "Overview",
    kind: "stat",
    unit: "ops",
    width: 4,
    description: "Records consumed by every stage, per second.",
    queries: [q("A", sumRate(METRIC.MESSAGES_CONSUMED), "consumed")],
  },
  {
    title: "Processing p95",
    row: "Overview",
    kind: "stat",
    unit: "ms",
    width: 3,
    description: "95th percentile of the time to process one order, retries included.",
    queries: [q("A", quantile(0.95, ORDER_METRIC.PAYMENT_PROCESSING_LATENCY), "p95")],
  },
  {
    title: "Payment failures/s",
    row: "Overview",
    kind: "stat",
    unit: "ops",
    width: 4,
    description: "Handler attempts that failed (each retry counts), per second.",
    queries: [q("A", sumRate(METRIC.MESSAGES_FAILED), "failed")],
  },
  {
    title: "DLQ/s",
    row: "Overview",
    kind: "stat",
    unit: "ops",
    width: 3,
    description: "Records sent to the dead-letter queue, per second.",
    queries: [q("A", sumRate(METRIC.DLQ_MESSAGES), "dead-lettered")],
  },
  {
    title: "Published vs consumed",
    row: "Throughput",
    kind: "timeseries",
    unit: "ops",
    width: 12,
    description: "Orders published against records consumed, per second, per stage.",
    queries: [
      q("A", sumRate(ORDER_METRIC.ORDERS_PUBLISHED), "published"),
      q("B", sumRate(METRIC.MESSAGES_CONSUMED, { by: [STAGE] }), "consumed {{stage}}"),
    ],
  },
  {
    title: "DLQ and failures over time",
    row: "Throughput",
    kind: "timeseries",
    unit: "ops",
    width: 12,
    description: "Dead-lettered records, failed handler attempts and failed publishes, per second.",
    queries: [
      q("A", sumRate(METRIC.DLQ_MESSAGES, { by: [STAGE] }), "DLQ {{stage}}"),
      q(
        "B",
        sumRate(METRIC.MESSAGES_FAILED, { by: [STAGE, LABEL.ERROR_TYPE] }),
        "failed {{stage}} {{error_type}}",
      ),
      q("C", sumRate(ORDER_METRIC.ORDERS_FAILED), "publish failed"),
    ],
  },
  {
    title: "Consumer lag per partition",
    row: "Backlog",
    kind: "timeseries",
    unit: "short",
    width: 12,
    description: "Records not yet committed, per consumer group, topic and partition.",
    queries: [q("A", LAG_PER_PARTITION, "{{group}} {{topic}}/{{partition}}")],
  },
  {
    title: "Retries per tier",
    row: "Backlog",
    kind: "timeseries",
    unit: "ops",
    width: 12,
    description: "Retries per second, per stage and retry tier (0 is in place).",
    queries: [
      q("A", sumRate(METRIC.RETRIES, { by: [STAGE, LABEL.TIER] }), "{{stage}} tier {{tier}}"),
    ],
  },
  {
    title: "Publish and processing p95",
    row: "Latency",
    kind: "timeseries",
    unit: "ms",
    width: 12,
    description: `95th percentiles of publish and processing latency; ${EXEMPLAR_NOTE}`,
    queries: [
      q("A", quantile(0.95, ORDER_METRIC.ORDER_PUBLISH_LATENCY), "publish p95", true),
      q("B", quantile(0.95, ORDER_METRIC.PAYMENT_PROCESSING_LATENCY), "processing p95", true),
    ],
  },
  {
    title: "End-to-end latency",
    row: "Latency",
    kind: "timeseries",
    unit: "ms",
    width: 12,
    description: `From the order's creation to its final outcome; ${EXEMPLAR_NOTE}`,
    queries: [
      q("A", quantile(0.5, METRIC.END_TO_END_LATENCY), "p50", true),
      q("B", quantile(0.95, METRIC.END_TO_END_LATENCY), "p95", true),
      q("C", quantile(0.99, METRIC.END_TO_END_LATENCY), "p99", true),
    ],
  },
  {
    title: "Worker restarts",
    row: "Runtime",
    kind: "timeseries",
    unit: "short",
    width: 12,
    bars: true,
    description: "Workers the supervisor restarted after a crash, per stage.",
    queries: [
      q("A", sumBy([STAGE], increase(METRIC.WORKER_RESTARTS)), "{{stage}}"),
    ],
  },
  {
    title: "Records in flight",
    row: "Runtime",
    kind: "timeseries",
    unit: "short",
    width: 12,
    description: "Records being handled right now, per stage.",
    queries: [q("A", sumBy([STAGE], METRIC.IN_FLIGHT.prom), "{{stage}}")],
  },
];

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
}

/** Every query of the dashboard, in panel order. */
export const PANEL_QUERIES: readonly PanelQuery[] = PANELS.flatMap((panel) =>
  panel.queries.map(({ refId, expr }) => ({
    panel: panel.title,
    refId,
    expr,
    promql: toPromql(expr),
  }))
);

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
    .height(4)
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
    .height(8)
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

/**
 * Builds the "Orders pipeline" dashboard, Grafana's JSON model for file provisioning.
 *
 * @example
 * ```ts
 * const json = JSON.stringify(ordersPipelineDashboard(), null, 2);
 * ```
 */
export function ordersPipelineDashboard(): dashboard.Dashboard {
  const builder = new dashboard.DashboardBuilder(DASHBOARD_TITLE)
    .uid(DASHBOARD_UID)
    .description(
      "Orders from publication to payment or DLQ: throughput, failures, lag, retries, latency " +
        "with exemplars linking to Tempo traces, and the runtime's health.",
    )
    .tags(["orders", "pipeline", "kafka"])
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
  for (const spec of PANELS) {
    if (spec.row !== row) {
      row = spec.row;
      builder.withRow(new dashboard.RowBuilder(row).id(++id));
    }
    builder.withPanel(spec.kind === "stat" ? statPanel(spec, ++id) : timeseriesPanel(spec, ++id));
  }
  return builder.build();
}
