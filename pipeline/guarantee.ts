/**
 * The processing guarantee a pipeline runs with (`PROCESSING_GUARANTEE`, flag `--guarantee`):
 * one setting every command and every worker reads the same way.
 *
 * - `at_least_once` (the default): a record's outcome (outputs, retry-tier copy or dead letter,
 *   and its key's state entry) is durable before its offset is committed; a crash between the
 *   two redelivers it, and the keyed stage's state skips the key it already settled.
 * - `exactly_once`: outcome, state entry and input offset in one Kafka transaction per task.
 *   Not available yet: asking for it is refused with a {@linkcode ConfigError} rather than
 *   running a half-made mode (see the README, "Processing guarantees").
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

/** The guarantees a member can run with today. */
export const AVAILABLE_PROCESSING_GUARANTEES: readonly ProcessingGuarantee[] = ["at_least_once"];

/** The processing guarantee setting, to spread into a command's config spec. */
export const GUARANTEE_CONFIG = {
  guarantee: setting({
    type: "string",
    env: "PROCESSING_GUARANTEE",
    flag: "guarantee",
    default: DEFAULT_PROCESSING_GUARANTEE,
    choices: PROCESSING_GUARANTEES,
    description:
      "at_least_once: outcomes durable before offsets are committed, duplicates skipped by key; exactly_once (not available yet, refused): outcomes, state and offsets in one transaction",
  }),
} as const;

/**
 * Checks that a member can run with `value` and returns it as a {@linkcode ProcessingGuarantee}.
 *
 * @throws {ConfigError} for an unknown guarantee, or one not available yet (`exactly_once`)
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
  const guarantee = value as ProcessingGuarantee;
  if (!AVAILABLE_PROCESSING_GUARANTEES.includes(guarantee)) {
    throw new ConfigError(
      `Cannot run with 'PROCESSING_GUARANTEE' "${guarantee}" as it is not available yet: ` +
        `the transactional transport exists, the per-task transactions in the runtime do not; ` +
        `use "at_least_once" (keyed stages skip the keys they already settled)`,
      { field: "PROCESSING_GUARANTEE" },
    );
  }
  return guarantee;
}
