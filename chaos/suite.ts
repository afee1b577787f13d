/**
 * The fault suite (issue 8, part 7): orders at a fixed rate through the payment service's
 * processes on a real broker while it SIGKILLs them, kills and restarts the broker, adds and
 * removes group members and writes every kind of poison from an independent client; then it
 * asks outside witnesses (kcat reading the broker, the gateway's ledger, the group's committed
 * offsets) whether every promise held. See {@linkcode runChaos}.
 *
 * The suite drives only command-line and HTTP interfaces (`deno.json` tasks, environment
 * variables, the gateway's ledger JSON), so it keeps working as the pieces behind them change;
 * a piece that does not exist yet is reported as `not available: <why>`, never passed silently.
 *
 * @module
 */
import { join } from "node:path";
import { dropTimeoutNegativeWarnings, startLocalBroker } from "../infra/kafka/mod.ts";
import type { LocalBroker } from "../infra/kafka/mod.ts";
import { connectCluster } from "./_cluster.ts";
import { produceRecord, readTopic, startStream } from "./_kcat.ts";
import type { KcatTarget } from "./_kcat.ts";
import { spawnService, stopService, taskCommand } from "./_services.ts";
import type { ServiceProcess, TaskCommand } from "./_services.ts";
import { ChaosError } from "./errors.ts";
import { orderJson, poisonRecords } from "./poison.ts";
import type { PoisonKind, PoisonRecord } from "./poison.ts";
import { verify } from "./verify.ts";
import type { ChaosCheck, Guarantee, Ledger, ServiceExit, Unavailable } from "./verify.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname;

/** What the suite did, one kind per row of the report. */
export const ACTION_KINDS = [
  "kill",
  "restart",
  "broker-kill",
  "broker-restart",
  "member-add",
  "member-remove",
  "poison",
  "unexpected-exit",
] as const;

/** One kind of action. */
export type ActionKind = typeof ACTION_KINDS[number];

/** One thing the suite did to the system under test. */
export interface ChaosAction {
  /** Milliseconds since the run of this mode started. */
  readonly atMs: number;
  /** What it was. */
  readonly kind: ActionKind;
  /** Which process, how long, which record. */
  readonly detail: string;
}

/** The outcome of one guarantee's run. */
export interface ModeReport {
  /** The guarantee. */
  readonly guarantee: Guarantee;
  /** How the pieces were run (commands, gateway, broker), or why the mode could not run. */
  readonly setup: readonly string[];
  /** What the suite did. */
  readonly actions: readonly ChaosAction[];
  /** What it found. */
  readonly checks: readonly ChaosCheck[];
  /** How long the mode took, in seconds. */
  readonly seconds: number;
}

/** The outcome of a whole run. */
export interface ChaosReport {
  /** The seed (equal seeds, equal orders, poison and schedule). */
  readonly seed: number;
  /** One report per guarantee asked for. */
  readonly modes: readonly ModeReport[];
  /** Whether no check failed (checks that were not available do not fail it). */
  readonly passed: boolean;
}

/** Options of {@linkcode runChaos}. */
export interface ChaosOptions {
  /**
   * Orders to publish per guarantee.
   * @default 20_000
   */
  readonly orders?: number;
  /**
   * Orders published per second (a fixed rate).
   * @default 200
   */
  readonly rate?: number;
  /**
   * Payment workers (consumer group members) in total, at least 2.
   * @default 2
   */
  readonly workers?: number;
  /**
   * Payment service processes the workers are spread over (the units a SIGKILL takes down).
   * @default 2
   */
  readonly processes?: number;
  /**
   * SIGKILLs of payment service processes per guarantee (each is restarted).
   * @default 10
   */
  readonly kills?: number;
  /**
   * Broker kills (SIGKILL) and restarts per guarantee; only with the suite's own broker.
   * @default 1
   */
  readonly brokerRestarts?: number;
  /**
   * The guarantees to run, one after the other.
   * @default ["at_least_once", "exactly_once"]
   */
  readonly guarantees?: readonly Guarantee[];
  /**
   * Seed of the orders, the poison, the schedule and the victims.
   * @default a fresh one, printed
   */
  readonly seed?: number;
  /**
   * Bootstrap brokers to use; the broker is then not the suite's to restart.
   * @default a local broker started on free loopback ports for the run
   */
  readonly brokers?: string;
  /**
   * Partitions of the input topic.
   * @default 6
   */
  readonly partitions?: number;
  /**
   * Probability that one gateway charge request answers 503.
   * @default 0.2
   */
  readonly failureRate?: number;
  /**
   * How long the services may take to give every order its outcome after the last one is
   * published, in milliseconds.
   * @default 240_000
   */
  readonly drainTimeoutMs?: number;
  /**
   * The kcat executable.
   * @default "kcat"
   */
  readonly kcat?: string;
  /**
   * The repository whose `deno.json` tasks are run.
   * @default this repository
   */
  readonly rootDir?: string;
  /**
   * Where the services' output and the broker's data go.
   * @default "<rootDir>/.local/chaos/<seed>"
   */
  readonly workDir?: string;
  /**
   * Receives progress lines.
   * @default drops them
   */
  readonly log?: (line: string) => void;
  /**
   * Ends the run early: every process the suite started is killed and the run rejects.
   * @default never
   */
  readonly signal?: AbortSignal;
}

interface Settings {
  readonly orders: number;
  readonly rate: number;
  readonly workers: number;
  readonly processes: number;
  readonly kills: number;
  readonly brokerRestarts: number;
  readonly seed: number;
  readonly partitions: number;
  readonly failureRate: number;
  readonly drainTimeoutMs: number;
  readonly kcat: string;
  readonly rootDir: string;
  readonly workDir: string;
  readonly log: (line: string) => void;
  readonly signal: AbortSignal;
}

/** Which commands implement the services on this checkout, or why one is missing. */
interface Commands {
  readonly payments: TaskCommand;
  /** Whether `payments` is the all-in-one pipeline command (no `deno task payments` yet). */
  readonly paymentsFallback: boolean;
  readonly gateway: TaskCommand | Unavailable;
  readonly exactlyOnce: true | Unavailable;
}

/** A broker the suite can kill and restart, or one it was given. */
interface BrokerHandle {
  readonly brokers: string;
  current?: LocalBroker;
  restart?: () => Promise<LocalBroker>;
  readonly notOwned?: string;
}

function validate(options: ChaosOptions): Settings {
  const {
    orders = 20_000,
    rate = 200,
    workers = 2,
    processes = 2,
    kills = 10,
    brokerRestarts = 1,
    seed = Math.floor(Math.random() * 2 ** 31),
    partitions = 6,
    failureRate = 0.2,
    drainTimeoutMs = 240_000,
    kcat = "kcat",
    rootDir = REPO_ROOT,
    log = () => {},
    signal = new AbortController().signal,
  } = options;
  const integer = (name: string, value: number, min: number) => {
    if (!Number.isInteger(value) || value < min) {
      throw new ChaosError(
        `Cannot run the fault suite as '${name}' must be an integer of at least ${min}: current value is ${value}`,
        { field: name },
      );
    }
  };
  integer("orders", orders, 10);
  integer("workers", workers, 2);
  integer("processes", processes, 1);
  integer("kills", kills, 0);
  integer("brokerRestarts", brokerRestarts, 0);
  integer("partitions", partitions, 1);
  integer("seed", seed, 0);
  if (processes > workers) {
    throw new ChaosError(
      `Cannot run the fault suite as 'processes' must not exceed 'workers' (${workers}): current value is ${processes}`,
      { field: "processes" },
    );
  }
  if (!(rate > 0)) {
    throw new ChaosError(
      `Cannot run the fault suite as 'rate' must be a positive number: current value is ${rate}`,
      { field: "rate" },
    );
  }
  if (!(failureRate >= 0 && failureRate < 1)) {
    throw new ChaosError(
      `Cannot run the fault suite as 'failureRate' must be in [0, 1): current value is ${failureRate}`,
      { field: "failureRate" },
    );
  }
  const workDir = options.workDir ?? join(rootDir, ".local", "chaos", String(seed));
  return {
    orders,
    rate,
    workers,
    processes,
    kills,
    brokerRestarts,
    seed,
    partitions,
    failureRate,
    drainTimeoutMs,
    kcat,
    rootDir,
    workDir,
    log,
    signal,
  };
}

/**
 * Runs the fault suite once per guarantee and judges each run from outside witnesses.
 * Throws {@linkcode ChaosError} only when the suite itself cannot proceed (no kcat, no
 * broker); a broken guarantee is a failed check in the report.
 *
 * @example
 * ```ts ignore
 * import { runChaos } from "./suite.ts";
 * const report = await runChaos({ orders: 300, rate: 30, kills: 2, log: console.error });
 * console.log(report.passed);
 * ```
 */
export async function runChaos(options: ChaosOptions = {}): Promise<ChaosReport> {
  const settings = validate(options);
  const { log, seed } = settings;
  aborted = settings.signal;
  dropTimeoutNegativeWarnings();
  const guarantees = options.guarantees ?? ["at_least_once", "exactly_once"];
  await Deno.mkdir(settings.workDir, { recursive: true });
  log(`fault suite: seed ${seed}, work folder ${settings.workDir}`);
  const commands = await findCommands(settings);
  const broker = await openBroker(options.brokers, settings);
  const modes: ModeReport[] = [];
  try {
    for (const guarantee of guarantees) {
      if (guarantee === "exactly_once" && commands.exactlyOnce !== true) {
        modes.push({
          guarantee,
          setup: [`not available: ${commands.exactlyOnce.unavailable}`],
          actions: [],
          checks: [{
            check: "exactly-once mode",
            status: "not available",
            detail: commands.exactlyOnce.unavailable,
          }],
          seconds: 0,
        });
        log(`${guarantee}: not available: ${commands.exactlyOnce.unavailable}`);
        continue;
      }
      modes.push(await runMode(guarantee, settings, commands, broker));
    }
  } finally {
    await broker.current?.stop();
  }
  const passed = modes.every((mode) => mode.checks.every((check) => check.status !== "fail"));
  return { seed, modes, passed };
}

async function findCommands(settings: Settings): Promise<Commands> {
  const { rootDir } = settings;
  const services = await taskCommand(rootDir, "payments");
  const payments = services ?? await taskCommand(rootDir, "pipeline");
  if (payments === undefined) {
    throw new ChaosError(
      `Cannot run the fault suite as deno.json has no task "payments" or "pipeline"`,
      {
        field: "tasks",
      },
    );
  }
  const gateway = await taskCommand(rootDir, "gateway") ?? {
    unavailable:
      `no 'deno task gateway' on this checkout (issue 8 part 4): no ledger to witness charges`,
  };
  const help = await new Deno.Command(Deno.execPath(), {
    args: [...payments.args, "--help"],
    cwd: rootDir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const text = new TextDecoder().decode(help.stdout);
  const exactlyOnce = text.includes("PROCESSING_GUARANTEE") ? true as const : {
    unavailable: `'deno task ${payments.task} --help' lists no PROCESSING_GUARANTEE ` +
      `(issue 8 part 3, exactly-once mode, is not on this checkout)`,
  };
  return { payments, paymentsFallback: services === undefined, gateway, exactlyOnce };
}

async function openBroker(given: string | undefined, settings: Settings): Promise<BrokerHandle> {
  if (given !== undefined) {
    return { brokers: given, notOwned: `the broker ${given} is given, not the suite's to restart` };
  }
  const [port, controllerPort] = freePorts(2);
  const dataDir = join(settings.workDir, "broker");
  const consoleLog = join(settings.workDir, "broker-console.log");
  const start = (fresh: boolean) =>
    startLocalBroker({
      port,
      controllerPort,
      dataDir,
      fresh,
      rootDir: settings.rootDir,
      readyTimeoutMs: 300_000,
      signal: settings.signal,
      log: (line) => Deno.writeTextFileSync(consoleLog, `${line}\n`, { append: true }),
    });
  const handle: BrokerHandle = {
    brokers: `127.0.0.1:${port}`,
    restart: () => start(false),
  };
  handle.current = await start(true);
  settings.log(`broker ${handle.current.version} on ${handle.brokers} (${dataDir})`);
  return handle;
}

function freePorts(count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((listener) => (listener.addr as Deno.NetAddr).port);
  for (const listener of listeners) listener.close();
  return ports;
}

/** A seeded generator of numbers in [0, 1) (mulberry32). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** The run's abort signal, for {@linkcode sleep}. */
let aborted: AbortSignal = new AbortController().signal;

/** Waits `ms`; rejects at once when the run is aborted. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (aborted.aborted) {
      reject(new ChaosError("Cannot go on with the fault suite as it was aborted"));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new ChaosError("Cannot go on with the fault suite as it was aborted"));
    };
    const timer = setTimeout(() => {
      aborted.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    aborted.addEventListener("abort", onAbort, { once: true });
  });
}

/** Polls `condition` every `everyMs` until it holds or `timeoutMs` passes; returns whether it held. */
async function poll(
  condition: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 500,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (aborted.aborted) break;
    if (await condition().catch(() => false)) return true;
    await sleep(everyMs);
  }
  return false;
}

/** One payment service process slot: restarted after each kill. */
interface Slot {
  readonly name: string;
  readonly workers: number;
  process?: ServiceProcess;
  /** Whether the suite stopped it on purpose (kill, removal, final stop). */
  expected: boolean;
  starts: number;
  unexpectedExits: number;
}

/** A process that exits on its own more often than this is not restarted again. */
const MAX_UNEXPECTED_EXITS = 30;

/** The least time between two faults, in milliseconds. */
const EVENT_GAP_MS = 5000;

async function runMode(
  guarantee: Guarantee,
  settings: Settings,
  commands: Commands,
  broker: BrokerHandle,
): Promise<ModeReport> {
  const { log, seed, rate, orders: orderCount } = settings;
  const started = Date.now();
  const short = guarantee === "exactly_once" ? "eos" : "alo";
  const base = `chaos-${seed}-${short}`;
  const names = {
    orders: `${base}.orders`,
    payments: `${base}.payments`,
    dlq: `${base}.dlq`,
    retry: [`${base}.orders.retry.1`, `${base}.orders.retry.2`],
    group: `${base}-payment-service`,
  };
  const random = seededRandom(seed ^ (guarantee === "exactly_once" ? 0x5eed : 0));
  const actions: ChaosAction[] = [];
  const act = (kind: ActionKind, detail: string) => {
    const atMs = Date.now() - started;
    actions.push({ atMs, kind, detail });
    log(`[${(atMs / 1000).toFixed(1).padStart(6)}s] ${short}: ${kind} ${detail}`);
  };
  const say = (line: string) =>
    log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${short}: ${line}`);
  const target: KcatTarget = { kcat: settings.kcat, brokers: broker.brokers };
  const cluster = connectCluster(broker.brokers);
  const setup: string[] = [];
  const slots: Slot[] = [];
  let gateway: ServiceProcess | undefined;
  let stopping = false;
  try {
    await cluster.createTopic(names.orders, settings.partitions);

    // The gateway, when this checkout has one: its ledger is the witness of charges.
    const gatewayEnv: Record<string, string> = {};
    let gatewayUrl: string | undefined;
    if ("unavailable" in commands.gateway) {
      setup.push(`gateway: not available: ${commands.gateway.unavailable}`);
    } else {
      const [port] = freePorts(1);
      gatewayUrl = `http://127.0.0.1:${port}`;
      gateway = spawnService(commands.gateway, "gateway", {
        rootDir: settings.rootDir,
        env: {
          GATEWAY_PORT: String(port),
          GATEWAY_HOST: "127.0.0.1",
          GATEWAY_FAILURE_RATE: String(settings.failureRate),
          GATEWAY_SEED: String(seed),
        },
        logFile: join(settings.workDir, `${short}-gateway.log`),
      });
      const up = await poll(async () => (await fetch(`${gatewayUrl}/livez`).then(async (r) => {
        await r.body?.cancel();
        return r.ok;
      })), 60_000);
      if (!up) {
        throw new ChaosError(`Cannot start the gateway within 60000 ms: ${gateway.tail()}`);
      }
      gatewayEnv.GATEWAY_URL = gatewayUrl;
      setup.push(
        `gateway: 'deno task gateway' on ${gatewayUrl}, failure rate ${settings.failureRate}`,
      );
    }

    // The payment service processes.
    // Retry tiers in both modes: in exactly-once mode their copies commit in the transactions.
    const retryPolicy = "tiered";
    const serviceEnv = (slot: Slot): Record<string, string> => ({
      KAFKA_BROKERS: broker.brokers,
      ORDERS_TOPIC: names.orders,
      PAYMENTS_TOPIC: names.payments,
      DLQ_TOPIC: names.dlq,
      GROUP_ID: names.group,
      ORDERS_PARTITIONS: String(settings.partitions),
      PAYMENT_WORKERS: String(slot.workers),
      RETRY_POLICY: retryPolicy,
      PAYMENT_FAILURE_RATE: String(settings.failureRate),
      PAYMENT_LATENCY_MS: "0",
      STOP_GRACE_SECONDS: "15",
      LOG_LEVEL: "warning",
      // A fresh seed per start: the pipeline fallback generates an order with it.
      SEED: String((seed * 131 + slots.indexOf(slot) * 1009 + slot.starts) % 2 ** 31),
      ...(commands.paymentsFallback ? { ORDER_RATE: "0.0001" } : {}),
      ...(commands.exactlyOnce === true ? { PROCESSING_GUARANTEE: guarantee } : {}),
      ...gatewayEnv,
    });
    const spawn = (slot: Slot) => {
      slot.starts++;
      slot.expected = false;
      const process = spawnService(commands.payments, slot.name, {
        rootDir: settings.rootDir,
        env: serviceEnv(slot),
        logFile: join(settings.workDir, `${short}-${slot.name.replace("#", "-")}.log`),
      });
      slot.process = process;
      process.exited.then((code) => {
        if (slot.process !== process || slot.expected || stopping) return;
        act(
          "unexpected-exit",
          `${slot.name} (pid ${process.pid}) exited ${code}: ${
            process.tail().slice(-300).replaceAll("\n", " ")
          }`,
        );
        slot.expected = true;
        slot.unexpectedExits++;
        if (slot.unexpectedExits > MAX_UNEXPECTED_EXITS) {
          act(
            "unexpected-exit",
            `${slot.name} not restarted: it exited ${slot.unexpectedExits} times`,
          );
          return;
        }
        // As an orchestrator would: restart, backing off (a service may refuse to start while
        // the broker is down).
        sleep(Math.min(10_000, 500 * 2 ** slot.unexpectedExits)).then(() => {
          if (!stopping && slot.process === process) {
            spawn(slot);
            act("restart", `${slot.name} after its unexpected exit (pid ${slot.process.pid})`);
          }
        }, () => {/* the run was aborted: the final clean-up kills what is left */});
      });
    };
    for (let i = 0; i < settings.processes; i++) {
      const workers = Math.floor(settings.workers / settings.processes) +
        (i < settings.workers % settings.processes ? 1 : 0);
      const slot: Slot = {
        name: `payments#${i + 1}`,
        workers,
        expected: false,
        starts: 0,
        unexpectedExits: 0,
      };
      slots.push(slot);
      spawn(slot);
    }
    setup.push(
      `payment service: 'deno task ${commands.payments.task}' x${settings.processes} ` +
        `(${settings.workers} workers in group ${names.group}), RETRY_POLICY=${retryPolicy}` +
        (commands.paymentsFallback
          ? ` (fallback: no 'deno task payments' on this checkout; each start of the pipeline ` +
            `command also publishes one order of its own, counted like the others)`
          : "") +
        (commands.exactlyOnce === true ? `, PROCESSING_GUARANTEE=${guarantee}` : "") +
        `, KAFKA_CLIENT=${Deno.env.get("KAFKA_CLIENT") ?? "(default)"}`,
    );
    setup.push(
      broker.notOwned !== undefined
        ? `broker: ${broker.brokers} (${broker.notOwned})`
        : `broker: local Apache Kafka on ${broker.brokers}, killed and restarted by the suite`,
    );
    setup.push(
      `publisher: kcat (idempotent, acks=all) at ${rate}/s to ${names.orders} ` +
        `(${settings.partitions} partitions)`,
    );
    const joined = await poll(
      async () => (await cluster.members(names.group)) >= settings.workers,
      180_000,
      1000,
    );
    say(
      joined
        ? `group ${names.group} has its ${settings.workers} members`
        : `group ${names.group} is not stable with ${settings.workers} members after 180 s; going on`,
    );

    // The orders, and the schedule of faults laid over their publication.
    const prefix = base;
    const orderId = (i: number) => `${prefix}-${String(i).padStart(6, "0")}`;
    const sent: string[] = [];
    const durationMs = (orderCount / rate) * 1000;
    const poison = poisonRecords({
      prefix,
      laterOrderIds: [
        orderId(Math.floor(orderCount * 0.9)),
        orderId(Math.floor(orderCount * 0.9) + 1),
      ],
      now: Date.now(),
    });
    const poisonWritten: PoisonRecord[] = [];
    const poisonNotWritten: Partial<Record<PoisonKind, string>> = {};

    // The poison goes in on its own schedule, beside the faults; the orders whose keys or ids
    // it borrows are held back until it is on the broker, so they really come later.
    const laterIndex = Math.floor(orderCount * 0.9);
    const stream = startStream(target, names.orders);
    const publishStart = Date.now();
    const writingPoison = (async () => {
      await sleep(durationMs * 0.15);
      for (const record of poison) {
        const topic = record.target === "input" ? names.orders : names.retry[0];
        // The broker may be down (restarted) for minutes on a loaded machine.
        if (record.target === "retry" && !(await poll(() => cluster.hasTopic(topic), 300_000))) {
          poisonNotWritten[record.kind] = `the retry topic ${topic} does not exist ` +
            `(RETRY_POLICY=tiered made none within 300 s)`;
          say(`poison ${record.kind}: not available: ${poisonNotWritten[record.kind]}`);
          continue;
        }
        // kcat gives up on a broker that is down; try again until it is back (bounded).
        let failure: unknown;
        const giveUpAt = Date.now() + 400_000;
        for (let attempt = 1; Date.now() < giveUpAt; attempt++) {
          try {
            await produceRecord(target, topic, record.message);
            failure = undefined;
            break;
          } catch (error) {
            if (!(error instanceof ChaosError)) throw error;
            failure = error;
            say(`poison ${record.kind}: kcat failed (attempt ${attempt}), trying again`);
            await sleep(Math.min(20_000, 2000 * attempt));
          }
        }
        if (failure !== undefined) {
          poisonNotWritten[record.kind] = `kcat could not write it: ${(failure as Error).message}`;
          say(`poison ${record.kind}: not written: ${(failure as Error).message}`);
          continue;
        }
        poisonWritten.push(record);
        act("poison", `${record.kind} to ${topic}: ${record.description}`);
      }
    })();
    // Awaited below; marked handled so a failure surfaces there, not as an unhandled rejection.
    writingPoison.catch(() => {});
    const publishing = (async () => {
      for (let i = 0; i < orderCount; i++) {
        if (i === laterIndex) await writingPoison;
        const due = publishStart + (i * 1000) / rate;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        const id = orderId(i);
        await stream.send(id, orderJson(id, i, new Date().toISOString()));
        sent.push(id);
      }
    })();
    publishing.catch(() => {});
    const progress = setInterval(() => {
      say(`published ${sent.length}/${orderCount}`);
    }, 5000);

    type Event = { atMs: number; run: () => Promise<void> };
    const events: Event[] = [];
    let extra: Slot | undefined;
    events.push({
      atMs: durationMs * 0.25,
      run: () => {
        extra = {
          name: "payments#extra",
          workers: 1,
          expected: false,
          starts: 0,
          unexpectedExits: 0,
        };
        slots.push(extra);
        spawn(extra);
        act("member-add", `${extra.name} (pid ${extra.process!.pid}, 1 worker) joins the group`);
        return Promise.resolve();
      },
    });
    events.push({
      atMs: durationMs * 0.6,
      run: async () => {
        if (extra?.process === undefined) return;
        extra.expected = true;
        const code = await stopService(extra.process, 30_000);
        act("member-remove", `${extra.name} left the group (SIGTERM, exit ${code})`);
        slots.splice(slots.indexOf(extra), 1);
      },
    });
    for (let k = 0; k < settings.brokerRestarts; k++) {
      events.push({
        atMs: durationMs * (0.4 + (0.3 * k) / Math.max(1, settings.brokerRestarts)),
        run: async () => {
          if (broker.current?.pid === undefined || broker.restart === undefined) return;
          const downAt = Date.now();
          Deno.kill(broker.current.pid, "SIGKILL");
          await broker.current.exited;
          act("broker-kill", `SIGKILL to the broker (pid ${broker.current.pid})`);
          await sleep(2000 + random() * 3000);
          // A killed KRaft node recovers slowly on a loaded machine: a start that is not ready
          // in time is stopped and tried once more before the run gives up.
          broker.current = await broker.restart().catch((error) => {
            say(`broker restart failed, trying once more: ${(error as Error).message}`);
            return broker.restart!();
          });
          act(
            "broker-restart",
            `broker back on ${broker.brokers} after ${
              ((Date.now() - downAt) / 1000).toFixed(1)
            } s down`,
          );
        },
      });
    }
    for (let k = 0; k < settings.kills; k++) {
      events.push({
        atMs: durationMs * ((k + 0.5) / settings.kills) * 0.95,
        run: async () => {
          const victims = slots.filter((s) => s !== extra && s.process !== undefined);
          const slot = victims[Math.floor(random() * victims.length)];
          const process = slot.process!;
          slot.expected = true;
          process.kill("SIGKILL");
          const code = await process.exited;
          act(
            "kill",
            `SIGKILL to ${slot.name} (pid ${process.pid}, ${slot.workers} workers, exit ${code})`,
          );
          await sleep(500 + random() * 2500);
          spawn(slot);
          act("restart", `${slot.name} (pid ${slot.process!.pid})`);
        },
      });
    }
    if (broker.notOwned !== undefined && settings.brokerRestarts > 0) {
      setup.push(`broker restart: not available: ${broker.notOwned}`);
    }
    events.sort((a, b) => a.atMs - b.atMs);
    let lastEnd = 0;
    for (const event of events) {
      // Events delayed by a slow one (a broker restart) keep a gap, so a restarted process
      // gets a moment before the next fault.
      const wait = Math.max(publishStart + event.atMs, lastEnd + EVENT_GAP_MS) - Date.now();
      if (wait > 0) await sleep(wait);
      await event.run();
      lastEnd = Date.now();
    }
    await Promise.all([publishing, writingPoison]);
    clearInterval(progress);
    const delivered = await stream.close(300_000);
    say(
      `publisher done: ${sent.length} orders sent, kcat exit ${delivered.code}` +
        (delivered.failed > 0 ? `, ${delivered.failed} deliveries failed` : ""),
    );

    // Drain: wait until the group's lag is 0 and every order has an outcome.
    const drained = await poll(
      async () => {
        const lag = await cluster.lag(names.group, [names.orders, ...names.retry]);
        const behind = lag.partitions.reduce((sum, p) => sum + p.lag, 0);
        say(`draining: ${behind} records behind`);
        return behind === 0;
      },
      settings.drainTimeoutMs,
      3000,
    );
    say(drained ? "drained: lag 0" : `not drained within ${settings.drainTimeoutMs} ms`);

    // Final stop, then the witnesses.
    stopping = true;
    const exits: ServiceExit[] = await Promise.all(
      slots.filter((s) => s.process !== undefined).map(async (slot) => {
        slot.expected = true;
        return { name: slot.name, code: await stopService(slot.process!, 45_000) };
      }),
    );
    say(`services stopped: ${exits.map((e) => `${e.name} ${e.code}`).join(", ")}`);
    const ledger: Ledger | Unavailable = gatewayUrl === undefined
      ? { unavailable: (commands.gateway as Unavailable).unavailable }
      : await readLedger(gatewayUrl);
    const exactlyOnce = guarantee === "exactly_once";
    const retryTopics: string[] = [];
    for (const topic of names.retry) if (await cluster.hasTopic(topic)) retryTopics.push(topic);
    const [input, retry, payments, paymentsUncommitted, deadLetters] = await Promise.all([
      readTopic(target, names.orders),
      Promise.all(retryTopics.map((t) => readTopic(target, t))).then((all) => all.flat()),
      readTopic(target, names.payments, { readCommitted: exactlyOnce }),
      exactlyOnce ? readTopic(target, names.payments) : Promise.resolve([]),
      readTopic(target, names.dlq, { readCommitted: exactlyOnce }),
    ]);
    const lag = await cluster.lag(names.group, [names.orders, ...retryTopics]);
    const checks = verify({
      guarantee,
      sent,
      input,
      retry,
      payments,
      paymentsUncommitted: exactlyOnce ? paymentsUncommitted : payments,
      deadLetters,
      poison: poisonWritten,
      poisonNotWritten,
      ledger,
      lag,
      exits,
    });
    return { guarantee, setup, actions, checks, seconds: (Date.now() - started) / 1000 };
  } finally {
    stopping = true;
    for (const slot of slots) {
      slot.expected = true;
      slot.process?.kill("SIGKILL");
    }
    await Promise.all(slots.map((slot) => slot.process?.exited));
    if (gateway !== undefined) await stopService(gateway, 10_000);
    await cluster.close();
  }
}

async function readLedger(url: string): Promise<Ledger | Unavailable> {
  try {
    const response = await fetch(`${url}/v1/ledger`, { signal: AbortSignal.timeout(30_000) });
    if (!response.ok) {
      await response.body?.cancel();
      return { unavailable: `GET ${url}/v1/ledger answered ${response.status}` };
    }
    const body = await response.json() as { ledger?: Ledger };
    return body.ledger ?? { unavailable: `GET ${url}/v1/ledger has no "ledger" field` };
  } catch (error) {
    return { unavailable: `GET ${url}/v1/ledger failed: ${(error as Error).message}` };
  }
}
