/**
 * Transports: the contract the runtime needs from a Kafka-API log, and its implementations.
 *
 * @module
 */
export type * from "./transport.ts";
