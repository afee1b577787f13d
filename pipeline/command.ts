/**
 * What every command of this folder does around its `main`: turn SIGINT/SIGTERM into an abort
 * signal (a second signal exits at once), give it stdout/stderr line writers, and exit with
 * its code.
 *
 * @module
 */

/** Where a command writes. */
export interface CommandIo {
  /** Results (summary lines, `--help`). */
  stdout(line: string): void;
  /** Progress and diagnostics. */
  stderr(line: string): void;
}

/** A command's entry point. */
export type CommandMain = (
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: CommandIo,
  signal: AbortSignal,
) => Promise<number>;

/**
 * Runs `main` as the process's command and exits with its code.
 *
 * @param stopping what to say when the first signal arrives, e.g. "draining"
 */
export async function runCommand(main: CommandMain, stopping: string): Promise<never> {
  const controller = new AbortController();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const name of signals) {
    Deno.addSignalListener(name, () => {
      if (controller.signal.aborted) Deno.exit(130);
      console.error(`${name} received: ${stopping} (again to exit now)`);
      controller.abort(new Error(`${name} received`));
    });
  }
  const code = await main(Deno.args, Deno.env.toObject(), {
    stdout: (line) => console.log(line),
    stderr: (line) => console.error(line),
  }, controller.signal);
  Deno.exit(code);
}
