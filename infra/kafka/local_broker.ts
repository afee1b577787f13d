/**
 * A local single-node Apache Kafka broker (KRaft, combined broker and controller) run as a
 * child process, for machines without Docker: `deno task broker`, `deno task test` and CI.
 *
 * @module
 */

import { join } from "node:path";
import { ConfigError } from "../../pipeline/errors.ts";
import { BrokerDataDirInUseError, BrokerPortInUseError, BrokerStartError } from "./errors.ts";
import { installBroker } from "./install.ts";
import { serverProperties } from "./server_properties.ts";
import {
  addScramArgs,
  createSecureMaterial,
  keytoolBeside,
  readSecureMaterial,
  secureClientEnv,
  secureDir,
} from "./secure.ts";
import type { SecureMaterial } from "./secure.ts";
import { defaultDataDir, LOG4J_CONFIG_FILE, REPO_ROOT } from "./_paths.ts";

/** How many lines of the broker's log and console output a start failure shows. */
const TAIL_LINES = 40;

/** Options of {@linkcode startLocalBroker}. */
export interface LocalBrokerOptions {
  /**
   * Port of the PLAINTEXT listener that clients use, on 127.0.0.1.
   * @default 9092
   */
  readonly port?: number;
  /**
   * Port of the KRaft controller listener, on 127.0.0.1.
   * @default port + 1 (9093 with the default port)
   */
  readonly controllerPort?: number;
  /**
   * The repository root; the jars and the default data folder live under it.
   * @default the repository holding this file
   */
  readonly rootDir?: string;
  /**
   * Where the broker keeps `server.properties`, its partitions and metadata log (`kraft/`)
   * and `broker.log` (WARN and above).
   * @default "<rootDir>/.local/kafka/data"
   */
  readonly dataDir?: string;
  /**
   * Where the broker's jars are (installed there by Maven when missing).
   * @default "<rootDir>/.local/kafka/libs"
   */
  readonly libsDir?: string;
  /**
   * Wipe `dataDir` first: no topics, no offsets, a new cluster id.
   * @default false
   */
  readonly fresh?: boolean;
  /**
   * Add a SASL_SSL listener for clients on `securePort`: a CA and a broker certificate made
   * with the JDK's keytool, and a SCRAM user created when the storage is formatted (all in
   * `<dataDir>/secure/`). The PLAINTEXT listener stays, on loopback, for inter-broker traffic.
   * A data folder formatted without it must be started once with `fresh`.
   * @default false
   */
  readonly secure?: boolean;
  /**
   * Port of the SASL_SSL listener, on 127.0.0.1 (with `secure` only).
   * @default port + 2 (9094 with the default port)
   */
  readonly securePort?: number;
  /**
   * How long an OAUTHBEARER session on the SASL_SSL listener lasts before the client must
   * re-authenticate, in milliseconds (with `secure` only; see `SecureListenerOptions`).
   * @default unset (sessions never expire)
   */
  readonly oauthBearerReauthMs?: number;
  /**
   * What to do when a Kafka broker already answers on `port`: reuse it (the returned
   * handle's `stop()` then leaves it running) instead of throwing
   * {@linkcode BrokerPortInUseError}.
   * @default false
   */
  readonly reuseRunning?: boolean;
  /**
   * How long to wait for the broker to answer `describeCluster()`, in milliseconds.
   * @default 60_000
   */
  readonly readyTimeoutMs?: number;
  /**
   * How long `stop()` waits after SIGTERM before it sends SIGKILL, in milliseconds.
   * @default 30_000
   */
  readonly stopTimeoutMs?: number;
  /**
   * The JVM's maximum heap (`-Xmx`).
   * @default "512m"
   */
  readonly maxHeap?: string;
  /**
   * Receives progress lines and the broker's console output (errors only, see
   * `infra/kafka/log4j2.xml`).
   * @default drops them
   */
  readonly log?: (line: string) => void;
  /**
   * Aborts the start: the broker process, if already spawned, is stopped (SIGTERM, then
   * SIGKILL after `stopTimeoutMs`) and waited for, and the returned promise rejects with
   * `signal.reason` (a `DOMException` named `"AbortError"` unless the caller gave a reason).
   * Once the broker is ready the signal has no effect: use `stop()`. A Maven install under way
   * (first run only) is not interrupted; the abort takes effect when it ends.
   * @default never aborts
   */
  readonly signal?: AbortSignal;
}

/** A running local broker. */
export interface LocalBroker {
  /** The bootstrap address for clients, e.g. `"127.0.0.1:9092"` (the `KAFKA_BROKERS` value). */
  readonly brokers: string;
  /** The Apache Kafka version, e.g. `"4.4.0"` (`"unknown"` for a reused broker). */
  readonly version: string;
  /** The data folder (`server.properties`, `kraft/`, `broker.log`). */
  readonly dataDir: string;
  /** Whether this handle reuses a broker that was already running (and `stop()` leaves it). */
  readonly reused: boolean;
  /** The broker process id, or `undefined` for a reused broker. */
  readonly pid?: number;
  /** The SASL_SSL listener, when started with `secure`. */
  readonly secure?: SecureListener;
  /** Resolves when the broker process exits, with its exit code (never for a reused broker). */
  readonly exited: Promise<number>;
  /**
   * Stops the broker: SIGTERM, then SIGKILL after `stopTimeoutMs`. Resolves once it exited.
   * Calling it again returns the same promise.
   */
  stop(): Promise<void>;
}

/** The SASL_SSL listener of a secure local broker. */
export interface SecureListener {
  /** Its bootstrap address, e.g. `"127.0.0.1:9094"`. */
  readonly brokers: string;
  /**
   * The variables a client needs, `KAFKA_BROKERS` first: `KAFKA_SECURITY_PROTOCOL=SASL_SSL`,
   * `KAFKA_SASL_MECHANISM=SCRAM-SHA-256`, the username and password, and the CA file.
   */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Starts a single-node KRaft broker on 127.0.0.1 and resolves once a client can
 * `describeCluster()`. Installs the jars first when missing (see `installBroker`), formats the
 * data folder on first use, and rejects with {@linkcode BrokerStartError} (holding the tail of
 * the broker's log) when the process exits early or is not ready in time. An aborted
 * `signal` stops the process it spawned and rejects with `signal.reason`.
 *
 * @example
 * ```ts ignore
 * import { startLocalBroker } from "./local_broker.ts";
 * const broker = await startLocalBroker({ port: 19092, fresh: true, log: console.error });
 * console.log(broker.brokers); // "127.0.0.1:19092"
 * await broker.stop();
 * ```
 */
export async function startLocalBroker(options: LocalBrokerOptions = {}): Promise<LocalBroker> {
  const {
    port = 9092,
    controllerPort = port + 1,
    rootDir = REPO_ROOT,
    dataDir = defaultDataDir(rootDir),
    libsDir,
    fresh = false,
    secure = false,
    securePort = port + 2,
    oauthBearerReauthMs,
    reuseRunning = false,
    readyTimeoutMs = 60_000,
    stopTimeoutMs = 30_000,
    maxHeap = "512m",
    log = () => {},
    signal,
  } = options;
  validatePort("port", port);
  validatePort("controllerPort", controllerPort);
  if (secure) {
    validatePort("securePort", securePort);
    if (securePort === port || securePort === controllerPort) {
      throw new ConfigError(
        `Cannot start the local Kafka broker as 'securePort' must differ from 'port' and ` +
          `'controllerPort': current value is ${securePort}`,
        { field: "securePort" },
      );
    }
  }
  if (port === controllerPort) {
    throw new ConfigError(
      `Cannot start the local Kafka broker as 'controllerPort' must differ from 'port': ` +
        `both are ${port}`,
      { field: "controllerPort" },
    );
  }
  validatePositive("readyTimeoutMs", readyTimeoutMs);
  validatePositive("stopTimeoutMs", stopTimeoutMs);
  signal?.throwIfAborted();

  const brokers = `127.0.0.1:${port}`;
  if (await isListening(port)) {
    const runningBroker = await probeBroker(brokers);
    if (runningBroker && reuseRunning) {
      log(`Reusing the Kafka broker already running on ${brokers}`);
      const material = secure ? await readSecureMaterial(dataDir) : undefined;
      if (secure && material === undefined) throw formattedWithoutScram(dataDir);
      return reusedBroker(brokers, dataDir, material && secureListener(securePort, material));
    }
    throw new BrokerPortInUseError({ port, field: "port", runningBroker });
  }
  if (await isListening(controllerPort)) {
    throw new BrokerPortInUseError({
      port: controllerPort,
      field: "controllerPort",
      runningBroker: false,
    });
  }
  if (secure && await isListening(securePort)) {
    throw new BrokerPortInUseError({ port: securePort, field: "securePort", runningBroker: false });
  }

  const { libsDir: classDir, kafkaVersion, java } = await installBroker({ rootDir, libsDir, log });
  signal?.throwIfAborted();
  const pidFile = join(dataDir, "broker.pid");
  const holder = await runningHolder(pidFile);
  if (holder) throw new BrokerDataDirInUseError(dataDir, holder.pid, holder.brokers);
  if (fresh) await Deno.remove(dataDir, { recursive: true }).catch(ignoreNotFound);
  const logDir = join(dataDir, "kraft");
  await Deno.mkdir(logDir, { recursive: true });
  const formatted = await exists(join(logDir, "meta.properties"));
  let material: SecureMaterial | undefined;
  if (secure) {
    // The SCRAM user can only be added when the storage is formatted: new material goes with a
    // new format, and a folder formatted without it cannot be made secure later.
    material = formatted
      ? await readSecureMaterial(dataDir)
      : await createSecureMaterial(dataDir, keytoolBeside(java));
    if (material === undefined) throw formattedWithoutScram(dataDir);
    log(`TLS material and SCRAM user in ${secureDir(dataDir)}`);
  }
  const propertiesFile = join(dataDir, "server.properties");
  await Deno.writeTextFile(
    propertiesFile,
    serverProperties({
      port,
      controllerPort,
      logDir,
      secure: material && {
        port: securePort,
        keystoreFile: material.keystoreFile,
        keystorePassword: material.keystorePassword,
        username: material.username,
        password: material.password,
        oauthBearerReauthMs,
      },
    }),
  );
  const logFile = join(dataDir, "broker.log");
  const jvmArgs = [
    `-Dlog4j2.configurationFile=${LOG4J_CONFIG_FILE}`,
    `-Dkafka.logs.dir=${dataDir}`,
    "-cp",
    join(classDir, "*"),
  ];

  if (!formatted) {
    log(`Formatting ${logDir}`);
    const format = await new Deno.Command(java, {
      args: [
        ...jvmArgs,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        randomClusterId(),
        "-c",
        propertiesFile,
        "-g",
        ...(material === undefined ? [] : addScramArgs(material)),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // Deno sends the storage tool SIGTERM on abort; `output()` then resolves.
      signal,
    }).output();
    signal?.throwIfAborted();
    if (!format.success) {
      const output = new TextDecoder().decode(format.stdout) +
        new TextDecoder().decode(format.stderr);
      throw new BrokerStartError(
        `Cannot format the local Kafka broker's data folder "${logDir}": ` +
          `the storage tool exited with code ${format.code}`,
        lastLines(output, TAIL_LINES),
      );
    }
  }

  signal?.throwIfAborted();
  const child = new Deno.Command(java, {
    args: [`-Xmx${maxHeap}`, ...jvmArgs, "kafka.Kafka", propertiesFile],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await Deno.writeTextFile(pidFile, `${child.pid} ${brokers}\n`);
  const consoleTail: string[] = [];
  const onLine = (line: string) => {
    consoleTail.push(line);
    if (consoleTail.length > TAIL_LINES) consoleTail.shift();
    // A JVM interrupted while it starts (Ctrl-C reaches it too) prints stack traces that
    // say nothing useful about an abort the caller asked for.
    if (!signal?.aborted) log(`kafka: ${line}`);
  };
  const pumps = Promise.all([pumpLines(child.stdout, onLine), pumpLines(child.stderr, onLine)]);
  let hasExited = false;
  const exited = child.status.then(async (status) => {
    hasExited = true;
    await pumps;
    return status.code;
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async function stopLocalBroker() {
      if (!hasExited) child.kill("SIGTERM");
      const deadline = timeout(stopTimeoutMs);
      const inTime = await Promise.race([exited.then(() => true), deadline.promise]);
      deadline.cancel();
      if (!inTime && !hasExited) {
        log(`Kafka did not stop within ${stopTimeoutMs} ms; killing it`);
        child.kill("SIGKILL");
      }
      await exited;
      await removePidFile(pidFile, child.pid);
    })();
    return stopping;
  };

  const failure = async (message: string): Promise<BrokerStartError> => {
    const tail = [await readTail(logFile, TAIL_LINES), consoleTail.join("\n")]
      .filter((part) => part.trim() !== "")
      .join("\n");
    return new BrokerStartError(`${message} (log: ${logFile})`, tail);
  };

  // Settles once `signal` aborts; raced against every wait below so an abort during a
  // 60 s start is acted on at once.
  const aborted = Promise.withResolvers<"aborted">();
  const onAbort = () => aborted.resolve("aborted");
  signal?.addEventListener("abort", onAbort, { once: true });
  log(`Starting Kafka ${kafkaVersion} on ${brokers}`);
  try {
    const deadline = Date.now() + readyTimeoutMs;
    while (true) {
      signal?.throwIfAborted();
      const probe = probeBroker(brokers);
      const ready = await Promise.race([probe, aborted.promise]);
      if (ready === "aborted") {
        log(`Start of Kafka on ${brokers} aborted; stopping it`);
        // Stopping the broker first makes the probe under way fail fast.
        await stop();
        await probe;
        signal?.throwIfAborted();
      }
      if (ready === true) break;
      if (hasExited) {
        throw await failure(
          `Cannot start the local Kafka broker on ${brokers}: it exited with code ${await exited}`,
        );
      }
      if (Date.now() >= deadline) {
        throw await failure(
          `Cannot start the local Kafka broker on ${brokers}: not ready within ` +
            `${readyTimeoutMs} ms`,
        );
      }
      const pause = timeout(250);
      await Promise.race([pause.promise, exited, aborted.promise]);
      pause.cancel();
    }
  } catch (error) {
    if (signal?.aborted && stopping === undefined) {
      log(`Start of Kafka on ${brokers} aborted; stopping it`);
    }
    await stop();
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }

  return {
    brokers,
    version: kafkaVersion,
    dataDir,
    reused: false,
    pid: child.pid,
    secure: material && secureListener(securePort, material),
    exited,
    stop,
  };
}

/**
 * Whether a Kafka broker answers `describeCluster()` at `brokers` within `timeoutMs`.
 * Connection failures and timeouts give `false`; nothing is retried.
 *
 * @example
 * ```ts ignore
 * import { probeBroker } from "./local_broker.ts";
 * console.log(await probeBroker("127.0.0.1:9092")); // true while `deno task broker` runs
 * ```
 */
export async function probeBroker(brokers: string, timeoutMs = 2_000): Promise<boolean> {
  // Imported here, not at the top: kafkajs reads the environment when it loads, and modules
  // that only build a broker's configuration must load without that permission.
  const { Kafka, KafkaJSError, logLevel } = (await import("kafkajs")).default;
  const kafka = new Kafka({
    clientId: "local-broker-probe",
    brokers: brokers.split(","),
    connectionTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0;
  } catch (error) {
    if (error instanceof KafkaJSError) return false;
    throw error;
  } finally {
    await admin.disconnect();
  }
}

/**
 * The broker recorded in a data folder's pid file, if it still answers at its address. Two
 * brokers on one folder would fight over its metadata log; Kafka's own lock catches that only
 * after the second one has begun to start. (Reading /proc would need --allow-all in Deno.)
 */
async function runningHolder(
  pidFile: string,
): Promise<{ pid: number; brokers: string } | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(pidFile);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const [pidText, brokers = ""] = text.trim().split(" ");
  const pid = Number(pidText);
  const port = Number(brokers.split(":").at(-1));
  if (!Number.isInteger(pid) || !Number.isInteger(port) || port < 1 || port > 65_535) {
    return undefined;
  }
  return (await isListening(port)) && (await probeBroker(brokers)) ? { pid, brokers } : undefined;
}

async function removePidFile(pidFile: string, pid: number): Promise<void> {
  try {
    const text = await Deno.readTextFile(pidFile);
    if (text.startsWith(`${pid} `)) await Deno.remove(pidFile);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function reusedBroker(
  brokers: string,
  dataDir: string,
  secure: SecureListener | undefined,
): LocalBroker {
  return {
    brokers,
    version: "unknown",
    dataDir,
    reused: true,
    secure,
    exited: new Promise<number>(() => {}),
    stop: () => Promise.resolve(),
  };
}

function secureListener(port: number, material: SecureMaterial): SecureListener {
  const brokers = `127.0.0.1:${port}`;
  return { brokers, env: secureClientEnv(brokers, material) };
}

function formattedWithoutScram(dataDir: string): ConfigError {
  return new ConfigError(
    `Cannot start the local Kafka broker with 'secure' as its data folder "${dataDir}" was ` +
      `formatted without the SCRAM user, which can only be added when formatting: start it ` +
      `once with 'fresh' (--fresh), which wipes its topics`,
    { field: "secure" },
  );
}

function validatePort(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > 65_535) {
    throw new ConfigError(
      `Cannot start the local Kafka broker as '${field}' must be an integer from 1 to 65535: ` +
        `current value is ${value}`,
      { field },
    );
  }
}

function validatePositive(field: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new ConfigError(
      `Cannot start the local Kafka broker as '${field}' must be a positive number: ` +
        `current value is ${value}`,
      { field },
    );
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export async function isListening(port: number): Promise<boolean> {
  try {
    const connection = await Deno.connect({ hostname: "127.0.0.1", port });
    connection.close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return false;
    throw error;
  }
}

/** A Kafka cluster id: 16 random bytes, base64url without padding, not starting with "-". */
function randomClusterId(): string {
  while (true) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    const id = btoa(String.fromCharCode(...bytes))
      .replaceAll("+", "-")
      .replaceAll("/", "_")
      .replace(/=+$/, "");
    if (!id.startsWith("-")) return id;
  }
}

async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (line.trim() !== "") onLine(line);
  }
  if (pending.trim() !== "") onLine(pending);
}

async function readTail(file: string, count: number): Promise<string> {
  try {
    return lastLines(await Deno.readTextFile(file), count);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split("\n").slice(-count).join("\n");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}

/** A cancellable timer used as a deadline (never as synchronisation). */
function timeout(ms: number): { promise: Promise<false>; cancel(): void } {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<false>((resolve) => {
    id = setTimeout(() => resolve(false), ms);
  });
  return { promise, cancel: () => clearTimeout(id) };
}
