/**
 * The fault suite (`deno task chaos`): a real broker, the payment services as processes,
 * faults and poison laid over a fixed-rate stream of orders, and a verdict from outside
 * witnesses. The command is `chaos/main.ts`; `tests/integration/chaos_test.ts` runs a short
 * form inside `deno task test`.
 *
 * @module
 */
export { ChaosError } from "./errors.ts";
export { POISON_HEADER, POISON_KINDS, poisonRecords } from "./poison.ts";
export type { PoisonExpectation, PoisonKind, PoisonRecord } from "./poison.ts";
export { renderReport } from "./report.ts";
export { ACTION_KINDS, runChaos } from "./suite.ts";
export type { ActionKind, ChaosAction, ChaosOptions, ChaosReport, ModeReport } from "./suite.ts";
export { GUARANTEES, verify } from "./verify.ts";
export type { ChaosCheck, CheckStatus, Evidence, Guarantee } from "./verify.ts";
