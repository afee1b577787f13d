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

/** A bench script running in its own process, read a line at a time. */
export interface BenchChild {
  /** The child's stdout, a line at a time, until it closes. */
  readonly lines: AsyncIterable<string>;
  /** Resolves when the child exits; rejects naming `what`, with its stderr, when it failed. */
  readonly finished: Promise<void>;
  /** Ends the child (when its parent gives up on it). */
  kill(): void;
}

/**
 * Starts `script` (a `file:` URL) as `deno run <permissions> <script> <args>`, for a child that
 * reports as it goes (one JSON line at a time) rather than once at the end.
 */
export function spawnBenchChild(
  script: URL,
  permissions: readonly string[],
  args: readonly string[],
  what: string,
): BenchChild {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, script.pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  async function* lines() {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      yield* parts.filter((line) => line.trim() !== "");
    }
    if (rest.trim() !== "") yield rest;
  }
  const finished = child.status.then(async (status) => {
    if (!status.success) throw new PipelineError(`Cannot run ${what}: ${(await stderr).trim()}`);
  });
  return {
    lines: lines(),
    finished,
    kill() {
      try {
        child.kill();
      } catch {
        // Already gone.
      }
    },
  };
}
