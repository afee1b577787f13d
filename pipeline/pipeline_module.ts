/**
 * Loading a pipeline from a module, the one way the supervisor, its workers and
 * `deno task run` do it: the module exports either a `definePipeline` result or a factory
 * `(options) => Pipeline` that builds one (handlers cannot be posted to a worker, so each
 * worker imports the module itself).
 *
 * @example
 * ```ts ignore
 * import { loadPipelineModule } from "./pipeline_module.ts";
 * const pipeline = await loadPipelineModule({ module: "file:///srv/my_pipeline.ts", export: "pipeline" });
 * ```
 *
 * @module
 */
import type { Pipeline } from "./definition.ts";
import { ConfigError } from "./errors.ts";
import type { PipelineModuleSpec } from "./supervisor/_protocol.ts";

/** Whether `value` looks like a `definePipeline` result. */
export function isPipeline(value: unknown): value is Pipeline {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Partial<Record<keyof Pipeline, unknown>>;
  return typeof candidate.name === "string" && Array.isArray(candidate.stages) &&
    Array.isArray(candidate.topics) && typeof candidate.stage === "function";
}

async function importModule(module: string): Promise<Record<string, unknown>> {
  try {
    return await import(module);
  } catch (error) {
    throw new ConfigError(`Cannot import pipeline module "${module}"`, {
      field: "pipeline.module",
      cause: error,
    });
  }
}

/**
 * The name of the export of `module` that holds a pipeline: the only `definePipeline` result it
 * exports.
 *
 * @throws {ConfigError} when the module cannot be imported, or exports no pipeline or several
 */
export async function findPipelineExport(module: string): Promise<string> {
  const loaded = await importModule(module);
  const names = Object.keys(loaded).filter((name) => isPipeline(loaded[name]));
  if (names.length !== 1) {
    throw new ConfigError(
      `Cannot run module "${module}" as it must export exactly one definePipeline result: ` +
        (names.length === 0
          ? "it exports none"
          : `it exports ${names.map((n) => `"${n}"`).join(", ")}; choose one with --export`),
      { field: "pipeline.export" },
    );
  }
  return names[0];
}

/**
 * Imports `spec.module` and returns its pipeline: the export itself when it is a pipeline, or
 * what the exported factory returns for `spec.options`.
 *
 * @throws {ConfigError} when the module cannot be imported or the export is neither
 */
export async function loadPipelineModule(spec: PipelineModuleSpec): Promise<Pipeline> {
  const loaded = await importModule(spec.module);
  const exported = loaded[spec.export];
  if (isPipeline(exported)) return exported;
  if (typeof exported === "function") {
    const built = await exported(spec.options);
    if (isPipeline(built)) return built;
  }
  throw new ConfigError(
    `Cannot build pipeline as module "${spec.module}" exports no pipeline or pipeline factory ` +
      `named "${spec.export}"`,
    { field: "pipeline.export" },
  );
}
