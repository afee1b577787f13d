/**
 * The processing guarantee a pipeline runs with (`PROCESSING_GUARANTEE`, flag `--guarantee`):
 * one setting every command and every worker reads the same way.
 *
 * - `at_least_once` (the default): a record's outcome (outputs, retry-tier copy or dead letter,
 *   and its key's state entry) is durable before its offset is committed; a crash between the
 *   two redelivers it, and the keyed stage's state skips the key it already settled.
 * - `exactly_once`: a record's outcome (outputs, retry-tier copy or dead letter), its state
 *   entry and its input offset commit in one Kafka transaction per task (see
 *   `_task_transactions.ts`); the offsets pass the control records that end the transactions
 *   in a retry tier, so a tiered stage drains too.
 *
 * @module
 */
import { setting } from "./config.ts";
import { ConfigError } from "./errors.ts";

/** The processing guarantees a pipeline knows. */
export const PROCESSING_GUARANTEES = ["at_least_once", "exactly_once"] as const;

/** One of {@linkcode PROCESSING_GUARANTEES}. */
export type ProcessingGuarantee = typeof PROCESSING_GUARANTEES[number];

/** The default processing guarantee. */
export const DEFAULT_PROCESSING_GUARANTEE: ProcessingGuarantee = "at_least_once";

/** The processing guarantee setting, to spread into a command's config spec. */
export const GUARANTEE_CONFIG = {
  guarantee: setting({
    type: "string",
    env: "PROCESSING_GUARANTEE",
    flag: "guarantee",
    default: DEFAULT_PROCESSING_GUARANTEE,
    choices: PROCESSING_GUARANTEES,
    description:
      "at_least_once: outcomes durable before offsets are committed, duplicates skipped by key; exactly_once: outcomes, state entries and input offsets in one transaction per input partition",
  }),
} as const;

/**
 * Checks that `value` is a processing guarantee, and returns it as a
 * {@linkcode ProcessingGuarantee}.
 *
 * @throws {ConfigError} for an unknown guarantee
 */
export function processingGuarantee(
  value: string = DEFAULT_PROCESSING_GUARANTEE,
): ProcessingGuarantee {
  if (!(PROCESSING_GUARANTEES as readonly string[]).includes(value)) {
    throw new ConfigError(
      `Cannot run with 'PROCESSING_GUARANTEE' as it must be one of ` +
        `${PROCESSING_GUARANTEES.map((g) => `"${g}"`).join(", ")}: current value is "${value}"`,
      { field: "PROCESSING_GUARANTEE" },
    );
  }
  return value as ProcessingGuarantee;
}
