/**
 * The run's bookkeeping: every generated order is counted once as published, then once as
 * paid or dead-lettered; retries and skipped redeliveries are counted beside them.
 *
 * @module
 */
import type { StageOutcome } from "../pipeline/runner.ts";

/** The summary printed at the end of a run, as one JSON line. */
export interface RunSummary {
  /** Orders generated. */
  generated: number;
  /** Orders acknowledged by the transport. */
  published: number;
  /** Orders paid (a `PaymentProcessed` written). */
  paid: number;
  /** Orders dead-lettered. */
  dead_lettered: number;
  /** Handler attempts that were retries. */
  retries: number;
  /** Redelivered orders skipped because they already had an outcome. */
  duplicates_skipped: number;
}

/** Counts outcomes as they are reported. */
export class SummaryCounter {
  /** The counts so far. */
  readonly summary: RunSummary = {
    generated: 0,
    published: 0,
    paid: 0,
    dead_lettered: 0,
    retries: 0,
    duplicates_skipped: 0,
  };
  #started = performance.now();

  /** Counts one outcome reported by the runtime. */
  record(outcome: Pick<StageOutcome, "kind" | "retries">): void {
    this.summary.retries += outcome.retries;
    if (outcome.kind === "output") this.summary.paid++;
    else if (outcome.kind === "dead-lettered") this.summary.dead_lettered++;
    else if (outcome.kind === "duplicate") this.summary.duplicates_skipped++;
  }

  /** Orders published that have no outcome yet. */
  get inFlight(): number {
    return this.summary.published - this.summary.paid - this.summary.dead_lettered;
  }

  /** One human progress line. */
  progressLine(): string {
    const seconds = (performance.now() - this.#started) / 1000;
    const s = this.summary;
    const rate = seconds > 0 ? (s.paid + s.dead_lettered) / seconds : 0;
    return `[${seconds.toFixed(1).padStart(6)}s] generated ${s.generated} | paid ${s.paid} | ` +
      `retried ${s.retries} | dead-lettered ${s.dead_lettered} | in flight ${this.inFlight} | ` +
      `${rate.toFixed(1)} orders/s`;
  }

  /** The closing JSON line. */
  jsonLine(): string {
    return JSON.stringify({ summary: this.summary });
  }
}
