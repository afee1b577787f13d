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
  /**
   * A SASL_SSL listener for clients besides the PLAINTEXT one (which stays, on loopback, for
   * inter-broker traffic and the readiness probe).
   * @default none
   */
  readonly secure?: SecureListenerOptions;
}

/** The SASL_SSL listener of {@linkcode serverProperties}. */
export interface SecureListenerOptions {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** The broker's PKCS#12 keystore (key and certificate). */
  readonly keystoreFile: string;
  /** The keystore's password (also its key's). */
  readonly keystorePassword: string;
  /** The user the PLAIN mechanism accepts (SCRAM users live in the metadata log). */
  readonly username: string;
  /** That user's password. */
  readonly password: string;
  /**
   * How long an OAUTHBEARER session lasts before the client must re-authenticate, in
   * milliseconds (`connections.max.reauth.ms` of the listener's OAUTHBEARER only; a client
   * that cannot re-authenticate is disconnected and connects again).
   * @default unset (sessions never expire)
   */
  readonly oauthBearerReauthMs?: number;
}

/** The listener name of the secure listener, lower-cased in `listener.name.<name>.*`. */
const SECURE_LISTENER = "SASL_SSL";

/** Quotes a value for a JAAS configuration line. */
function jaasQuote(value: string): string {
  return `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
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
  const { port, controllerPort, logDir, secure } = options;
  const client = secure === undefined ? "" : `,${SECURE_LISTENER}://127.0.0.1:${secure.port}`;
  const entries: [string, string | number | boolean][] = [
    ["process.roles", "broker,controller"],
    ["node.id", 1],
    ["controller.quorum.voters", `1@127.0.0.1:${controllerPort}`],
    [
      "listeners",
      `PLAINTEXT://127.0.0.1:${port}${client},CONTROLLER://127.0.0.1:${controllerPort}`,
    ],
    ["advertised.listeners", `PLAINTEXT://127.0.0.1:${port}${client}`],
    ["controller.listener.names", "CONTROLLER"],
    ["inter.broker.listener.name", "PLAINTEXT"],
    [
      "listener.security.protocol.map",
      "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT" +
      (secure === undefined ? "" : `,${SECURE_LISTENER}:SASL_SSL`),
    ],
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
    ...(secure === undefined ? [] : secureEntries(secure)),
  ];
  const lines = entries.map(([key, value]) => `${key}=${escapeValue(String(value))}`);
  return [
    "# Written by infra/kafka/local_broker.ts on every start; edits are overwritten.",
    ...lines,
    "",
  ].join("\n");
}

/**
 * The SASL_SSL listener's settings, named as in Kafka's security documentation: SCRAM-SHA-256,
 * SCRAM-SHA-512 (users from the metadata log), PLAIN (the one user given here) and OAUTHBEARER
 * (unsigned tokens), TLS from the PKCS#12 keystore, no client certificates asked for.
 */
function secureEntries(secure: SecureListenerOptions): [string, string][] {
  const prefix = `listener.name.${SECURE_LISTENER.toLowerCase()}`;
  const scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
  const plain = "org.apache.kafka.common.security.plain.PlainLoginModule required " +
    `user_${secure.username}=${jaasQuote(secure.password)};`;
  // No server callback handler: Kafka's default validator for OAUTHBEARER accepts unsigned
  // tokens (alg "none") with a "sub" and an "exp", enough to try the client-credentials flow
  // against any token endpoint. Loopback only, beside an unauthenticated PLAINTEXT listener.
  const oauthbearer = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule " +
    "required;";
  const entries: [string, string][] = [
    ["sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN,OAUTHBEARER"],
    [`${prefix}.scram-sha-256.sasl.jaas.config`, scram],
    [`${prefix}.scram-sha-512.sasl.jaas.config`, scram],
    [`${prefix}.plain.sasl.jaas.config`, plain],
    [`${prefix}.oauthbearer.sasl.jaas.config`, oauthbearer],
    [`${prefix}.ssl.keystore.type`, "PKCS12"],
    [`${prefix}.ssl.keystore.location`, secure.keystoreFile],
    [`${prefix}.ssl.keystore.password`, secure.keystorePassword],
    [`${prefix}.ssl.key.password`, secure.keystorePassword],
  ];
  if (secure.oauthBearerReauthMs !== undefined) {
    const reauth = `${prefix}.oauthbearer.connections.max.reauth.ms`;
    entries.push([reauth, `${secure.oauthBearerReauthMs}`]);
  }
  return entries;
}

/** Escapes a value for the Java properties format (backslashes, and a leading space). */
function escapeValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replace(/^ /, "\\ ");
}
