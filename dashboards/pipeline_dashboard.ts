/**
 * A Grafana dashboard for any pipeline, derived from its definition: a node graph of its
 * topology, the pipeline's totals, one row per stage (throughput, processing latency, latency
 * from traces with exemplars, retries by tier, dead letters by error type, lag by partition)
 * and the runtime's health. Every query reads the framework's metric names from
 * `pipeline/telemetry/names.ts` and selects this pipeline's stages, groups and topics.
 *
 * @example
 * ```ts ignore
 * import { describePipeline } from "../pipeline/describe.ts";
 * import { pipelineDashboard } from "./pipeline_dashboard.ts";
 * const model = pipelineDashboard(describePipeline(myPipeline)); // Grafana's JSON model
 * ```
 *
 * @module
 */
import type * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import type { PipelineDescription } from "../pipeline/describe.ts";
import {
  LABEL,
  MESSAGING_LABEL,
  METRIC,
  SPAN_KIND_LABEL,
  SPAN_METRIC,
  SPAN_METRIC_LABEL,
} from "../pipeline/telemetry/names.ts";
import {
  buildDashboard,
  type DataFrameJson,
  NO_EXEMPLARS_NOTE,
  type PanelSpec,
  q,
  SPAN_METRICS_EXEMPLARS_NOTE,
} from "./_panels.ts";
import { countRate, increase, maxBy, quantile, selector, sumBy, sumRate } from "./_promql.ts";

/** The stage a row belongs to: the row's title. */
export function stageRow(stage: string): string {
  return `Stage "${stage}"`;
}

/** The rows every generated dashboard has besides one per stage. */
export const ROW = {
  TOPOLOGY: "Topology",
  PIPELINE: "Pipeline",
  RUNTIME: "Runtime",
} as const;

/** The node graph's title. */
export const TOPOLOGY_PANEL = "Topology";

type NodeKind = "source" | "topic" | "retry" | "dead-letter" | "changelog" | "stage";

/** The node graph colours, one per node kind (arc fields, one of which is 1 per node). */
const NODE_KINDS: readonly { kind: NodeKind; label: string; color: string }[] = [
  { kind: "source", label: "Source", color: "purple" },
  { kind: "topic", label: "Topic", color: "blue" },
  { kind: "retry", label: "Retry topic", color: "yellow" },
  { kind: "dead-letter", label: "Dead-letter topic", color: "red" },
  { kind: "changelog", label: "State changelog", color: "orange" },
  { kind: "stage", label: "Stage", color: "green" },
];

function nodeId(kind: "source" | "topic" | "stage", name: string): string {
  return `${kind}:${name}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * The node graph's two data frames for a pipeline: `nodes` (sources, topics, stages) and
 * `edges` (who writes and reads what, retry tiers, dead letters), in the shape Grafana's node
 * graph reads (`id`, `title`, `subtitle`, `mainstat`, `secondarystat`, `arc__*`; `id`,
 * `source`, `target`, `mainstat`).
 */
export function topologyFrames(description: PipelineDescription): DataFrameJson[] {
  const nodes: {
    id: string;
    title: string;
    sub: string;
    main: string;
    second: string;
    kind: NodeKind;
  }[] = [];
  for (const source of description.sources) {
    nodes.push({
      id: nodeId("source", source.name),
      title: source.name,
      sub: "source",
      main: `writes ${source.output}`,
      second: "",
      kind: "source",
    });
  }
  for (const topic of description.topics) {
    const kind: NodeKind = topic.role === "data" ? "topic" : topic.role;
    nodes.push({
      id: nodeId("topic", topic.name),
      title: topic.name,
      sub: topic.role === "data" ? "topic" : `${topic.role} topic`,
      main: plural(topic.partitions, "partition"),
      second: topic.config["cleanup.policy"] ?? "",
      kind,
    });
  }
  for (const stage of description.stages) {
    nodes.push({
      id: nodeId("stage", stage.name),
      title: stage.name,
      sub: `stage, group ${stage.group}`,
      main: plural(stage.concurrency, "worker"),
      second: `${plural(stage.retry.attempts, "attempt")}` +
        (stage.retryTopics.length > 0 ? `, ${plural(stage.retryTopics.length, "tier")}` : ""),
      kind: "stage",
    });
  }
  const edges: { source: string; target: string; main: string }[] = [];
  for (const source of description.sources) {
    edges.push({
      source: nodeId("source", source.name),
      target: nodeId("topic", source.output),
      main: "publishes",
    });
  }
  for (const stage of description.stages) {
    const id = nodeId("stage", stage.name);
    edges.push({ source: nodeId("topic", stage.input), target: id, main: "consumed by" });
    if (stage.output !== null) {
      edges.push({ source: id, target: nodeId("topic", stage.output), main: "outputs" });
    }
    for (const [i, tier] of stage.retryTopics.entries()) {
      const delay = stage.retry.tiers[i]?.delayMs;
      edges.push({
        source: id,
        target: nodeId("topic", tier),
        main: `retry tier ${i + 1}${delay === undefined ? "" : ` after ${delay} ms`}`,
      });
      edges.push({ source: nodeId("topic", tier), target: id, main: "consumed by" });
    }
    edges.push({ source: id, target: nodeId("topic", stage.deadLetter), main: "dead letters" });
    if (stage.changelog !== null) {
      edges.push({ source: id, target: nodeId("topic", stage.changelog), main: "state changelog" });
    }
  }
  const nodeGraphMeta = { preferredVisualisationType: "nodeGraph" };
  return [
    {
      schema: {
        name: "nodes",
        meta: nodeGraphMeta,
        fields: [
          { name: "id", type: "string" },
          { name: "title", type: "string" },
          { name: "subtitle", type: "string" },
          { name: "mainstat", type: "string" },
          { name: "secondarystat", type: "string" },
          ...NODE_KINDS.map(({ kind, label, color }) => ({
            name: `arc__${kind.replace("-", "_")}`,
            type: "number" as const,
            config: { displayName: label, color: { mode: "fixed", fixedColor: color } },
          })),
        ],
      },
      data: {
        values: [
          nodes.map((n) => n.id),
          nodes.map((n) => n.title),
          nodes.map((n) => n.sub),
          nodes.map((n) => n.main),
          nodes.map((n) => n.second),
          ...NODE_KINDS.map(({ kind }) => nodes.map((n) => n.kind === kind ? 1 : 0)),
        ],
      },
    },
    {
      schema: {
        name: "edges",
        meta: nodeGraphMeta,
        fields: [
          { name: "id", type: "string" },
          { name: "source", type: "string" },
          { name: "target", type: "string" },
          { name: "mainstat", type: "string" },
        ],
      },
      data: {
        values: [
          edges.map((e) => `${e.source}->${e.target}`),
          edges.map((e) => e.source),
          edges.map((e) => e.target),
          edges.map((e) => e.main),
        ],
      },
    },
  ];
}

const QUANTILES = [0.5, 0.95, 0.99] as const;
const REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

function stagePanels(stage: PipelineDescription["stages"][number]): PanelSpec[] {
  const row = stageRow(stage.name);
  const own = { [LABEL.STAGE]: stage.name };
  const topics = [stage.input, ...stage.retryTopics].join(", ");
  return [
    {
      title: `${stage.name}: throughput`,
      row,
      kind: "timeseries",
      unit: "ops",
      width: 8,
      description: `Records stage "${stage.name}" consumed from ${topics} per second, how ` +
        "their processing ended (output, retry-scheduled, dead-lettered, duplicate), and failed " +
        "handler attempts (each retry counts).",
      queries: [
        q("A", sumRate(METRIC.MESSAGES_CONSUMED, { where: own }), "consumed"),
        q(
          "B",
          countRate(METRIC.MESSAGING_PROCESS_DURATION, { by: [LABEL.OUTCOME], where: own }),
          "{{outcome}}",
        ),
        q("C", sumRate(METRIC.MESSAGES_FAILED, { where: own }), "failed attempts"),
      ],
    },
    {
      title: `${stage.name}: processing latency`,
      row,
      kind: "timeseries",
      unit: "s",
      width: 8,
      description: `Time to process one record in stage "${stage.name}", retries in place ` +
        `included (semconv messaging.process.duration). ${NO_EXEMPLARS_NOTE}`,
      queries: QUANTILES.map((quant, i) =>
        q(
          REF_IDS[i],
          quantile(quant, METRIC.MESSAGING_PROCESS_DURATION, { where: own }),
          `p${quant * 100}`,
        )
      ),
    },
    {
      title: `${stage.name}: latency from traces`,
      row,
      kind: "timeseries",
      unit: "s",
      width: 8,
      description: `Duration of stage "${stage.name}"'s process spans. ` +
        SPAN_METRICS_EXEMPLARS_NOTE,
      queries: QUANTILES.map((quant, i) =>
        q(
          REF_IDS[i],
          quantile(quant, SPAN_METRIC.LATENCY, {
            where: {
              [SPAN_METRIC_LABEL.STAGE]: stage.name,
              [SPAN_METRIC_LABEL.SPAN_KIND]: SPAN_KIND_LABEL.CONSUMER,
            },
          }),
          `p${quant * 100}`,
          true,
        )
      ),
    },
    {
      title: `${stage.name}: retries by tier`,
      row,
      kind: "timeseries",
      unit: "ops",
      width: 8,
      description: `Retries per second in stage "${stage.name}", by tier: 0 is in place, ` +
        (stage.retryTopics.length === 0
          ? "the only tier this stage has."
          : `1 to ${stage.retryTopics.length} are its retry topics.`),
      queries: [q("A", sumRate(METRIC.RETRIES, { by: [LABEL.TIER], where: own }), "tier {{tier}}")],
    },
    {
      title: `${stage.name}: dead letters by error type`,
      row,
      kind: "timeseries",
      unit: "ops",
      width: 8,
      description: `Records stage "${stage.name}" sent to ${stage.deadLetter} per second, by ` +
        "error type.",
      queries: [
        q(
          "A",
          sumRate(METRIC.DLQ_MESSAGES, { by: [LABEL.ERROR_TYPE], where: own }),
          "{{error_type}}",
        ),
      ],
    },
    {
      title: `${stage.name}: lag by partition`,
      row,
      kind: "timeseries",
      unit: "short",
      width: 8,
      description: `Records not yet committed by group "${stage.group}", per topic and ` +
        "partition; `max` so a partition reported twice around a rebalance is not doubled.",
      queries: [
        q(
          "A",
          maxBy(
            [LABEL.TOPIC, LABEL.PARTITION],
            selector(METRIC.CONSUMER_LAG.prom, { [LABEL.GROUP]: stage.group }),
          ),
          "{{topic}}/{{partition}}",
        ),
      ],
    },
  ];
}

/**
 * Every panel of a pipeline's dashboard, in layout order: the topology, the pipeline's totals,
 * one row per stage, the runtime.
 *
 * @example
 * ```ts ignore
 * const titles = pipelinePanels(describePipeline(pipeline)).map((p) => p.title);
 * ```
 */
export function pipelinePanels(description: PipelineDescription): PanelSpec[] {
  const stages = description.stages.map((s) => s.name);
  const topics = description.topics.map((t) => t.name);
  const ofStages = { [LABEL.STAGE]: stages };
  return [
    {
      title: TOPOLOGY_PANEL,
      row: ROW.TOPOLOGY,
      kind: "nodegraph",
      unit: "none",
      width: 24,
      description: `Sources, topics and stages of pipeline "${description.name}", drawn from ` +
        "its definition: each stage reads a topic, writes its output, parks retries on its " +
        "retry topics and sends what fails for good to its dead-letter topic.",
      queries: [],
      frames: topologyFrames(description),
    },
    {
      title: "Consumed/s by stage",
      row: ROW.PIPELINE,
      kind: "timeseries",
      unit: "ops",
      width: 8,
      description: "Records consumed per second, per stage.",
      queries: [
        q(
          "A",
          sumRate(METRIC.MESSAGES_CONSUMED, { by: [LABEL.STAGE], where: ofStages }),
          "{{stage}}",
        ),
      ],
    },
    {
      title: "Sent/s by topic",
      row: ROW.PIPELINE,
      kind: "timeseries",
      unit: "ops",
      width: 8,
      description: "Records sent per second to each topic of the pipeline (sources, outputs, " +
        "retry tiers and dead letters; semconv messaging.client.sent.messages).",
      queries: [
        q(
          "A",
          sumRate(METRIC.MESSAGING_SENT, {
            by: [MESSAGING_LABEL.DESTINATION],
            where: { [MESSAGING_LABEL.DESTINATION]: topics },
          }),
          "{{messaging_destination_name}}",
        ),
      ],
    },
    {
      title: "Dead letters/s by stage",
      row: ROW.PIPELINE,
      kind: "timeseries",
      unit: "ops",
      width: 8,
      description: "Records sent to a dead-letter topic per second, per stage.",
      queries: [
        q("A", sumRate(METRIC.DLQ_MESSAGES, { by: [LABEL.STAGE], where: ofStages }), "{{stage}}"),
      ],
    },
    ...description.stages.flatMap(stagePanels),
    {
      title: "Worker restarts",
      row: ROW.RUNTIME,
      kind: "timeseries",
      unit: "short",
      width: 8,
      bars: true,
      description: "Workers the supervisor restarted after a crash, per stage.",
      queries: [
        q(
          "A",
          sumBy([LABEL.STAGE], increase(METRIC.WORKER_RESTARTS, undefined, ofStages)),
          "{{stage}}",
        ),
      ],
    },
    {
      title: "Records in flight",
      row: ROW.RUNTIME,
      kind: "timeseries",
      unit: "short",
      width: 8,
      description: "Records being handled right now, by every runner of the process.",
      queries: [q("A", sumBy([], METRIC.IN_FLIGHT.prom), "in flight")],
    },
    {
      title: "End-to-end latency",
      row: ROW.RUNTIME,
      kind: "timeseries",
      unit: "ms",
      width: 8,
      description: "From the event's creation to its final outcome, over every stage. " +
        NO_EXEMPLARS_NOTE,
      queries: QUANTILES.map((quant, i) =>
        q(
          REF_IDS[i],
          quantile(quant, METRIC.END_TO_END_LATENCY, { where: ofStages }),
          `p${quant * 100}`,
        )
      ),
    },
  ];
}

/** Options of {@linkcode pipelineDashboard}. */
export interface PipelineDashboardOptions {
  /**
   * The dashboard's uid.
   * @default {`${name}-pipeline`}
   */
  readonly uid?: string;
  /**
   * The dashboard's title.
   * @default {`Pipeline "${name}"`}
   */
  readonly title?: string;
  /**
   * What the dashboard shows.
   * @default {a sentence naming the pipeline}
   */
  readonly description?: string;
  /**
   * Grafana tags.
   * @default {["pipeline", "kafka", name]}
   */
  readonly tags?: readonly string[];
  /**
   * Panels placed before the generated ones: the domain's business panels.
   * @default {[]}
   */
  readonly before?: readonly PanelSpec[];
}

/** The uid of a pipeline's generated dashboard. */
export function pipelineDashboardUid(name: string): string {
  return `${name}-pipeline`;
}

/** Everything {@linkcode pipelineDashboard} builds from, options resolved. */
export function pipelineDashboardPanels(
  description: PipelineDescription,
  options: PipelineDashboardOptions = {},
): PanelSpec[] {
  return [...(options.before ?? []), ...pipelinePanels(description)];
}

/**
 * Builds the dashboard of a pipeline: Grafana's JSON model for file provisioning.
 *
 * @example
 * ```ts ignore
 * const json = JSON.stringify(pipelineDashboard(describePipeline(pipeline)), null, 2);
 * ```
 */
export function pipelineDashboard(
  description: PipelineDescription,
  options: PipelineDashboardOptions = {},
): dashboard.Dashboard {
  const { name } = description;
  const {
    uid = pipelineDashboardUid(name),
    title = `Pipeline "${name}"`,
    description: text =
      `Pipeline "${name}" from its definition: topology, throughput, latency (with exemplars ` +
      "linking to Tempo traces from span metrics), retries, dead letters and lag per stage, " +
      "and the runtime's health.",
    tags = ["pipeline", "kafka", name],
  } = options;
  return buildDashboard({
    uid,
    title,
    description: text,
    tags,
    panels: pipelineDashboardPanels(description, options),
  });
}
