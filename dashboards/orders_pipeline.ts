/**
 * The "Orders pipeline" Grafana dashboard and alert rules as code: what the generator
 * (`pipeline_dashboard.ts`, `alerts.ts`) derives from the orders pipeline's definition, plus
 * the orders domain's business panels and alert (orders published, publish failures and
 * latency, payment processing latency).
 *
 * Every query is listed in {@linkcode PANEL_QUERIES} and {@linkcode ALERT_EXPRESSIONS} so tests
 * can run each one on Prometheus.
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
import type * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import { describePipeline, type PipelineDescription } from "../pipeline/describe.ts";
import { LABEL, METRIC } from "../pipeline/telemetry/names.ts";
import { retryPreset } from "../stages/config.ts";
import { createOrdersPipeline } from "../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../stages/payment_gateway.ts";
import { PROCESS_PAYMENT } from "../stages/process_payment.ts";
import { ORDER_METRIC } from "../stages/telemetry.ts";
import {
  type AlertExpression,
  alertExpressions,
  type AlertRule,
  pipelineAlertRules,
  ruleGroupName,
} from "./alerts.ts";
import { NO_EXEMPLARS_NOTE, panelQueries, type PanelQuery, type PanelSpec, q } from "./_panels.ts";
import { pipelineDashboard, pipelineDashboardPanels } from "./pipeline_dashboard.ts";
import { quantile, sumRate } from "./_promql.ts";

/** The dashboard's stable uid, so links and provisioning survive regeneration. */
export const DASHBOARD_UID = "orders-pipeline";

/** The dashboard's title. */
export const DASHBOARD_TITLE = "Orders pipeline";

/** Processing p95 in milliseconds above which `PipelineProcessingP95High` fires. */
export const PROCESSING_P95_MS_MAX = 200;

/**
 * The orders pipeline as the commands run it (topics `orders`, `payments`, `orders.dlq`, group
 * `payment-service`), described as data, with the `tiered` retry preset: the fullest topology
 * (the README's diagram shows the same), so the panels also cover the retry topics of a run that
 * uses them. The gateway only matters to the handler, never to the description.
 */
export const ORDERS_DESCRIPTION: PipelineDescription = describePipeline(
  createOrdersPipeline({ gateway: createPaymentGateway(), retry: retryPreset("tiered") }),
);

const ORDERS_ROW = "Orders";
const PAYMENT = { [LABEL.STAGE]: PROCESS_PAYMENT };

/** The orders domain's business panels, placed before the generated ones. */
export const BUSINESS_PANELS: readonly PanelSpec[] = [
  {
    title: "Orders published/s",
    row: ORDERS_ROW,
    kind: "stat",
    unit: "ops",
    width: 4,
    description: "Orders acknowledged by the broker on the orders topic, per second.",
    queries: [q("A", sumRate(ORDER_METRIC.ORDERS_PUBLISHED), "published")],
  },
  {
    title: "Publish failures/s",
    row: ORDERS_ROW,
    kind: "stat",
    unit: "ops",
    width: 4,
    description: "Orders the order service could not publish, per second.",
    queries: [q("A", sumRate(ORDER_METRIC.ORDERS_FAILED), "failed")],
  },
  {
    title: "Publish p95 latency",
    row: ORDERS_ROW,
    kind: "stat",
    unit: "ms",
    width: 4,
    description:
      `95th percentile of the time from send to broker acknowledgement. ${NO_EXEMPLARS_NOTE}`,
    queries: [q("A", quantile(0.95, ORDER_METRIC.ORDER_PUBLISH_LATENCY), "p95")],
  },
  {
    title: "Processing p95",
    row: ORDERS_ROW,
    kind: "stat",
    unit: "ms",
    width: 4,
    description:
      `95th percentile of the time to process one order, retries included. ${NO_EXEMPLARS_NOTE}`,
    queries: [q("A", quantile(0.95, ORDER_METRIC.PAYMENT_PROCESSING_LATENCY), "p95")],
  },
  {
    title: "Payment failures/s",
    row: ORDERS_ROW,
    kind: "stat",
    unit: "ops",
    width: 4,
    description: "Payment attempts that failed (each retry counts), per second.",
    queries: [q("A", sumRate(METRIC.MESSAGES_FAILED, { where: PAYMENT }), "failed")],
  },
  {
    title: "Orders dead-lettered/s",
    row: ORDERS_ROW,
    kind: "stat",
    unit: "ops",
    width: 4,
    description: "Orders sent to the dead-letter queue, per second.",
    queries: [q("A", sumRate(METRIC.DLQ_MESSAGES, { where: PAYMENT }), "dead-lettered")],
  },
  {
    title: "Published vs paid",
    row: ORDERS_ROW,
    kind: "timeseries",
    unit: "ops",
    width: 12,
    description: "Orders published against orders the payment stage consumed, per second.",
    queries: [
      q("A", sumRate(ORDER_METRIC.ORDERS_PUBLISHED), "published"),
      q("B", sumRate(METRIC.MESSAGES_CONSUMED, { where: PAYMENT }), "consumed"),
      q("C", sumRate(ORDER_METRIC.ORDERS_FAILED), "publish failed"),
    ],
  },
  {
    title: "Publish and processing p95",
    row: ORDERS_ROW,
    kind: "timeseries",
    unit: "ms",
    width: 12,
    description: `95th percentiles of publish and payment processing latency. ${NO_EXEMPLARS_NOTE}`,
    queries: [
      q("A", quantile(0.95, ORDER_METRIC.ORDER_PUBLISH_LATENCY), "publish p95"),
      q(
        "B",
        quantile(0.95, ORDER_METRIC.PAYMENT_PROCESSING_LATENCY, { by: [LABEL.OUTCOME] }),
        "processing p95 {{outcome}}",
      ),
    ],
  },
];

/** Every panel of the dashboard, in layout order: business panels, then generated ones. */
export const PANELS: readonly PanelSpec[] = pipelineDashboardPanels(ORDERS_DESCRIPTION, {
  before: BUSINESS_PANELS,
});

/** Every Prometheus query of the dashboard, in panel order. */
export const PANEL_QUERIES: readonly PanelQuery[] = panelQueries(PANELS);

/**
 * Builds the "Orders pipeline" dashboard, Grafana's JSON model for file provisioning.
 *
 * @example
 * ```ts
 * const json = JSON.stringify(ordersPipelineDashboard(), null, 2);
 * ```
 */
export function ordersPipelineDashboard(): dashboard.Dashboard {
  return pipelineDashboard(ORDERS_DESCRIPTION, {
    uid: DASHBOARD_UID,
    title: DASHBOARD_TITLE,
    description: "Orders from publication to payment or DLQ: the business numbers, then what " +
      "the pipeline generator derives from its definition (topology, throughput, latency with " +
      "exemplars linking span metrics to Tempo traces, retries, dead letters, lag, runtime).",
    tags: ["orders", "pipeline", "kafka"],
    before: BUSINESS_PANELS,
  });
}

/** The orders domain's own alert: payment processing too slow. */
export const BUSINESS_ALERT_RULES: readonly AlertRule[] = [
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
];

/** Where the orders rules file lives, relative to the repository root. */
export const RULES_FILE = "infra/prometheus/rules/pipeline_alerts.yml";

/** The orders rule group's name. */
export const RULE_GROUP: string = ruleGroupName(ORDERS_DESCRIPTION.name);

/** Every orders alerting rule, in file order: generated, then business. */
export const ALERT_RULES: readonly AlertRule[] = [
  ...pipelineAlertRules(ORDERS_DESCRIPTION),
  ...BUSINESS_ALERT_RULES,
];

/** Every orders alert's expression, in file order. */
export const ALERT_EXPRESSIONS: readonly AlertExpression[] = alertExpressions(ALERT_RULES);
