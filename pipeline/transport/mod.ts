/**
 * Transports: the contract the runtime needs from a Kafka-API log, and its implementations.
 *
 * @module
 */
export type * from "./transport.ts";
export { murmur2, partitionForKey, toPositive } from "./murmur2.ts";
