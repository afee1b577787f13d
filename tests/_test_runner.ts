/**
 * `deno task test`: provides a Kafka broker, then runs `deno test --allow-all <args> tests/`.
 *
 * - `KAFKA_BROKERS` set: the tests use that broker.
 * - Otherwise, with `java` and `mvn` on the PATH: starts the local broker (infra/kafka) on a
 *   free loopback port pair with a fresh data folder `.local/kafka/test-<pid>`, passes its
 *   address as `KAFKA_BROKERS`, and stops it and removes the folder afterwards.
 * - Otherwise: broker tests are reported as ignored (`PIPELINE_BROKER_TESTS=off`); under CI
 *   (`CI=true`) the run fails instead.
 *
 * Extra arguments go to `deno test` (e.g. `deno task test --filter kafka`); when one of them is
 * an existing path, it replaces the default `tests/`. Exits with `deno test`'s exit code.
 *
 * SIGINT and SIGTERM are handled from the start: during the broker's start they abort it (the
 * JVM is stopped, the data folder removed, no tests run); during the tests they are forwarded
 * to `deno test`, and the broker is stopped once it exited. The exit code is then 130 (SIGINT)
 * or 143 (SIGTERM).
 *
 * @module
 */

import { join } from "node:path";
import { PipelineError } from "../pipeline/errors.ts";
import {
  dropTimeoutNegativeWarnings,
  type LocalBroker,
  MissingToolError,
  startLocalBroker,
} from "../infra/kafka/mod.ts";
import { freeLoopbackPorts } from "./_ports.ts";

const REPO_ROOT = join(import.meta.dirname ?? ".", "..");
const NO_TOOLS_REASON = "no KAFKA_BROKERS and no java/mvn to run the local broker";

/** Conventional exit codes (128 + signal number) for a run ended by a signal. */
const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

/** The signals that stop a run. */
type StopSignal = keyof typeof SIGNAL_EXIT_CODES;

/** Runs the tests with a broker and returns the exit code. */
async function main(args: string[]): Promise<number> {
  const inCi = Deno.env.get("CI") === "true";
  const env = Deno.env.toObject();
  // Deno errors end in a long backtrace block when this is set (see ENVIRONMENT.md).
  delete env.RUST_BACKTRACE;

  // Listening from before the broker starts (up to a minute): a signal then aborts the start,
  // so the JVM and `.local/kafka/test-<pid>` do not outlive us. Ctrl-C reaches the whole
  // process group; SIGTERM (e.g. a CI timeout) may reach only us, so it is forwarded to the
  // tests. Either way the tests stop first, then the broker.
  let received: StopSignal | undefined;
  const interrupt = new AbortController();
  let child: Deno.ChildProcess | undefined;
  let childExited = false;
  const signals: StopSignal[] = ["SIGINT", "SIGTERM"];
  const handlers = signals.map((signal) => {
    const handler = () => {
      received ??= signal;
      interrupt.abort();
      if (child && !childExited) child.kill(signal);
    };
    Deno.addSignalListener(signal, handler);
    return { signal, handler };
  });

  let broker: LocalBroker | undefined;
  let dataDir: string | undefined;
  try {
    let missingBroker: string | undefined;
    if (env.KAFKA_BROKERS?.trim()) {
      console.error(`Kafka broker tests use KAFKA_BROKERS=${env.KAFKA_BROKERS}`);
    } else {
      dataDir = join(REPO_ROOT, ".local", "kafka", `test-${Deno.pid}`);
      try {
        const [port, controllerPort] = freeLoopbackPorts(2);
        broker = await startLocalBroker({
          port,
          controllerPort,
          dataDir,
          fresh: true,
          log: (line) => console.error(line),
          signal: interrupt.signal,
        });
        env.KAFKA_BROKERS = broker.brokers;
        console.error(`Kafka ${broker.version} ready on ${broker.brokers} for the broker tests`);
      } catch (error) {
        await removeDir(dataDir);
        if (received !== undefined) {
          console.error(`Kafka start aborted (${received}); no tests run`);
          return SIGNAL_EXIT_CODES[received];
        }
        if (!(error instanceof PipelineError)) throw error;
        missingBroker = error instanceof MissingToolError
          ? NO_TOOLS_REASON
          : `the local broker did not start: ${error.message}`;
        if (inCi) {
          console.error(`error: Kafka broker tests cannot run under CI: ${missingBroker}`);
        } else {
          console.error(`Kafka broker tests will be reported as ignored: ${missingBroker}`);
        }
        env.PIPELINE_BROKER_TESTS = "off";
        env.PIPELINE_BROKER_TESTS_REASON = missingBroker;
      }
    }

    const hasPath = await Promise.all(args.filter((a) => !a.startsWith("-")).map(pathExists));
    // A signal after the broker was ready but before the tests began: no tests run.
    if (received !== undefined) return SIGNAL_EXIT_CODES[received];
    const testArgs = [
      "test",
      "--allow-all",
      ...args,
      ...(hasPath.includes(true) ? [] : ["tests/"]),
    ];
    child = new Deno.Command(Deno.execPath(), {
      args: testArgs,
      cwd: REPO_ROOT,
      env,
      clearEnv: true,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const status = await child.status;
    childExited = true;
    // The tests may catch the signal and exit with a code of their own; the run still ends
    // as the signal would have ended it.
    if (received !== undefined) return SIGNAL_EXIT_CODES[received];
    if (missingBroker !== undefined && inCi) {
      console.error(`error: failing the run: no Kafka broker under CI: ${missingBroker}`);
      return status.code === 0 ? 1 : status.code;
    }
    return status.signal === null ? status.code : 128 + signalNumber(status.signal);
  } finally {
    childExited = true;
    if (broker) {
      await broker.stop();
      console.error(`Kafka on ${broker.brokers} stopped`);
      if (dataDir) await removeDir(dataDir);
    }
    for (const { signal, handler } of handlers) Deno.removeSignalListener(signal, handler);
  }
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(join(REPO_ROOT, path));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function removeDir(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function signalNumber(signal: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 1;
}

if (import.meta.main) {
  dropTimeoutNegativeWarnings();
  Deno.exit(await main(Deno.args));
}
