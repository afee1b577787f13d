/**
 * The fault suite's verdict, from outside witnesses only: the records on the broker as kcat
 * read them, the gateway's ledger, the group's committed offsets against the log ends, and
 * the services' exit codes. Nothing here reads a counter of the runtime under test.
 *
 * Pure: the suite gathers the evidence, this module judges it (and is unit-tested on its own).
 *
 * @module
 */
import type { KcatRecord } from "./_kcat.ts";
import { POISON_HEADER } from "./poison.ts";
import type { PoisonKind, PoisonRecord } from "./poison.ts";

/** The processing guarantees the suite runs the pipeline under. */
export const GUARANTEES = ["at_least_once", "exactly_once"] as const;

/** One processing guarantee. */
export type Guarantee = typeof GUARANTEES[number];

/** A witness the suite could not consult, and why. */
export interface Unavailable {
  /** Why, for the report (`not available: <why>`). */
  readonly unavailable: string;
}

/** The charges per idempotency key, as the gateway's `GET /v1/ledger` lists them. */
export type Ledger = Readonly<Record<string, readonly unknown[]>>;

/** The group's lag per partition: log end offset minus committed offset. */
export interface LagReading {
  readonly partitions: readonly { topic: string; partition: number; lag: number }[];
}

/** A service process's exit at the final stop. */
export interface ServiceExit {
  /** Its name in the report, e.g. `payments#2`. */
  readonly name: string;
  /** Its exit code (137 when it had to be killed). */
  readonly code: number;
}

/** Everything the checks look at. */
export interface Evidence {
  /** The guarantee the run was made under. */
  readonly guarantee: Guarantee;
  /** Order ids the suite's publisher sent. */
  readonly sent: readonly string[];
  /** The stage's input topic. */
  readonly input: readonly KcatRecord[];
  /** The stage's retry-tier topics (where forged retry records were written). */
  readonly retry: readonly KcatRecord[];
  /** The output topic, as a downstream reader sees it (read_committed in exactly-once). */
  readonly payments: readonly KcatRecord[];
  /** The output topic read uncommitted (every record written, aborted ones too). */
  readonly paymentsUncommitted: readonly KcatRecord[];
  /** The dead-letter topic, as a downstream reader sees it. */
  readonly deadLetters: readonly KcatRecord[];
  /** The poison written (what each is owed). */
  readonly poison: readonly PoisonRecord[];
  /** Poison kinds the suite could not write, and why. */
  readonly poisonNotWritten: Readonly<Partial<Record<PoisonKind, string>>>;
  /** The gateway's ledger. */
  readonly ledger: Ledger | Unavailable;
  /** The group's lag after the drain. */
  readonly lag: LagReading | Unavailable;
  /** How the service processes ended at the final stop. */
  readonly exits: readonly ServiceExit[];
}

/** How a check came out. */
export type CheckStatus = "pass" | "fail" | "info" | "not available";

/** One line of the verdict. */
export interface ChaosCheck {
  /** What was checked. */
  readonly check: string;
  /** How it came out. */
  readonly status: CheckStatus;
  /** The numbers behind it (and the first offending ids). */
  readonly detail: string;
}

interface Envelope {
  readonly original_topic?: string;
  readonly original_partition?: number;
  readonly original_offset?: number;
  readonly value?: string | null;
  readonly error_type?: string;
  readonly error_reason?: string;
}

const SHOWN = 5;

function orderIdOf(json: string | null | undefined): string | undefined {
  if (json === null || json === undefined) return undefined;
  try {
    const id = (JSON.parse(json) as { order_id?: unknown }).order_id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

function envelopeOf(record: KcatRecord): Envelope {
  try {
    return (JSON.parse(record.payload ?? "null") ?? {}) as Envelope;
  } catch {
    return {};
  }
}

function position(topic: string | undefined, partition: unknown, offset: unknown): string {
  return `${topic}/${partition}@${offset}`;
}

function countIds(ids: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

function some(ids: readonly string[]): string {
  if (ids.length === 0) return "";
  const more = ids.length > SHOWN ? `, … ${ids.length - SHOWN} more` : "";
  return ` (${ids.slice(0, SHOWN).join(", ")}${more})`;
}

function extra(counts: Map<string, number>): { records: number; ids: string[] } {
  let records = 0;
  const ids: string[] = [];
  for (const [id, count] of counts) {
    if (count > 1) {
      records += count - 1;
      ids.push(id);
    }
  }
  return { records, ids };
}

function isUnavailable(value: unknown): value is Unavailable {
  return typeof value === "object" && value !== null && "unavailable" in value;
}

/**
 * Judges the evidence of one run: one check per guarantee, one per poison kind.
 *
 * @example
 * ```ts
 * import { verify } from "./verify.ts";
 * const checks = verify({
 *   guarantee: "at_least_once", sent: [], input: [], retry: [], payments: [],
 *   paymentsUncommitted: [], deadLetters: [], poison: [], poisonNotWritten: {},
 *   ledger: {}, lag: { partitions: [] }, exits: [],
 * });
 * console.log(checks.every((c) => c.status !== "fail")); // true
 * ```
 */
export function verify(evidence: Evidence): ChaosCheck[] {
  const { guarantee } = evidence;
  const exactlyOnce = guarantee === "exactly_once";
  const checks: ChaosCheck[] = [];

  // The orders: valid, unpoisoned records on the input topic, keyed by their order_id.
  const orders = new Set<string>();
  let foreign = 0;
  const poisonAt = new Map<string, KcatRecord>();
  for (const record of [...evidence.input, ...evidence.retry]) {
    if (record.headers[POISON_HEADER] !== undefined) {
      poisonAt.set(position(record.topic, record.partition, record.offset), record);
      continue;
    }
    if (record.topic !== evidence.input[0]?.topic) continue;
    const id = orderIdOf(record.payload);
    if (id !== undefined && id === record.key) orders.add(id);
    else foreign++;
  }
  const sentMissing = evidence.sent.filter((id) => !orders.has(id));
  const sentSet = new Set(evidence.sent);
  const others = [...orders].filter((id) => !sentSet.has(id)).length;
  checks.push({
    check: "orders on the broker",
    status: sentMissing.length > 0 ? "fail" : "pass",
    detail: `${evidence.sent.length} sent by kcat, ${orders.size} valid orders on the input` +
      (others > 0 ? ` (${others} published by the services themselves)` : "") +
      (foreign > 0 ? `, ${foreign} other records` : "") +
      (sentMissing.length > 0
        ? `; ${sentMissing.length} sent but missing${some(sentMissing)}`
        : ""),
  });

  // Outcomes: PaymentProcessed records, and dead letters of orders (not of poison).
  const paid = countIds(
    evidence.payments.map((r) => orderIdOf(r.payload)).filter((id) => id !== undefined),
  );
  const lettersByPoison = new Map<string, Envelope[]>();
  const orderLetters: string[] = [];
  for (const record of evidence.deadLetters) {
    const envelope = envelopeOf(record);
    const at = position(
      envelope.original_topic,
      envelope.original_partition,
      envelope.original_offset,
    );
    const poison = poisonAt.get(at);
    if (poison !== undefined) {
      lettersByPoison.set(at, [...(lettersByPoison.get(at) ?? []), envelope]);
      continue;
    }
    const id = orderIdOf(envelope.value);
    if (id !== undefined) orderLetters.push(id);
  }
  const dead = countIds(orderLetters);
  const forgedIds = evidence.poison.flatMap((p) =>
    "outcomeOf" in p.expect ? [p.expect.outcomeOf] : []
  );
  const accounted = new Set([...orders, ...forgedIds]);
  const lost = [...orders].filter((id) => !paid.has(id) && !dead.has(id));
  const both = [...orders].filter((id) => paid.has(id) && dead.has(id));
  checks.push({
    check: "one outcome per order (paid xor dead-lettered)",
    status: lost.length + both.length > 0 ? "fail" : "pass",
    detail: `${orders.size} orders: ${[...orders].filter((id) => paid.has(id)).length} paid, ` +
      `${[...orders].filter((id) => dead.has(id)).length} dead-lettered, ${lost.length} without ` +
      `outcome${some(lost)}, ${both.length} both${some(both)}`,
  });

  const paidExtra = extra(paid);
  const strangers = [...paid.keys()].filter((id) => !accounted.has(id));
  const payWhat = exactlyOnce ? "read_committed" : "read_uncommitted";
  checks.push({
    check: `one PaymentProcessed per paid order (${payWhat})`,
    status: strangers.length > 0 || (exactlyOnce && paidExtra.records > 0)
      ? "fail"
      : paidExtra.records > 0
      ? "info"
      : "pass",
    detail: `${evidence.payments.length} PaymentProcessed for ${paid.size} orders: ` +
      `${paidExtra.records} duplicates${some(paidExtra.ids)}` +
      (exactlyOnce || paidExtra.records === 0 ? "" : " (counted: at_least_once may redeliver)") +
      (strangers.length > 0 ? `; ${strangers.length} for no order${some(strangers)}` : ""),
  });
  if (exactlyOnce) {
    const uncommitted = evidence.paymentsUncommitted.length - evidence.payments.length;
    checks.push({
      check: "PaymentProcessed outside committed transactions",
      status: "info",
      detail: `${uncommitted} records a read_uncommitted reader also sees (aborted or open)`,
    });
  }

  const deadExtra = extra(dead);
  checks.push({
    check: "one dead letter per dead-lettered order",
    status: exactlyOnce && deadExtra.records > 0 ? "fail" : deadExtra.records > 0 ? "info" : "pass",
    detail: `${orderLetters.length} dead letters for ${dead.size} orders: ` +
      `${deadExtra.records} duplicates${some(deadExtra.ids)}`,
  });

  checks.push(chargedOnce(evidence.ledger, orders, forgedIds, paid, dead));

  for (const poison of evidence.poison) {
    checks.push(
      poisonCheck(poison, evidence, poisonAt, lettersByPoison, paid, dead, exactlyOnce),
    );
  }
  for (const [kind, why] of Object.entries(evidence.poisonNotWritten)) {
    checks.push({ check: `poison: ${kind}`, status: "not available", detail: why ?? "" });
  }

  if (isUnavailable(evidence.lag)) {
    checks.push({
      check: "lag 0 for the group",
      status: "not available",
      detail: evidence.lag.unavailable,
    });
  } else {
    const behind = evidence.lag.partitions.filter((p) => p.lag !== 0);
    const total = behind.reduce((sum, p) => sum + p.lag, 0);
    checks.push({
      check: "lag 0 for the group (nothing stuck)",
      status: behind.length > 0 ? "fail" : "pass",
      detail: `${evidence.lag.partitions.length} partitions read, ${total} records behind` +
        some(behind.map((p) => `${p.topic}/${p.partition}: ${p.lag}`)),
    });
  }

  const unclean = evidence.exits.filter((exit) => exit.code !== 0);
  checks.push({
    check: "services stop cleanly (SIGTERM, exit 0)",
    status: unclean.length > 0 ? "fail" : "pass",
    detail: `${evidence.exits.length} processes` +
      some(unclean.map((exit) => `${exit.name} exited ${exit.code}`)),
  });
  return checks;
}

function chargedOnce(
  ledger: Ledger | Unavailable,
  orders: ReadonlySet<string>,
  forgedIds: readonly string[],
  paid: ReadonlyMap<string, number>,
  dead: ReadonlyMap<string, number>,
): ChaosCheck {
  const check = "each order charged once in effect (gateway ledger)";
  if (isUnavailable(ledger)) {
    return { check, status: "not available", detail: ledger.unavailable };
  }
  const charges = (id: string) => ledger[id]?.length ?? 0;
  const known = new Set([...orders, ...forgedIds]);
  const twice = Object.keys(ledger).filter((id) => charges(id) > 1);
  const paidUncharged = [...paid.keys()].filter((id) => known.has(id) && charges(id) === 0);
  const deadCharged = [...dead.keys()].filter((id) => !paid.has(id) && charges(id) > 0);
  const unknown = Object.keys(ledger).filter((id) => !known.has(id));
  const bad = twice.length + paidUncharged.length + deadCharged.length + unknown.length;
  return {
    check,
    status: bad > 0 ? "fail" : "pass",
    detail: `${Object.keys(ledger).length} keys charged: ${twice.length} charged twice` +
      `${some(twice)}, ${paidUncharged.length} paid without a charge${some(paidUncharged)}, ` +
      `${deadCharged.length} charged but only dead-lettered${some(deadCharged)}, ` +
      `${unknown.length} charges for no order${some(unknown)}`,
  };
}

function poisonCheck(
  poison: PoisonRecord,
  evidence: Evidence,
  poisonAt: ReadonlyMap<string, KcatRecord>,
  lettersByPoison: ReadonlyMap<string, Envelope[]>,
  paid: ReadonlyMap<string, number>,
  dead: ReadonlyMap<string, number>,
  exactlyOnce: boolean,
): ChaosCheck {
  const check = `poison: ${poison.kind}`;
  const written = [...poisonAt.entries()].filter(([, r]) =>
    r.headers[POISON_HEADER] === poison.kind
  );
  if (written.length !== 1) {
    return {
      check,
      status: "fail",
      detail: `${written.length} such records on the broker, 1 written (${poison.description})`,
    };
  }
  const [at] = written[0];
  const problems: string[] = [];
  const facts: string[] = [];
  if ("deadLetter" in poison.expect) {
    const letters = lettersByPoison.get(at) ?? [];
    if (letters.length === 0) {
      problems.push("no dead letter");
      const inside = orderIdOf(
        typeof poison.message.value === "string" ? poison.message.value : null,
      );
      if (inside !== undefined && !evidence.sent.includes(inside) && paid.has(inside)) {
        problems.push(`paid instead (${inside})`);
      }
    } else {
      const types = [...new Set(letters.map((l) => l.error_type ?? "(none)"))];
      facts.push(`dead-lettered as ${types.join(", ")}: "${letters[0].error_reason ?? ""}"`);
      const wrong = types.filter((t) =>
        !(poison.expect as { deadLetter: readonly string[] }).deadLetter.includes(t)
      );
      if (wrong.length > 0) {
        problems.push(
          `error_type ${wrong.join(", ")}, owed ${poison.expect.deadLetter.join(" or ")}`,
        );
      }
      if (letters.some((l) => !l.error_reason)) problems.push("a dead letter without error_reason");
      if (letters.length > 1) {
        (exactlyOnce ? problems : facts).push(`${letters.length} dead letters`);
      }
    }
  } else {
    const id = poison.expect.outcomeOf;
    const payments = paid.get(id) ?? 0;
    const letters = (dead.get(id) ?? 0) +
      [...lettersByPoison.values()].flat().filter((l) => orderIdOf(l.value) === id).length;
    facts.push(`${payments} paid, ${letters} dead-lettered`);
    if (payments + letters === 0) problems.push("no outcome (stuck or lost)");
    if (payments > 0 && letters > 0) problems.push("both paid and dead-lettered");
    if (payments + letters > 1 && exactlyOnce) problems.push("more than one outcome");
  }
  if (poison.laterOrderId !== undefined) {
    const id = poison.laterOrderId;
    const outcomes = (paid.get(id) ?? 0) + (dead.get(id) ?? 0);
    facts.push(`later order ${id}: ${paid.get(id) ?? 0} paid, ${dead.get(id) ?? 0} dead-lettered`);
    if (outcomes === 0) problems.push(`later valid order ${id} has no outcome`);
    if ((paid.get(id) ?? 0) > 1 && exactlyOnce) problems.push(`later order ${id} paid twice`);
  }
  return {
    check,
    status: problems.length > 0 ? "fail" : "pass",
    detail: `${poison.description} at ${at}: ` + [...problems, ...facts].join("; "),
  };
}
