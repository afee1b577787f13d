/**
 * The local broker's secure mode without a JVM: the SASL_SSL listener's `server.properties`,
 * the variables printed for clients, and the option checks. The broker itself, secured, is
 * exercised in tests/integration/secured_cluster_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../../pipeline/errors.ts";
import {
  addScramArgs,
  findTool,
  secureClientEnv,
  serverProperties,
  startLocalBroker,
} from "../../infra/kafka/mod.ts";
import type { SecureMaterial } from "../../infra/kafka/mod.ts";
import { parseKafkaSecurity } from "../../pipeline/transport/kafka/security.ts";
import { freeLoopbackPorts } from "../_ports.ts";
import { granted } from "../_permissions.ts";

const MATERIAL: SecureMaterial = {
  username: "orders-pipeline",
  password: 'p"w\\d',
  caFile: "/data/secure/ca.pem",
  keystoreFile: "/data/secure/broker.p12",
  keystorePassword: "store-pw",
};

function properties(text: string): Map<string, string> {
  return new Map(
    text.split("\n").filter((line) => line.includes("=") && !line.startsWith("#")).map((line) => {
      const at = line.indexOf("=");
      return [line.slice(0, at), line.slice(at + 1)];
    }),
  );
}

Deno.test("serverProperties() adds a SASL_SSL listener and keeps broker traffic on PLAINTEXT", () => {
  const props = properties(serverProperties({
    port: 9092,
    controllerPort: 9093,
    logDir: "/data/kraft",
    secure: { port: 9094, ...MATERIAL },
  }));
  assert.equal(
    props.get("listeners"),
    "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093",
  );
  assert.equal(
    props.get("advertised.listeners"),
    "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094",
  );
  assert.equal(
    props.get("listener.security.protocol.map"),
    "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
  );
  assert.equal(props.get("inter.broker.listener.name"), "PLAINTEXT");
  assert.equal(
    props.get("sasl.enabled.mechanisms"),
    "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN,OAUTHBEARER",
  );
  assert.equal(
    props.get("listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config"),
    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
  );
  // The properties format doubles the backslash; JAAS quoting escapes the quote and backslash.
  assert.equal(
    props.get("listener.name.sasl_ssl.plain.sasl.jaas.config"),
    'org.apache.kafka.common.security.plain.PlainLoginModule required user_orders-pipeline="p\\\\"w\\\\\\\\d";',
  );
  assert.equal(props.get("listener.name.sasl_ssl.ssl.keystore.type"), "PKCS12");
  assert.equal(props.get("listener.name.sasl_ssl.ssl.keystore.location"), MATERIAL.keystoreFile);
  assert.equal(props.get("listener.name.sasl_ssl.ssl.keystore.password"), "store-pw");

  const plain = properties(serverProperties({ port: 9092, controllerPort: 9093, logDir: "/d" }));
  assert.equal(plain.get("listeners"), "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093");
  assert.equal(plain.has("sasl.enabled.mechanisms"), false);
  // OAUTHBEARER sessions never expire unless asked.
  assert.equal(props.has("listener.name.sasl_ssl.oauthbearer.connections.max.reauth.ms"), false);
});

Deno.test("serverProperties() ends OAUTHBEARER sessions after oauthBearerReauthMs, only those", () => {
  const props = properties(serverProperties({
    port: 9092,
    controllerPort: 9093,
    logDir: "/data/kraft",
    secure: { port: 9094, ...MATERIAL, oauthBearerReauthMs: 3000 },
  }));
  assert.equal(props.get("listener.name.sasl_ssl.oauthbearer.connections.max.reauth.ms"), "3000");
  assert.equal(props.has("connections.max.reauth.ms"), false);
});

Deno.test("the secure broker's client variables parse into SASL_SSL with SCRAM-SHA-256", () => {
  const env = secureClientEnv("127.0.0.1:9094", MATERIAL);
  assert.deepEqual(env, {
    KAFKA_BROKERS: "127.0.0.1:9094",
    KAFKA_SECURITY_PROTOCOL: "SASL_SSL",
    KAFKA_SASL_MECHANISM: "SCRAM-SHA-256",
    KAFKA_SASL_USERNAME: "orders-pipeline",
    KAFKA_SASL_PASSWORD: 'p"w\\d',
    KAFKA_SSL_CA_LOCATION: "/data/secure/ca.pem",
  });
  assert.deepEqual(parseKafkaSecurity(env), {
    protocol: "SASL_SSL",
    tls: { caLocation: "/data/secure/ca.pem" },
    sasl: { mechanism: "SCRAM-SHA-256", username: "orders-pipeline", password: 'p"w\\d' },
  });
  assert.deepEqual(addScramArgs(MATERIAL), [
    "--add-scram",
    'SCRAM-SHA-256=[name=orders-pipeline,password=p"w\\d]',
    "--add-scram",
    'SCRAM-SHA-512=[name=orders-pipeline,password=p"w\\d]',
  ]);
});

Deno.test("startLocalBroker() refuses a securePort equal to another port", async () => {
  await assert.rejects(
    startLocalBroker({ port: 19500, secure: true, securePort: 19501 }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.field, "securePort");
      assert.equal(
        error.message,
        "Cannot start the local Kafka broker as 'securePort' must differ from 'port' and " +
          "'controllerPort': current value is 19501",
      );
      return true;
    },
  );
});

const hasJava = granted("env", "read", "write", "run") &&
  await findTool("java", Deno.env.get("PATH") ?? "") !== undefined;

Deno.test({
  name: "startLocalBroker() with secure refuses a data folder formatted without the SCRAM user",
  ignore: !hasJava,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    try {
      await Deno.mkdir(join(dataDir, "kraft"));
      await Deno.writeTextFile(join(dataDir, "kraft", "meta.properties"), "version=1\n");
      const [port, controllerPort, securePort] = freeLoopbackPorts(3);
      await assert.rejects(
        startLocalBroker({ port, controllerPort, securePort, secure: true, dataDir }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, String(error));
          assert.equal(error.field, "secure");
          assert.match(error.message, /formatted without the SCRAM user.*'fresh' \(--fresh\)/);
          return true;
        },
      );
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
