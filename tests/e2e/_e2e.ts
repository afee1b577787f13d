/**
 * Helpers of the end-to-end observability tests: run the real pipeline command
 * (`stages/main.ts`, what `deno task pipeline` runs) as a child process with a bounded
 * deadline, and register tests that need external tools (the Collector, Prometheus) so they
 * are ignored with the reason on a developer's machine and fail under CI (`CI=true`).
 *
 * @module
 */

import { PipelineError } from "../../pipeline/errors.ts";
import { IN_CI, spawnPipeline } from "../_pipeline_process.ts";
import type { PipelineSummary } from "../_pipeline_process.ts";
import { findExecutable, OTELCOL_BINARY } from "../_observability.ts";
import { granted, requires, type TestPermission } from "../_permissions.ts";

export { IN_CI } from "../_pipeline_process.ts";
export type { PipelineSummary } from "../_pipeline_process.ts";

/** What a pipeline run left behind. */
export interface PipelineRun {
  /** The exit code. */
  readonly code: number;
  /** The parsed `{"summary":...}` line, when printed. */
  readonly summary?: PipelineSummary;
  /** The last part of stdout. */
  readonly stdout: string;
  /** The last part of stderr (progress lines, telemetry diagnostics). */
  readonly stderr: string;
}

/** Options of {@linkcode runPipeline}. */
export interface RunPipelineOptions {
  /**
   * Variables set for the child on top of the inherited environment, which loses every
   * `OTEL_*` variable, `KAFKA_BROKERS` (the embedded transport keeps the run deterministic)
   * and `RUST_BACKTRACE`.
   * @default {}
   */
  env?: Record<string, string>;
  /**
   * Kill the child (SIGKILL) and fail after this long.
   * @default 60000
   */
  timeoutMs?: number;
}

/**
 * Runs `deno run -A stages/main.ts ...args` from the repository root and resolves when it
 * exits; rejects when it is still running at the deadline (after killing it).
 *
 * @example
 * ```ts ignore
 * const run = await runPipeline(["--max-orders", "10", "--rate", "0"], {
 *   env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint },
 * });
 * assert.equal(run.code, 0, run.stderr);
 * ```
 */
export async function runPipeline(
  args: readonly string[],
  options: RunPipelineOptions = {},
): Promise<PipelineRun> {
  const { env = {}, timeoutMs = 60_000 } = options;
  const child = spawnPipeline(args, env);
  try {
    const { code, summary } = await child.exited(timeoutMs);
    return { code, summary, stdout: child.stdout(), stderr: child.stderr() };
  } finally {
    await child.stop();
  }
}

/** An external tool a test needs. */
export interface NeededTool {
  /** A name on `PATH`, or a path. */
  readonly name: string;
  /** How to get it, for the skip reason and the CI failure. */
  readonly hint: string;
}

/**
 * What an end-to-end test needs: it runs tools and the pipeline command, serves on loopback
 * and reads what they wrote. Spread `requires(...E2E_PERMISSIONS)` into its definition.
 */
export const E2E_PERMISSIONS: readonly TestPermission[] = ["env", "read", "write", "run", "net"];

/**
 * The tools among `tools` that cannot be found, as `"name" (hint)` strings. Without the
 * permission to read `PATH` and the file system none can be looked up, and none is reported.
 */
export async function missingTools(tools: readonly NeededTool[]): Promise<string[]> {
  const missing: string[] = [];
  if (!granted("env", "read")) return missing;
  for (const tool of tools) {
    if (await findExecutable(tool.name) === undefined) {
      missing.push(`"${tool.name}" (${tool.hint})`);
    }
  }
  return missing;
}

/**
 * Registers a test that needs `tools`: run when all are there; when some are missing it is
 * ignored with the reason in its name, or, under CI, registered as a failing test. Without the
 * permissions an end-to-end test needs (plain `deno test`) it is ignored.
 *
 * @example
 * ```ts ignore
 * await toolTest("metrics reach Prometheus", [PROMETHEUS], async () => { ... });
 * ```
 */
export async function toolTest(
  name: string,
  tools: readonly NeededTool[],
  fn: () => Promise<void>,
): Promise<void> {
  if (requires(...E2E_PERMISSIONS).ignore) {
    Deno.test({ name, ignore: true, fn });
    return;
  }
  const missing = await missingTools(tools);
  if (missing.length === 0) {
    Deno.test({ name, fn, sanitizeResources: true, sanitizeOps: true });
  } else if (IN_CI) {
    Deno.test(name, () => {
      throw new PipelineError(`Cannot run under CI: missing ${missing.join(", ")}`);
    });
  } else {
    Deno.test({ name: `${name} [ignored: missing ${missing.join(", ")}]`, ignore: true, fn });
  }
}

/** The Collector built from Go modules. */
export const OTELCOL_TOOL: NeededTool = {
  name: OTELCOL_BINARY,
  hint: "infra/tools/build_otelcol.sh builds it",
};

/** Debian's Prometheus. */
export const PROMETHEUS_TOOL: NeededTool = {
  name: "prometheus",
  hint: "apt-get install prometheus, or infra/tools/install_tools.sh",
};
