/**
 * Writes dashboards and Prometheus rules files from their TypeScript sources, byte for byte
 * the same on every run: the orders pipeline's (committed, checked for staleness by a test), or
 * any pipeline's, derived from its definition.
 *
 * ```sh
 * deno task dashboards                                   # the orders dashboard and rules
 * deno task dashboards --check                           # exit 1, naming stale files
 * deno task dashboards --pipeline ./my_pipeline.ts       # a dashboard and rules for any pipeline
 * deno task dashboards --pipeline ./p.ts --export sensors
 * deno task dashboards --help
 * ```
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describePipeline, type PipelineDescription } from "../pipeline/describe.ts";
import { PipelineError } from "../pipeline/errors.ts";
import { loadPipelineModule } from "../pipeline/pipeline_module.ts";
import { pipelineAlertRules, renderAlertRules, ruleGroupName } from "./alerts.ts";
import {
  ALERT_RULES,
  DASHBOARD_UID,
  ordersPipelineDashboard,
  RULE_GROUP,
  RULES_FILE,
} from "./orders_pipeline.ts";
import { pipelineDashboard } from "./pipeline_dashboard.ts";

/** Where generated dashboards live, relative to the repository root (Grafana provisions it). */
export const DASHBOARDS_DIR = "dashboards/generated";

/** Where rules files live, relative to the repository root (Prometheus loads `*.yml`). */
export const RULES_DIR = "infra/prometheus/rules";

/** Where the orders dashboard JSON lives, relative to the repository root. */
export const DASHBOARD_FILE = `${DASHBOARDS_DIR}/orders_pipeline.json`;

/** Recursively sorts object keys so the JSON does not depend on builder call order. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined && typeof v !== "function")
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

/** Renders a dashboard model as JSON: sorted keys, two-space indent, final newline. */
export function renderJson(model: unknown): string {
  return JSON.stringify(sortKeys(model), null, 2) + "\n";
}

/** Renders the orders dashboard's JSON. */
export function renderDashboardJson(): string {
  return renderJson(ordersPipelineDashboard());
}

/**
 * Every committed generated file (the orders pipeline's), path (relative to the repository
 * root) to content.
 *
 * @example
 * ```ts
 * for (const [path, text] of Object.entries(generatedFiles())) console.log(path, text.length);
 * ```
 */
export function generatedFiles(): Record<string, string> {
  return {
    [DASHBOARD_FILE]: renderDashboardJson(),
    [RULES_FILE]: renderAlertRules(RULE_GROUP, ALERT_RULES),
  };
}

/** A file name for a pipeline name: snake_case, as every file of the repository. */
function fileStem(name: string): string {
  return `${name.replaceAll("-", "_")}_pipeline`;
}

/**
 * The dashboard and rules file of any pipeline, path (relative to the repository root) to
 * content: `dashboards/generated/<name>_pipeline.json` and
 * `infra/prometheus/rules/<name>_pipeline_alerts.yml`.
 */
export function pipelineFiles(description: PipelineDescription): Record<string, string> {
  const stem = fileStem(description.name);
  return {
    [`${DASHBOARDS_DIR}/${stem}.json`]: renderJson(pipelineDashboard(description)),
    [`${RULES_DIR}/${stem}_alerts.yml`]: renderAlertRules(
      ruleGroupName(description.name),
      pipelineAlertRules(description),
    ),
  };
}

/** The repository root, found from this file's location. */
export const REPO_ROOT: string = fileURLToPath(new URL("..", import.meta.url));

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/**
 * Lists the generated files whose committed content differs from what the code renders now
 * (missing files count as stale).
 */
export async function staleFiles(root: string = REPO_ROOT): Promise<string[]> {
  const stale: string[] = [];
  for (const [path, text] of Object.entries(generatedFiles())) {
    if (await readOrNull(join(root, path)) !== text) stale.push(path);
  }
  return stale;
}

/** Writes `files` under `root`, returning the paths written. */
export async function writeFiles(
  files: Record<string, string>,
  root: string = REPO_ROOT,
): Promise<string[]> {
  const written: string[] = [];
  for (const [path, text] of Object.entries(files)) {
    const full = join(root, path);
    await Deno.mkdir(dirname(full), { recursive: true });
    await Deno.writeTextFile(full, text);
    written.push(path);
  }
  return written;
}

/** Writes every committed generated file under `root`, returning the paths written. */
export function writeGeneratedFiles(root: string = REPO_ROOT): Promise<string[]> {
  return writeFiles(generatedFiles(), root);
}

/** What `--help` prints. */
export const HELP = `Usage: deno task dashboards [--check | --pipeline <module> [--export <name>]]

Writes Grafana dashboards (${DASHBOARDS_DIR}/, provisioned by Grafana) and Prometheus alert
rules (${RULES_DIR}/, loaded by Prometheus) from code.

  (no option)          Write the orders pipeline's dashboard and rules (committed files).
  --check              Write nothing; exit 1 naming the committed files that are stale.
  --pipeline <module>  Derive a dashboard and alert rules from any pipeline: <module> exports
                       a definePipeline() result. Writes ${DASHBOARDS_DIR}/<name>_pipeline.json
                       and ${RULES_DIR}/<name>_pipeline_alerts.yml.
  --export <name>      The export holding the pipeline; default: the module's only export
                       that is a pipeline.
  -h, --help           Show this help.

The dashboard has a node graph of the topology, the pipeline's totals, one row per stage
(throughput, processing latency, latency from traces whose exemplars open the trace in Tempo,
retries by tier, dead letters by error type, lag by partition) and the runtime's health. The
rules: dead letters per stage, growing lag per group, a stage that stopped consuming.`;

/** What the command was asked, parsed from its arguments. */
interface Command {
  readonly mode: "help" | "check" | "orders" | "pipeline";
  readonly module?: string;
  readonly exportName?: string;
}

/** An argument the command does not understand, or one missing its value. */
export class UsageError extends PipelineError {}

function parseArgs(args: readonly string[]): Command {
  let mode: Command["mode"] = "orders";
  let module: string | undefined;
  let exportName: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined || v === "") {
        throw new UsageError(`Cannot run dashboards as '${flag}' needs a value`, { field: flag });
      }
      return v;
    };
    switch (flag) {
      case "-h":
      case "--help":
        return { mode: "help" };
      case "--check":
        mode = "check";
        break;
      case "--pipeline":
        mode = "pipeline";
        module = value();
        break;
      case "--export":
        exportName = value();
        break;
      default:
        throw new UsageError(`Cannot run dashboards with unknown argument "${arg}": see --help`, {
          field: arg,
        });
    }
  }
  if (exportName !== undefined && mode !== "pipeline") {
    throw new UsageError("Cannot use '--export' without '--pipeline'", { field: "--export" });
  }
  return { mode, module, exportName };
}

/** Options of {@linkcode main}. */
export interface MainOptions {
  /**
   * The directory the files are written under (and checked in).
   * @default {REPO_ROOT}
   */
  readonly root?: string;
}

/**
 * Runs the command with `args`, printing to the console; resolves to the exit code.
 *
 * @example
 * ```ts ignore
 * Deno.exit(await main(["--pipeline", "./my_pipeline.ts"]));
 * ```
 */
export async function main(args: readonly string[], options: MainOptions = {}): Promise<number> {
  const { root = REPO_ROOT } = options;
  let command: Command;
  try {
    command = parseArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(error.message);
    return 2;
  }
  switch (command.mode) {
    case "help":
      console.log(HELP);
      return 0;
    case "check": {
      const stale = await staleFiles(root);
      if (stale.length > 0) {
        console.error(
          `Generated files are stale: ${stale.map((p) => `"${p}"`).join(", ")}: ` +
            "run `deno task dashboards`",
        );
        return 1;
      }
      console.log(`Generated files are up to date (dashboard "${DASHBOARD_UID}", alert rules)`);
      return 0;
    }
    case "orders":
      for (const path of await writeGeneratedFiles(root)) console.log(`Wrote ${path}`);
      return 0;
    case "pipeline": {
      let description: PipelineDescription;
      try {
        const found = await loadPipelineModule(command.module!, {
          exportName: command.exportName,
        });
        description = describePipeline(found.pipeline);
      } catch (error) {
        if (!(error instanceof PipelineError)) throw error;
        console.error(error.message);
        return 1;
      }
      for (const path of await writeFiles(pipelineFiles(description), root)) {
        console.log(`Wrote ${path}`);
      }
      return 0;
    }
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
