/**
 * Writes the generated dashboard JSON and the Prometheus rules file from their TypeScript
 * sources, byte for byte the same on every run.
 *
 * ```sh
 * deno task dashboards           # write the files
 * deno task dashboards --check   # exit 1, naming stale files, without writing
 * ```
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderAlertRules, RULES_FILE } from "./alerts.ts";
import { DASHBOARD_UID, ordersPipelineDashboard } from "./orders_pipeline.ts";

/** Where the generated dashboard JSON lives, relative to the repository root. */
export const DASHBOARD_FILE = "dashboards/generated/orders_pipeline.json";

/** Recursively sorts object keys so the JSON does not depend on builder call order. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

/** Renders the dashboard's JSON: sorted keys, two-space indent, final newline. */
export function renderDashboardJson(): string {
  return JSON.stringify(sortKeys(ordersPipelineDashboard()), null, 2) + "\n";
}

/**
 * Every generated file, path (relative to the repository root) to content.
 *
 * @example
 * ```ts
 * for (const [path, text] of Object.entries(generatedFiles())) console.log(path, text.length);
 * ```
 */
export function generatedFiles(): Record<string, string> {
  return {
    [DASHBOARD_FILE]: renderDashboardJson(),
    [RULES_FILE]: renderAlertRules(),
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

/** Writes every generated file under `root`, returning the paths written. */
export async function writeGeneratedFiles(root: string = REPO_ROOT): Promise<string[]> {
  const written: string[] = [];
  for (const [path, text] of Object.entries(generatedFiles())) {
    const full = join(root, path);
    await Deno.mkdir(dirname(full), { recursive: true });
    await Deno.writeTextFile(full, text);
    written.push(path);
  }
  return written;
}

async function main(args: string[]): Promise<number> {
  if (args.includes("--check")) {
    const stale = await staleFiles();
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
  for (const path of await writeGeneratedFiles()) console.log(`Wrote ${path}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
