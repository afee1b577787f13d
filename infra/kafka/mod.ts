/**
 * The local single-node Apache Kafka broker for machines without Docker: the jars come from
 * Maven Central (`pom.xml`), the broker runs as a child process on 127.0.0.1.
 *
 * @example
 * ```ts ignore
 * import { startLocalBroker } from "./mod.ts";
 * const broker = await startLocalBroker({ port: 19092, log: console.error });
 * Deno.env.set("KAFKA_BROKERS", broker.brokers);
 * await broker.stop();
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export * from "./install.ts";
export * from "./kafkajs_warning.ts";
export * from "./local_broker.ts";
export * from "./secure.ts";
export * from "./server_properties.ts";
