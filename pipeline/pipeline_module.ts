/**
 * Finds the pipeline a user's module defines: the commands that take `--pipeline
 * ./my_pipeline.ts` import the module and pick one export that {@linkcode definePipeline}
 * made.
 *
 * Which export: the one named by `exportName` (`--export name`) when given; otherwise the
 * module's only pipeline export, whatever its name (`export const pipeline = definePipeline(...)`
 * or `export default`-free named exports alike). A module with several pipeline exports must
 * name one; a module with none is refused with the exports it has.
 *
 * @example
 * ```ts ignore
 * import { loadPipelineModule } from "./pipeline_module.ts";
 * const { pipeline, exportName } = await loadPipelineModule("./my_pipeline.ts");
 * ```
 *
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isPipeline, type Pipeline } from "./definition.ts";
import { ConfigError } from "./errors.ts";

/** Options of {@linkcode findPipelineExport} and {@linkcode loadPipelineModule}. */
export interface PipelineExportOptions {
  /**
   * The export holding the pipeline.
   * @default {the module's only export that is a pipeline}
   */
  readonly exportName?: string;
  /**
   * How the module is named in error messages.
   * @default {"the module"}
   */
  readonly moduleName?: string;
}

/** A pipeline found in a module. */
export interface FoundPipeline {
  /** The pipeline. */
  readonly pipeline: Pipeline;
  /** The export it was found under. */
  readonly exportName: string;
}

/**
 * Picks the pipeline out of a module's exports; see the module doc for the rule.
 *
 * @throws {ConfigError} with `field` `"--export"` when the named export is missing or not a
 * pipeline, or when there is no pipeline export or more than one and none is named.
 *
 * @example
 * ```ts
 * import { definePipeline } from "./definition.ts";
 * import { findPipelineExport } from "./pipeline_module.ts";
 * import { z } from "zod";
 * const N = z.object({ n: z.number() });
 * const pipeline = definePipeline({
 *   name: "demo",
 *   topics: [{ name: "in", partitions: 1, schema: N }, { name: "in.dlq", partitions: 1, deadLetter: true }],
 *   sources: [{ name: "feed", output: "in", schema: N }],
 *   stages: [],
 * });
 * findPipelineExport({ pipeline, other: 1 }).exportName; // "pipeline"
 * ```
 */
export function findPipelineExport(
  exports: Readonly<Record<string, unknown>>,
  options: PipelineExportOptions = {},
): FoundPipeline {
  const { exportName, moduleName = "the module" } = options;
  const names = Object.keys(exports).sort();
  if (exportName !== undefined) {
    if (!(exportName in exports)) {
      throw new ConfigError(
        `Cannot find export "${exportName}" in ${moduleName}: its exports are ${list(names)}`,
        { field: "--export" },
      );
    }
    const value = exports[exportName];
    if (!isPipeline(value)) {
      throw new ConfigError(
        `Cannot use export "${exportName}" of ${moduleName} as a pipeline: it is not a ` +
          "definePipeline() result",
        { field: "--export" },
      );
    }
    return { pipeline: value, exportName };
  }
  const found = names.filter((name) => isPipeline(exports[name]));
  if (found.length === 1) return { pipeline: exports[found[0]] as Pipeline, exportName: found[0] };
  if (found.length === 0) {
    throw new ConfigError(
      `Cannot find a pipeline in ${moduleName}: no export is a definePipeline() result ` +
        `(its exports are ${list(names)})`,
      { field: "--export" },
    );
  }
  throw new ConfigError(
    `Cannot choose a pipeline in ${moduleName}: exports ${list(found)} are all pipelines: ` +
      "name one with --export",
    { field: "--export" },
  );
}

function list(names: readonly string[]): string {
  return names.length === 0 ? "none" : names.map((n) => `"${n}"`).join(", ");
}

/**
 * Imports the module at `path` (relative to the working directory, or a URL) and finds its
 * pipeline with {@linkcode findPipelineExport}.
 *
 * @throws {ConfigError} with `field` `"--pipeline"` when the module cannot be imported (its
 * `cause` says why), and as {@linkcode findPipelineExport} does.
 */
export async function loadPipelineModule(
  path: string,
  options: Omit<PipelineExportOptions, "moduleName"> = {},
): Promise<FoundPipeline> {
  const url = /^[a-z][a-z0-9+.-]*:/i.test(path) && !/^[a-z]:[\\/]/i.test(path)
    ? path
    : pathToFileURL(resolve(path)).href;
  let exports: Record<string, unknown>;
  try {
    exports = await import(url);
  } catch (error) {
    throw new ConfigError(
      `Cannot import pipeline module "${path}": ${
        error instanceof Error ? error.message : String(error)
      }`,
      { field: "--pipeline", cause: error },
    );
  }
  return findPipelineExport(exports, { ...options, moduleName: `"${path}"` });
}
