/**
 * The services under test as operating-system processes: commands read from `deno.json`'s
 * tasks (so the suite drives exactly what `deno task <name>` runs, yet holds the real process,
 * not the task runner, and its SIGKILL lands), a clean environment, output kept in a log file
 * and a short tail for the report.
 *
 * @module
 */
import { join } from "node:path";
import { ChaosError } from "./errors.ts";

/** A task's command, to be run with this Deno. */
export interface TaskCommand {
  /** The task's name in `deno.json`. */
  readonly task: string;
  /** The arguments after `deno`, e.g. `["run", "--allow-net", "stages/payment_service.ts"]`. */
  readonly args: readonly string[];
}

/**
 * The command of `deno task <task>`, or `undefined` when the task does not exist. A task that
 * is more than one `deno run` (shell operators) cannot be held as one process and is refused.
 */
export async function taskCommand(
  rootDir: string,
  task: string,
): Promise<TaskCommand | undefined> {
  const config = JSON.parse(await Deno.readTextFile(join(rootDir, "deno.json"))) as {
    tasks?: Record<string, string | { command?: string }>;
  };
  const entry = config.tasks?.[task];
  const line = typeof entry === "string" ? entry : entry?.command;
  if (line === undefined) return undefined;
  const words = line.trim().split(/\s+/);
  if (
    words[0] !== "deno" || words[1] !== "run" || words.some((w) => /^(&&|\|\||\||;|>)$/.test(w))
  ) {
    throw new ChaosError(
      `Cannot run task "${task}" as one process as it is not a single 'deno run': current value is "${line}"`,
      { field: `tasks.${task}` },
    );
  }
  return { task, args: words.slice(1) };
}

/** Variables a child keeps from the suite's environment; the rest is set per service. */
// KAFKA_CLIENT and LOG_LEVEL too: the services run on the client the suite was started with,
// logging at its level.
const KEPT =
  /^(PATH|HOME|USER|TMPDIR|TMP|TEMP|LANG|LC_\w+|NO_COLOR|DENO_DIR|XDG_\w+|CI|KAFKA_CLIENT|LOG_LEVEL)$/;

/** A service process. */
export interface ServiceProcess {
  /** Its name in the report, e.g. `payments#1`. */
  readonly name: string;
  /** Its process id. */
  readonly pid: number;
  /** Resolves with the exit code (128 + signal number when a signal ended it). */
  readonly exited: Promise<number>;
  /** Sends `signal` unless it has exited. */
  kill(signal: Deno.Signal): void;
  /** The last lines of its stderr. */
  tail(): string;
}

/** Options of {@linkcode spawnService}. */
export interface SpawnServiceOptions {
  /** The repository root (the working directory). */
  readonly rootDir: string;
  /** The variables of this service (added to a clean environment). */
  readonly env: Readonly<Record<string, string>>;
  /**
   * Extra arguments after the task's own.
   * @default []
   */
  readonly args?: readonly string[];
  /**
   * A file that receives its stdout and stderr.
   * @default none
   */
  readonly logFile?: string;
}

/** Starts `command` as the process `name`. */
export function spawnService(
  command: TaskCommand,
  name: string,
  options: SpawnServiceOptions,
): ServiceProcess {
  const { rootDir, env, args = [], logFile } = options;
  const childEnv: Record<string, string> = {};
  for (const [key, value] of Object.entries(Deno.env.toObject())) {
    if (KEPT.test(key)) childEnv[key] = value;
  }
  Object.assign(childEnv, env);
  const child = new Deno.Command(Deno.execPath(), {
    args: [...command.args, ...args],
    cwd: rootDir,
    env: childEnv,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let tail = "";
  const file = logFile === undefined
    ? undefined
    : Deno.openSync(logFile, { append: true, create: true });
  const pump = async (stream: ReadableStream<Uint8Array>, keep: boolean) => {
    for await (const chunk of stream) {
      file?.writeSync(chunk);
      if (keep) tail = (tail + new TextDecoder().decode(chunk)).slice(-4096);
    }
  };
  const pumped = Promise.all([pump(child.stdout, false), pump(child.stderr, true)]);
  const exited = child.status.then(async (status) => {
    await pumped.catch(() => undefined);
    file?.close();
    return status.signal === null ? status.code : 128 + signalNumber(status.signal);
  });
  let done = false;
  exited.then(() => done = true);
  return {
    name,
    pid: child.pid,
    exited,
    kill(signal) {
      if (done) return;
      try {
        child.kill(signal);
      } catch (error) {
        // The process ended between the check and the signal: nothing left to stop.
        if (!(error instanceof TypeError)) throw error;
      }
    },
    tail: () => tail,
  };
}

function signalNumber(signal: Deno.Signal): number {
  return ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 } as Record<string, number>)[signal] ?? 0;
}

/** Sends SIGTERM, waits `graceMs`, then SIGKILLs; resolves with the exit code. */
export async function stopService(service: ServiceProcess, graceMs: number): Promise<number> {
  service.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), graceMs));
  const first = await Promise.race([service.exited, late]);
  clearTimeout(timer);
  if (first !== "late") return first;
  service.kill("SIGKILL");
  await service.exited;
  return 137;
}
