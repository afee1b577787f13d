/**
 * `deno task broker`: installs (first run only) and runs the local single-node Kafka broker
 * in the foreground until Ctrl-C. `--install-only` gathers the jars and exits (CI uses it).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ConfigError, PipelineError } from "../../pipeline/errors.ts";
import { installBroker } from "./install.ts";
import { dropTimeoutNegativeWarnings } from "./kafkajs_warning.ts";
import { type LocalBroker, type LocalBrokerOptions, startLocalBroker } from "./local_broker.ts";
import { defaultDataDir, displayPath, REPO_ROOT } from "./_paths.ts";

const USAGE = `Run a local single-node Apache Kafka broker (KRaft) on 127.0.0.1.

Usage: deno task broker [options]

Options:
  --port <n>             client (PLAINTEXT) port                  [default: 9092]
  --controller-port <n>  KRaft controller port                    [default: port + 1]
  --fresh                wipe the data folder first (no topics, no offsets)
  --secure               add a SASL_SSL listener (SCRAM-SHA-256/512, PLAIN) with a local CA;
                         once ready, prints the client's variables as NAME=value lines
  --secure-port <n>      SASL_SSL port                            [default: port + 2]
  --install-only         gather the broker's jars with Maven, then exit
  -h, --help             show this help

Needs java (17+) and, for the first run, mvn. Jars: .local/kafka/libs; data and broker.log
(WARN and above): .local/kafka/data. Stop with Ctrl-C (SIGINT) or SIGTERM (exit code 0; during the start, the broker process is
stopped too and the exit code is 130 or 143).`;

/** Conventional exit codes (128 + signal number) for a run ended by a signal. */
const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

/** The signals that stop the launcher. */
type StopSignal = keyof typeof SIGNAL_EXIT_CODES;

/** Parses the flags, runs the broker until a signal, and returns the exit code. */
async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string" },
      "controller-port": { type: "string" },
      fresh: { type: "boolean", default: false },
      secure: { type: "boolean", default: false },
      "secure-port": { type: "string" },
      "install-only": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const log = (line: string) => console.error(line);

  if (values["install-only"]) {
    const { kafkaVersion, libsDir, installed } = await installBroker({ log });
    if (!installed) {
      console.log(`Kafka ${kafkaVersion} already installed in ${displayPath(libsDir, REPO_ROOT)}`);
    }
    return 0;
  }

  const port = parsePort("--port", values.port);
  const controllerPort = parsePort("--controller-port", values["controller-port"]);
  const securePort = parsePort("--secure-port", values["secure-port"]);
  if (securePort !== undefined && !values.secure) {
    throw new ConfigError("Cannot use '--secure-port' without '--secure'", {
      field: "--secure-port",
    });
  }

  // Listening from before the start: a signal while the broker starts (up to a minute) must
  // stop the JVM too, not leave it holding its ports after Deno exits.
  const signalled = Promise.withResolvers<StopSignal>();
  const startAbort = new AbortController();
  const signals: StopSignal[] = ["SIGINT", "SIGTERM"];
  const handlers = signals.map((signal) => {
    const handler = () => {
      signalled.resolve(signal);
      startAbort.abort();
    };
    Deno.addSignalListener(signal, handler);
    return { signal, handler };
  });
  try {
    return await runBroker(
      { port, controllerPort, securePort, secure: values.secure, fresh: values.fresh, log },
      signalled.promise,
      startAbort.signal,
    );
  } finally {
    for (const { signal, handler } of handlers) Deno.removeSignalListener(signal, handler);
  }
}

/** Starts the broker and runs it until `signalled` settles or it exits; returns the exit code. */
async function runBroker(
  options: Pick<
    LocalBrokerOptions,
    "port" | "controllerPort" | "securePort" | "secure" | "fresh" | "log"
  >,
  signalled: Promise<StopSignal>,
  abortStart: AbortSignal,
): Promise<number> {
  let broker: LocalBroker;
  try {
    broker = await startLocalBroker({ ...options, signal: abortStart });
  } catch (error) {
    // Whatever the start failed with (the abort, or a Maven install the signal killed too),
    // a signal during the start ends the launcher as that signal would have.
    if (!abortStart.aborted) throw error;
    const signal = await signalled;
    console.error(`Kafka start aborted (${signal})`);
    return SIGNAL_EXIT_CODES[signal];
  }
  const dataDir = displayPath(defaultDataDir(REPO_ROOT), REPO_ROOT);
  console.log(
    `Kafka ${broker.version} ready on ${broker.brokers} (data: ${dataDir}); Ctrl-C to stop`,
  );
  if (broker.secure !== undefined) {
    console.error(`SASL_SSL listener on ${broker.secure.brokers}; a client needs:`);
    // One NAME=value line each on stdout, so `deno task broker --secure > vars` keeps them.
    for (const [name, value] of Object.entries(broker.secure.env)) {
      console.log(`${name}=${value}`);
    }
  }

  const outcome = await Promise.race([
    signalled.then((signal) => ({ signal })),
    broker.exited.then((code) => ({ code })),
  ]);

  if ("code" in outcome) {
    console.error(
      `Kafka exited on its own with code ${outcome.code}; see ${dataDir}/broker.log`,
    );
    return outcome.code === 0 ? 1 : outcome.code;
  }
  console.error(`Stopping Kafka (${outcome.signal})...`);
  await broker.stop();
  console.error("Kafka stopped");
  return 0;
}

function parsePort(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new ConfigError(
      `Cannot use '${flag}' as it must be an integer from 1 to 65535: current value is "${value}"`,
      { field: flag },
    );
  }
  return port;
}

if (import.meta.main) {
  dropTimeoutNegativeWarnings();
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    // Errors the launcher knows (missing java/mvn, port taken, start failure) are reported as
    // one clear message; anything else keeps its stack.
    if (error instanceof PipelineError) {
      console.error(`error: ${error.message}`);
      Deno.exit(1);
    }
    if (error instanceof TypeError && "code" in error) {
      // node:util parseArgs reports unknown flags as a TypeError with an ERR_PARSE_ARGS_* code.
      console.error(`error: ${error.message}\n\n${USAGE}`);
      Deno.exit(2);
    }
    throw error;
  }
}
