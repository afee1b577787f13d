/**
 * The `server.properties` of the local single-node Kafka broker (KRaft, combined broker and
 * controller), as a pure function so it can be tested without a JVM.
 *
 * @module
 */

/** Options of {@linkcode serverProperties}. */
export interface ServerPropertiesOptions {
  /** Port of the PLAINTEXT listener that clients use, on 127.0.0.1. */
  readonly port: number;
  /** Port of the KRaft controller listener, on 127.0.0.1. */
  readonly controllerPort: number;
  /** Directory holding the topic partitions and the metadata log (`log.dirs`). */
  readonly logDir: string;
}

/**
 * Renders the `server.properties` of a single-node KRaft broker listening on loopback only.
 *
 * Topics are not auto-created (the pipeline provisions its own), internal topics have
 * replication factor 1 and few partitions (one node; a quick first group join), and the first
 * rebalance is not delayed.
 *
 * @example
 * ```ts
 * import { serverProperties } from "./server_properties.ts";
 * const text = serverProperties({ port: 9092, controllerPort: 9093, logDir: "/tmp/kraft" });
 * console.log(text.includes("controller.quorum.voters=1@127.0.0.1:9093")); // true
 * ```
 */
export function serverProperties(options: ServerPropertiesOptions): string {
  const { port, controllerPort, logDir } = options;
  const entries: [string, string | number | boolean][] = [
    ["process.roles", "broker,controller"],
    ["node.id", 1],
    ["controller.quorum.voters", `1@127.0.0.1:${controllerPort}`],
    ["listeners", `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`],
    ["advertised.listeners", `PLAINTEXT://127.0.0.1:${port}`],
    ["controller.listener.names", "CONTROLLER"],
    ["inter.broker.listener.name", "PLAINTEXT"],
    ["listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"],
    ["log.dirs", logDir],
    ["num.partitions", 1],
    ["auto.create.topics.enable", false],
    ["offsets.topic.replication.factor", 1],
    ["offsets.topic.num.partitions", 5],
    ["transaction.state.log.replication.factor", 1],
    ["transaction.state.log.min.isr", 1],
    ["transaction.state.log.num.partitions", 5],
    ["share.coordinator.state.topic.replication.factor", 1],
    ["share.coordinator.state.topic.min.isr", 1],
    ["group.initial.rebalance.delay.ms", 0],
  ];
  const lines = entries.map(([key, value]) => `${key}=${escapeValue(String(value))}`);
  return [
    "# Written by infra/kafka/local_broker.ts on every start; edits are overwritten.",
    ...lines,
    "",
  ].join("\n");
}

/** Escapes a value for the Java properties format (backslashes, and a leading space). */
function escapeValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replace(/^ /, "\\ ");
}
