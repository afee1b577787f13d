/**
 * Readiness, as an orchestrator asks for it: is every consumer group member of this process
 * assigned, restored and consuming, and can the broker be reached?
 *
 * Each member has one state, reported by whoever runs it (a worker posts it to the supervisor,
 * an in-process member reports it directly):
 *
 * - `assigning`: joining its group, or rejoining after a rebalance or a client restart;
 * - `restoring`: it has its partitions and a keyed stage's state stores of some of them are
 *   restoring from their changelogs (see `StageMemberOptions.onState` in `run.ts`);
 * - `consuming`: it has its partitions, their state is restored, records flow;
 * - `stopped`: the client library stopped it (kafkajs `CRASH` with `restart: false`) or its
 *   worker crashed; the supervisor restarts it or gives up, which ends the process.
 *
 * The process is ready when it has at least one member, every member is `consuming`, the broker
 * was reachable at the last probe, and it is not draining.
 *
 * @example
 * ```ts
 * import { Readiness } from "./health.ts";
 * const readiness = new Readiness();
 * readiness.member("pay#0", "pay");
 * readiness.report("pay#0", "restoring");
 * console.log(readiness.check().ready); // false
 * readiness.report("pay#0", "consuming");
 * console.log(readiness.check().ready); // true
 * ```
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { errorMessage, PipelineError } from "./errors.ts";

/** The states a consumer group member goes through; see the module doc. */
export const MEMBER_STATES = ["assigning", "restoring", "consuming", "stopped"] as const;

/** One of {@linkcode MEMBER_STATES}. */
export type MemberState = typeof MEMBER_STATES[number];

/** A member as {@linkcode Readiness.check} reports it. */
export interface MemberHealth {
  /** The member's id (a worker id such as `process-payment#0`). */
  readonly id: string;
  /** The stage it runs. */
  readonly stage: string;
  /** Its state. */
  readonly state: MemberState;
  /** Why it is in that state, when known (e.g. the error that stopped it). */
  readonly detail?: string;
  /** When it entered that state, in ms since the epoch. */
  readonly since: number;
}

/** What the last broker probe found. */
export interface BrokerHealth {
  /** `unknown` until the first probe answers. */
  readonly status: "unknown" | "reachable" | "unreachable";
  /** The probe's error, when unreachable. */
  readonly detail?: string;
  /** When the status last changed, in ms since the epoch. */
  readonly since: number;
}

/** The answer to "is this process ready?". */
export interface ReadinessReport {
  /** Ready: members, all consuming; broker not unreachable; not draining. */
  readonly ready: boolean;
  /** Why not, one line each; empty when ready. */
  readonly reasons: readonly string[];
  /** Every member. */
  readonly members: readonly MemberHealth[];
  /** The broker. */
  readonly broker: BrokerHealth;
  /** Whether the process is draining (SIGTERM received). */
  readonly draining: boolean;
}

/** Options for {@linkcode Readiness}. */
export interface ReadinessOptions {
  /**
   * Time, for `since`.
   * @default systemClock
   */
  readonly clock?: Clock;
  /**
   * Whether the process is ready without any member (a producer-only command).
   * @default false
   */
  readonly readyWithoutMembers?: boolean;
}

/** A reported state that does not exist, or a report for a member never registered. */
export class HealthStateError extends PipelineError {}

/** The readiness of one process: its members' states and the broker's reachability. */
export class Readiness {
  readonly #clock: Clock;
  readonly #readyWithoutMembers: boolean;
  readonly #members = new Map<string, MemberHealth>();
  #broker: BrokerHealth;
  #draining = false;

  /** Creates the readiness of a process with no members yet and an unprobed broker. */
  constructor(options: ReadinessOptions = {}) {
    const { clock = systemClock, readyWithoutMembers = false } = options;
    this.#clock = clock;
    this.#readyWithoutMembers = readyWithoutMembers;
    this.#broker = { status: "unknown", since: clock.now() };
  }

  /** Registers a member (or re-registers a restarted one) in state `assigning`. */
  member(id: string, stage: string): void {
    this.#members.set(id, { id, stage, state: "assigning", since: this.#clock.now() });
  }

  /**
   * Records a member's new state.
   *
   * @throws {HealthStateError} for an unknown member or state
   */
  report(id: string, state: MemberState, detail?: string): void {
    const current = this.#members.get(id);
    if (current === undefined) {
      throw new HealthStateError(
        `Cannot report state "${state}" of member "${id}": unknown member`,
      );
    }
    if (!MEMBER_STATES.includes(state)) {
      throw new HealthStateError(
        `Cannot report state of member "${id}" as it must be one of ${
          MEMBER_STATES.map((s) => `"${s}"`).join(", ")
        }: current value is "${state}"`,
        { stage: current.stage },
      );
    }
    if (current.state === state && current.detail === detail) return;
    this.#members.set(id, {
      id,
      stage: current.stage,
      state,
      detail,
      since: current.state === state ? current.since : this.#clock.now(),
    });
  }

  /** Whether a member of that id is registered. */
  has(id: string): boolean {
    return this.#members.has(id);
  }

  /** Forgets a member (it left its group for good). */
  remove(id: string): void {
    this.#members.delete(id);
  }

  /** Records a broker probe's result: `undefined` when it answered, else its error. */
  broker(error?: unknown): void {
    const status = error === undefined ? "reachable" : "unreachable";
    const detail = error === undefined ? undefined : errorMessage(error);
    const since = status === this.#broker.status ? this.#broker.since : this.#clock.now();
    this.#broker = { status, detail, since };
  }

  /** Marks the process as draining: not ready from now on. */
  drain(): void {
    this.#draining = true;
  }

  /** Whether the process is ready, and why not. */
  check(): ReadinessReport {
    const members = [...this.#members.values()];
    const reasons: string[] = [];
    if (this.#draining) reasons.push("draining: the process is stopping");
    if (this.#broker.status === "unreachable") {
      reasons.push(`broker unreachable: ${this.#broker.detail}`);
    } else if (this.#broker.status === "unknown") {
      reasons.push("broker not probed yet");
    }
    if (members.length === 0 && !this.#readyWithoutMembers) reasons.push("no member yet");
    for (const m of members) {
      if (m.state !== "consuming") {
        reasons.push(
          `member "${m.id}" of stage "${m.stage}" is ${m.state}` +
            (m.detail === undefined ? "" : `: ${m.detail}`),
        );
      }
    }
    return {
      ready: reasons.length === 0,
      reasons,
      members,
      broker: this.#broker,
      draining: this.#draining,
    };
  }
}

/** Options for {@linkcode watchBroker}. */
export interface WatchBrokerOptions {
  /**
   * Time between probes, in milliseconds.
   * @default 2000
   */
  readonly intervalMs?: number;
  /**
   * A probe that has not answered after this long counts as unreachable, in milliseconds.
   * @default 3000
   */
  readonly timeoutMs?: number;
  /**
   * Time and waiting.
   * @default systemClock
   */
  readonly clock?: Clock;
}

/** A broker probe that did not answer in time. */
export class ProbeTimeoutError extends PipelineError {
  /** Always `true`: the next probe may answer. */
  override readonly retriable: boolean = true;
}

/**
 * Probes the broker now and then every `intervalMs` (one probe at a time) and records each
 * result in `readiness`, until the returned `stop()` is called.
 *
 * @example
 * ```ts ignore
 * const watch = watchBroker(readiness, () => transport.endOffsets("orders"));
 * // ... on shutdown:
 * await watch.stop();
 * ```
 */
export function watchBroker(
  readiness: Readiness,
  probe: () => Promise<unknown>,
  options: WatchBrokerOptions = {},
): { stop(): Promise<void> } {
  const { intervalMs = 2000, timeoutMs = 3000, clock = systemClock } = options;
  const stopped = new AbortController();
  /** The probe still unanswered, if any: no second one is sent while it hangs. */
  let unanswered: Promise<unknown> | undefined;
  async function probeOnce(): Promise<void> {
    if (unanswered !== undefined) {
      readiness.broker(
        new ProbeTimeoutError(`Cannot reach the broker: a probe sent earlier has no answer yet`),
      );
      return;
    }
    const probing = probe().finally(() => {
      if (unanswered === probing) unanswered = undefined;
    });
    unanswered = probing;
    const timeout = new AbortController();
    const timedOut = clock.sleep(timeoutMs, timeout.signal).then(
      () => {
        throw new ProbeTimeoutError(`Cannot reach the broker: no answer within ${timeoutMs} ms`);
      },
      () => undefined,
    );
    try {
      await Promise.race([probing, timedOut]);
      readiness.broker();
    } catch (error) {
      readiness.broker(error);
    } finally {
      timeout.abort();
    }
  }
  const loop = (async function probeLoop() {
    while (!stopped.signal.aborted) {
      await probeOnce();
      await clock.sleep(intervalMs, stopped.signal).catch(() => undefined);
    }
  })();
  return {
    async stop(): Promise<void> {
      stopped.abort();
      await loop;
    },
  };
}
