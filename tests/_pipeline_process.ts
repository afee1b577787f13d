/**
 * The real pipeline command (`stages/main.ts`, what `deno task pipeline` runs) as a child
 * process: a clean environment, output kept (bounded), progress and summary parsed, a deadline
 * on the exit. Shared by the integration and end-to-end tests.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PipelineError } from "../pipeline/errors.ts";
import { granted } from "./_permissions.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname;
const MAIN = join(REPO_ROOT, "stages", "main.ts");
const OUTPUT_LIMIT = 256 * 1024;

/**
 * Whether this run is CI's, where missing tools are a failure rather than a reason to skip.
 * A test process that may not read the environment (plain `deno test`) is not CI's run.
 */
export const IN_CI: boolean = granted("env") && Deno.env.get("CI") === "true";

/** The summary line the pipeline command prints last on stdout. */
export interface PipelineSummary {
  readonly generated: number;
  readonly published: number;
  readonly paid: number;
  readonly dead_lettered: number;
  readonly retries: number;
  readonly duplicates_skipped: number;
}

/** One progress line's counts: `[  1.0s] generated 10 | paid 8 | ... | dead-lettered 1 | ...`. */
export interface Progress {
  readonly generated: number;
  readonly paid: number;
  readonly deadLettered: number;
}

/** A pipeline command running as a child process. */
export interface PipelineProcess {
  /** The child's pid. */
  readonly pid: number;
  /** stdout so far (the last 256 KiB). */
  stdout(): string;
  /** stderr so far (the last 256 KiB). */
  stderr(): string;
  /** The last progress line's counts, if one was printed. */
  progress(): Progress | undefined;
  /** Sends a signal (e.g. SIGTERM for a graceful drain). */
  kill(signal: Deno.Signal): void;
  /**
   * Waits for the exit within `timeoutMs` (killing the child and rejecting after it) and
   * returns the exit code and the parsed summary.
   */
  exited(timeoutMs: number): Promise<{ code: number; summary?: PipelineSummary }>;
  /**
   * Like {@linkcode exited}, and asserts the run exited 0 and printed its summary line
   * (failing with the end of stderr or stdout); returns the summary.
   */
  succeeded(timeoutMs: number): Promise<PipelineSummary>;
  /** Kills the child if it still runs and waits for it: for `finally`. */
  stop(): Promise<void>;
}

const PROGRESS = /generated (\d+) \| paid (\d+) \| .*?dead-lettered (\d+)/g;

/**
 * Starts `deno run -A stages/main.ts ...args` from the repository root with `env` on top of
 * the inherited environment (less `OTEL_*`, `KAFKA_BROKERS`, the security variables
 * `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_*`, and `RUST_BACKTRACE`).
 */
export function spawnPipeline(
  args: readonly string[],
  env: Record<string, string>,
): PipelineProcess {
  const childEnv = Deno.env.toObject();
  for (const name of Object.keys(childEnv)) {
    if (
      name.startsWith("OTEL_") || name === "KAFKA_BROKERS" || name === "RUST_BACKTRACE" ||
      name === "KAFKA_SECURITY_PROTOCOL" || name.startsWith("KAFKA_SASL_") ||
      name.startsWith("KAFKA_SSL_")
    ) {
      delete childEnv[name];
    }
  }
  Object.assign(childEnv, env);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: REPO_ROOT,
    env: childEnv,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stdout = "";
  let stderr = "";
  const keep = async (stream: ReadableStream<Uint8Array>, into: (text: string) => void) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) into(text);
  };
  const drained = Promise.all([
    keep(child.stdout, (t) => stdout = (stdout + t).slice(-OUTPUT_LIMIT)),
    keep(child.stderr, (t) => stderr = (stderr + t).slice(-OUTPUT_LIMIT)),
  ]);
  let exitedAlready = false;
  const status = child.status.then((s) => {
    exitedAlready = true;
    return s;
  });
  const args_ = args.join(" ");

  return {
    pid: child.pid,
    stdout: () => stdout,
    stderr: () => stderr,
    progress(): Progress | undefined {
      const matches = [...stderr.matchAll(PROGRESS)];
      const last = matches.at(-1);
      if (last === undefined) return undefined;
      return { generated: +last[1], paid: +last[2], deadLettered: +last[3] };
    },
    kill(signal: Deno.Signal): void {
      if (!exitedAlready) child.kill(signal);
    },
    async exited(timeoutMs: number) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), timeoutMs);
      });
      try {
        const first = await Promise.race([status, late]);
        if (first === "late") {
          child.kill("SIGKILL");
          await status;
          await drained;
          throw new PipelineError(
            `Pipeline run "${args_}" did not exit within ${timeoutMs} ms: last stderr:\n` +
              stderr.slice(-4000),
          );
        }
        await drained;
        const line = stdout.trim().split("\n").reverse().find((l) => l.startsWith('{"summary"'));
        const summary = line === undefined
          ? undefined
          : (JSON.parse(line) as { summary: PipelineSummary }).summary;
        return { code: first.code, summary };
      } finally {
        clearTimeout(timer);
      }
    },
    async succeeded(timeoutMs: number): Promise<PipelineSummary> {
      const { code, summary } = await this.exited(timeoutMs);
      assert.equal(code, 0, stderr.slice(-4000));
      assert.ok(summary, `no summary line in stdout: ${stdout.slice(-2000)}`);
      return summary;
    },
    async stop(): Promise<void> {
      if (!exitedAlready) child.kill("SIGKILL");
      await status;
      await drained;
    },
  };
}
