/**
 * One bench measurement in a process of its own: runs a bench script with Deno and reads the
 * JSON line it prints last. Each variant gets a fresh process so that its CPU time, its peak RSS
 * and its garbage are its own.
 *
 * @module
 */
import { PipelineError } from "../pipeline/errors.ts";

/**
 * Runs `script` (a `file:` URL) as `deno run <permissions> <script> <args>` and returns the
 * JSON of its last stdout line.
 *
 * @throws {PipelineError} naming `what` with the child's stderr when it fails
 */
export async function runBenchChild<T>(
  script: URL,
  permissions: readonly string[],
  args: readonly string[],
  what: string,
): Promise<T> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, script.pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new PipelineError(`Cannot run ${what}: ${decoder.decode(output.stderr).trim()}`);
  }
  const lines = decoder.decode(output.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as T;
}
