/**
 * Re-exports the framework's filter for kafkajs's harmless `TimeoutNegativeWarning` under
 * Deno, for the programs here that own their process.
 *
 * @module
 */
export { dropTimeoutNegativeWarnings } from "../../pipeline/transport/kafka/deno_warnings.ts";
