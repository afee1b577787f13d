/**
 * A pipeline describes itself, like Kafka Streams' `Topology#describe()`: as plain data
 * (serialisable, diffable), as text, and as a Mermaid diagram for the README.
 *
 * @module
 */
import { jsonSchemaOf } from "./codec.ts";
import { deadLetterJsonSchema } from "./definition.ts";
import type { Pipeline } from "./definition.ts";
import type { RetryPolicy } from "./retry.ts";

/** A pipeline as plain, JSON-serialisable data. */
export interface PipelineDescription {
  /** The pipeline's name. */
  readonly name: string;
  /** Every topic with its partitions, config and value schema (JSON Schema). */
  readonly topics: readonly {
    name: string;
    partitions: number;
    config: Record<string, string>;
    role: "data" | "retry" | "dead-letter" | "changelog";
    schema: Record<string, unknown>;
  }[];
  /** Writers from outside the stages. */
  readonly sources: readonly { name: string; output: string }[];
  /** The stages and their wiring. */
  readonly stages: readonly {
    name: string;
    input: string;
    output: string | null;
    group: string;
    deadLetter: string;
    concurrency: number;
    retry: RetryPolicy;
    retryTopics: readonly string[];
    idempotent: boolean;
    /** The state changelog topic of a keyed stage, `null` for an unkeyed one. */
    changelog: string | null;
  }[];
}

/** Describes a pipeline as data. */
export function describePipeline(pipeline: Pipeline): PipelineDescription {
  const retryTopics = new Set(pipeline.stages.flatMap((s) => s.retryTopics));
  return {
    name: pipeline.name,
    topics: pipeline.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions,
      config: { ...t.config },
      role: t.deadLetter
        ? "dead-letter"
        : t.changelog
        ? "changelog"
        : retryTopics.has(t.name)
        ? "retry"
        : "data",
      schema: t.deadLetter ? deadLetterJsonSchema() : jsonSchemaOf(t.schema!),
    })),
    sources: pipeline.sources.map((s) => ({ name: s.name, output: s.output })),
    stages: pipeline.stages.map((s) => ({
      name: s.stage.name,
      input: s.input,
      output: s.output ?? null,
      group: s.group,
      deadLetter: s.deadLetter,
      concurrency: s.concurrency,
      retry: s.retry,
      retryTopics: s.retryTopics,
      idempotent: s.stage.key !== undefined,
      changelog: s.changelog ?? null,
    })),
  };
}

function retrySummary(retry: RetryPolicy): string {
  const inPlace =
    `${retry.attempts} attempts, backoff ${retry.initialDelayMs} ms x${retry.multiplier} ` +
    `(cap ${retry.maxDelayMs} ms${retry.jitter ? ", full jitter" : ""})`;
  if (retry.tiers.length === 0) return inPlace;
  return `${inPlace}, then tiers ${retry.tiers.map((t) => `${t.delayMs} ms`).join(", ")}`;
}

/** Describes a pipeline as indented text, one line per node. */
export function describePipelineText(pipeline: Pipeline): string {
  const lines = [`Pipeline "${pipeline.name}"`, "  Topics:"];
  for (const t of describePipeline(pipeline).topics) {
    lines.push(`    ${t.name} (${partitionsText(t.partitions)}, ${t.role})`);
  }
  lines.push("  Sources:");
  for (const s of pipeline.sources) lines.push(`    ${s.name} -> ${s.output}`);
  lines.push("  Stages:");
  for (const s of pipeline.stages) {
    lines.push(`    ${s.stage.name}: ${s.input} -> ${s.output ?? "(sink)"}`);
    lines.push(`      group ${s.group}, ${s.concurrency} worker(s)`);
    lines.push(`      retry: ${retrySummary(s.retry)}`);
    if (s.retryTopics.length > 0) lines.push(`      retry topics: ${s.retryTopics.join(", ")}`);
    lines.push(`      dead letters: ${s.deadLetter}`);
    if (s.changelog) lines.push(`      idempotent by record key, state in ${s.changelog}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * A node id unique across kinds and names: a stage, a source and a topic may share a name, and
 * topic names differing only in `.`, `_` or `-` must not merge into one node.
 */
function mermaidId(kind: "topic" | "stage" | "source", name: string): string {
  const escaped = name.replace(/[^a-zA-Z0-9]/g, (c) => `_${c.charCodeAt(0).toString(16)}`);
  return `${kind}_${escaped}`;
}

function partitionsText(partitions: number): string {
  return `${partitions} partition${partitions === 1 ? "" : "s"}`;
}

/** Describes a pipeline as a Mermaid flowchart (sources, topics, stages, retry and DLQ edges). */
export function describePipelineMermaid(pipeline: Pipeline): string {
  const topic = (name: string) => mermaidId("topic", name);
  const lines = ["flowchart LR"];
  for (const t of pipeline.topics) {
    lines.push(`  ${topic(t.name)}[("${t.name}<br/>${partitionsText(t.partitions)}")]`);
  }
  for (const s of pipeline.sources) {
    lines.push(`  ${mermaidId("source", s.name)}[/"${s.name}"/] --> ${topic(s.output)}`);
  }
  for (const s of pipeline.stages) {
    const id = mermaidId("stage", s.stage.name);
    lines.push(`  ${id}["${s.stage.name}<br/>group ${s.group} x${s.concurrency}"]`);
    lines.push(`  ${topic(s.input)} --> ${id}`);
    if (s.output) lines.push(`  ${id} --> ${topic(s.output)}`);
    for (const [i, name] of s.retryTopics.entries()) {
      lines.push(`  ${id} -. "retry ${s.retry.tiers[i].delayMs} ms" .-> ${topic(name)}`);
      lines.push(`  ${topic(name)} -.-> ${id}`);
    }
    lines.push(`  ${id} -. "dead letter" .-> ${topic(s.deadLetter)}`);
    if (s.changelog) lines.push(`  ${id} -. "state" .-> ${topic(s.changelog)}`);
  }
  return lines.join("\n") + "\n";
}
