/**
 * The echo pipeline as a user's module for `deno task run`: one exported `definePipeline`
 * result, its topics named by `ECHO_PREFIX`.
 *
 * @module
 */
import type { Pipeline } from "../../pipeline/definition.ts";
import { createEchoPipeline } from "./_echo_pipeline.ts";

/** The echo pipeline over the `ECHO_PREFIX` topics. */
export const echo: Pipeline = createEchoPipeline({ prefix: Deno.env.get("ECHO_PREFIX") });
