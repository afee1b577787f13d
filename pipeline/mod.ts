/**
 * A stream-processing framework for Deno over Kafka-API brokers: declare a pipeline of typed
 * stages, run it on the embedded transport or on Redpanda/Kafka, with retries, retry tiers,
 * a dead-letter queue and at-least-once delivery.
 *
 * @example
 * ```ts ignore
 * import { definePipeline, defineStage, startPipeline, waitUntilDrained } from "./mod.ts";
 * ```
 *
 * @module
 */
export * from "./clock.ts";
export * from "./codec.ts";
export * from "./dead_letter.ts";
export * from "./definition.ts";
export * from "./describe.ts";
export * from "./errors.ts";
export * from "./guarantee.ts";
export * from "./headers.ts";
export * from "./state_store.ts";
export * from "./instrumentation.ts";
export * from "./publisher.ts";
export * from "./random.ts";
export * from "./retry.ts";
export * from "./run.ts";
export * from "./runner.ts";
export * from "./stage.ts";
export type * from "./transport/transport.ts";
export * from "./config.ts";
// `service.ts` (startService) is imported by its own path: it loads kafkajs, which reads the
// environment as it loads, and this module must load without permissions.
export * from "./health.ts";
export * from "./health_server.ts";
