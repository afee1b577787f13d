/**
 * Grafana dashboards and Prometheus alert rules as code. The queries take every metric and
 * label name from `pipeline/telemetry/names.ts` and `stages/telemetry.ts`;
 * `deno task dashboards` writes `dashboards/generated/orders_pipeline.json` (provisioned by
 * Grafana) and `infra/prometheus/rules/pipeline_alerts.yml` (loaded by Prometheus).
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
  DASHBOARD_TITLE,
  DASHBOARD_UID,
  DATASOURCE_VARIABLE,
  ordersPipelineDashboard,
  PANEL_DATASOURCE,
  PANEL_QUERIES,
  type PanelQuery,
  PANELS,
  type PanelSpec,
  PROMETHEUS_DATASOURCE_UID,
  type QuerySpec,
  TEMPO_DATASOURCE_UID,
} from "./orders_pipeline.ts";
export {
  ALERT_EXPRESSIONS,
  ALERT_RULES,
  type AlertExpression,
  type AlertRule,
  alertRulesFile,
  DLQ_PER_MINUTE_MAX,
  LAG_FLOOR,
  PROCESSING_P95_MS_MAX,
  type PrometheusRulesFile,
  renderAlertRules,
  RULE_GROUP,
  RULES_FILE,
  RUNBOOKS,
  runbookUrl,
} from "./alerts.ts";
export {
  DASHBOARD_FILE,
  generatedFiles,
  renderDashboardJson,
  staleFiles,
  writeGeneratedFiles,
} from "./generate.ts";
export { toPromql } from "./_promql.ts";
