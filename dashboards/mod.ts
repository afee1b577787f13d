/**
 * Grafana dashboards and Prometheus alert rules as code. A generator derives a dashboard and
 * alert rules from any pipeline's definition (`pipeline_dashboard.ts`, `alerts.ts`); the orders
 * dashboard is its output plus the orders domain's business panels (`orders_pipeline.ts`).
 * Queries take every metric and label name from `pipeline/telemetry/names.ts` and
 * `stages/telemetry.ts`. `deno task dashboards` writes `dashboards/generated/orders_pipeline.json`
 * (provisioned by Grafana) and `infra/prometheus/rules/pipeline_alerts.yml` (loaded by
 * Prometheus); `deno task dashboards --pipeline ./my_pipeline.ts` does the same for any pipeline.
 *
 * @example
 * ```ts
 * import { ALERT_EXPRESSIONS, PANEL_QUERIES } from "./mod.ts";
 * const all = [...PANEL_QUERIES.map((q) => q.promql), ...ALERT_EXPRESSIONS.map((a) => a.expr)];
 * ```
 *
 * @module
 */
export {
  DATASOURCE_VARIABLE,
  GRAFANA_DATASOURCE,
  NO_EXEMPLARS_NOTE,
  PANEL_DATASOURCE,
  type PanelQuery,
  type PanelSpec,
  PROMETHEUS_DATASOURCE_UID,
  type QuerySpec,
  SPAN_METRICS_EXEMPLARS_NOTE,
  TEMPO_DATASOURCE_UID,
} from "./_panels.ts";
export {
  pipelineDashboard,
  type PipelineDashboardOptions,
  pipelineDashboardUid,
  pipelinePanels,
  ROW,
  stageRow,
  TOPOLOGY_PANEL,
  topologyFrames,
} from "./pipeline_dashboard.ts";
export {
  ALERT_EXPRESSIONS,
  ALERT_RULES,
  BUSINESS_ALERT_RULES,
  BUSINESS_PANELS,
  DASHBOARD_TITLE,
  DASHBOARD_UID,
  ORDERS_DESCRIPTION,
  ordersPipelineDashboard,
  PANEL_QUERIES,
  PANELS,
  PROCESSING_P95_MS_MAX,
  RULE_GROUP,
  RULES_FILE,
} from "./orders_pipeline.ts";
export {
  type AlertExpression,
  alertExpressions,
  type AlertRule,
  alertRulesFile,
  DLQ_PER_MINUTE_MAX,
  LAG_FLOOR,
  pipelineAlertRules,
  type PrometheusRulesFile,
  renderAlertRules,
  ruleGroupName,
  RUNBOOKS,
  runbookUrl,
} from "./alerts.ts";
export {
  DASHBOARD_FILE,
  DASHBOARDS_DIR,
  generatedFiles,
  pipelineFiles,
  renderDashboardJson,
  renderJson,
  RULES_DIR,
  staleFiles,
  writeFiles,
  writeGeneratedFiles,
} from "./generate.ts";
export { toPromql } from "./_promql.ts";
