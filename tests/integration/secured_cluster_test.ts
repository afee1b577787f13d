/**
 * Secured clusters, for real: a local Kafka started with `secure` (a SASL_SSL listener, a CA of
 * its own, a SCRAM user) on free ports. The pipeline command runs over that listener with the
 * variables the broker prints, counted on the broker by kcat; a wrong password, an untrusted
 * certificate, a plaintext client on the TLS listener and a TLS client on the plaintext one
 * each fail fast with a message naming the variable to fix; and the password shows up nowhere:
 * not in stdout, stderr, log lines, spans, DLQ envelopes or errors. Every case runs on each
 * Kafka client (`KAFKA_CLIENT=kafkajs` and `platformatic`), against the same broker.
 *
 * Needs java and keytool (the broker), and kcat (the outside witness): ignored with the reason
 * when one is missing, failing under CI.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { inspect } from "node:util";
import {
  createSecureMaterial,
  dropTimeoutNegativeWarnings,
  findTool,
  startLocalBroker,
} from "../../infra/kafka/mod.ts";
import type { LocalBroker } from "../../infra/kafka/mod.ts";
import type {
  KafkaLogRecord,
  KafkaSecurity,
  KafkaSecurityError as SecurityError,
} from "../../pipeline/transport/kafka/mod.ts";
import {
  type BrokerTransport,
  createBrokerTransport,
  KAFKA_CLIENTS,
  type KafkaClientName,
} from "../../pipeline/transport/broker.ts";
import { loadKafkaTransport } from "../_broker.ts";
import { granted } from "../_permissions.ts";
import { findExecutable } from "../_observability.ts";
import { startOtlpReceiver } from "../_otlp_receiver.ts";
import { startTokenEndpoint } from "./_oauth.ts";
import {
  freeLoopbackPorts,
  IN_CI,
  pipelineEnv,
  readTopic,
  spawnPipeline,
  uniqueNames,
} from "./_integration.ts";

/** The Kafka transport, loaded only where env access is granted (kafkajs reads env on load). */
const kafka = granted("env") ? await loadKafkaTransport() : undefined;
const { KafkaSecurityError, parseKafkaSecurity } = kafka ?? ({} as NonNullable<typeof kafka>);

const REPO_ROOT = new URL("../../", import.meta.url).pathname;
/** A failure this test expects must come within this time, not after kafkajs's long retries. */
const FAST_MS = 10_000;
const WRONG_PASSWORD = "wr0ng-pa55word-that-must-never-show";
/**
 * The broker ends each OAUTHBEARER session after this long (`connections.max.reauth.ms`), and
 * the clients re-authenticate: kafkajs before a request once the session is within 10 s of its
 * end (its `reauthenticationThreshold`: shorter sessions make it fail), @platformatic/kafka on a
 * timer at 80% of the session.
 */
const OAUTH_REAUTH_MS = 15_000;
/** The tokens' lifetime: reused for a second, then fetched anew (a minute before expiry). */
const TOKEN_SECONDS = 61;

/** What is missing to run the test here, if anything. */
async function missingTools(): Promise<string | undefined> {
  const searchPath = Deno.env.get("PATH") ?? "";
  const missing = [];
  for (const tool of ["java", "keytool", "mvn"]) {
    if (!(await findTool(tool, searchPath))) missing.push(tool);
  }
  if (await findExecutable("kcat") === undefined) missing.push("kcat");
  return missing.length === 0 ? undefined : `${missing.join(", ")} not on the PATH`;
}

/** Rejects with a clear error unless `call` rejects with a `KafkaSecurityError` in time. */
async function failsFast(
  call: () => Promise<unknown>,
  field: string,
  message: RegExp,
): Promise<SecurityError> {
  const started = Date.now();
  let caught: unknown;
  try {
    await call();
  } catch (error) {
    caught = error;
  }
  const elapsed = Date.now() - started;
  assert.ok(caught instanceof KafkaSecurityError, `expected a KafkaSecurityError: ${caught}`);
  assert.equal(caught.field, field, caught.message);
  assert.equal(caught.retriable, false);
  assert.match(caught.message, message);
  assert.ok(elapsed < FAST_MS, `failed after ${elapsed} ms: ${caught.message}`);
  return caught;
}

/** Asserts that none of `texts` holds any of `secrets`, naming where one was found. */
function assertNoSecret(texts: Record<string, string>, secrets: readonly string[]): void {
  for (const [where, text] of Object.entries(texts)) {
    for (const secret of secrets) {
      assert.ok(!text.includes(secret), `a secret appears in ${where}`);
    }
  }
}

/** Opens a transport on `client` with `security` on `brokers`, runs `fn`, always closes it. */
async function withTransport<T>(
  client: KafkaClientName,
  brokers: string,
  security: KafkaSecurity,
  fn: (transport: BrokerTransport) => Promise<T>,
  logs: KafkaLogRecord[] = [],
): Promise<T> {
  const transport = await createBrokerTransport(brokers, {
    client,
    security,
    logger: (record) => logs.push(record),
    logLevel: "debug",
    clientId: "secured-cluster-test",
  });
  try {
    return await fn(transport);
  } finally {
    await transport.close();
  }
}

const missing = granted("env", "read", "write", "run", "net")
  ? await missingTools()
  : "needs the permissions of 'deno test -P' and a broker: run 'deno task test'";
if (missing === undefined) dropTimeoutNegativeWarnings();
const NAME = "secured cluster: the pipeline runs over SASL_SSL and bad settings fail fast";

if (missing === undefined) {
  Deno.test({
    name: NAME,
    // kafkajs keeps sockets and timers a moment past disconnect(); every client, child process
    // and the broker are closed in `finally` blocks.
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      const kcat = (await findExecutable("kcat"))!;
      const [port, controllerPort, securePort] = freeLoopbackPorts(3);
      const dataDir = join(REPO_ROOT, ".local", "kafka", `secure-test-${Deno.pid}`);
      const brokerLog: string[] = [];
      let broker: LocalBroker | undefined;
      try {
        broker = await startLocalBroker({
          port,
          controllerPort,
          securePort,
          secure: true,
          fresh: true,
          dataDir,
          // A loaded CI machine can take minutes to start a JVM broker.
          readyTimeoutMs: 180_000,
          oauthBearerReauthMs: OAUTH_REAUTH_MS,
          log: (line) => brokerLog.push(line),
        });
        const plaintext = broker.brokers;
        const env = broker.secure!.env;
        const secure = env.KAFKA_BROKERS;
        const password = env.KAFKA_SASL_PASSWORD;
        const security = parseKafkaSecurity(env);

        await t.step("the broker prints what a client needs for SASL_SSL", () => {
          assert.equal(secure, `127.0.0.1:${securePort}`);
          assert.deepEqual(Object.keys(env), [
            "KAFKA_BROKERS",
            "KAFKA_SECURITY_PROTOCOL",
            "KAFKA_SASL_MECHANISM",
            "KAFKA_SASL_USERNAME",
            "KAFKA_SASL_PASSWORD",
            "KAFKA_SSL_CA_LOCATION",
          ]);
          assert.equal(security.protocol, "SASL_SSL");
          assert.equal(security.sasl?.mechanism, "SCRAM-SHA-256");
          assert.ok(password.length >= 24);
          assertNoSecret({ "the broker's log lines": brokerLog.join("\n") }, [password]);
        });

        for (const client of KAFKA_CLIENTS) {
          await t.step(
            `[${client}] the pipeline command pays every order over SASL_SSL, no secret shown`,
            async () => {
              await using receiver = await startOtlpReceiver();
              const names = uniqueNames(`secured-${client}`);
              const orders = 40;
              const run = spawnPipeline(
                [
                  "--max-orders",
                  `${orders}`,
                  "--rate",
                  "0",
                  "--failure-rate",
                  "0.6",
                  "--seed",
                  "7",
                ],
                {
                  ...env,
                  ...pipelineEnv(secure, names),
                  KAFKA_CLIENT: client,
                  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
                  OTEL_METRIC_EXPORT_INTERVAL: "1000",
                  LOG_LEVEL: "debug",
                },
              );
              try {
                const summary = await run.succeeded(480_000);
                assert.equal(summary.generated, orders);
                assert.equal(summary.paid + summary.dead_lettered, orders);
                assert.ok(summary.dead_lettered > 0, "some orders were dead-lettered");
                assert.match(
                  run.stderr(),
                  new RegExp(
                    `orders pipeline on kafka 127\\.0\\.0\\.1:\\d+ \\(${
                      client === "platformatic" ? "platformatic, " : ""
                    }SASL_SSL, SCRAM-SHA-256 as "orders-pipeline"\\)`,
                  ),
                );
                // Counted on the broker by another client (librdkafka), on the plaintext listener.
                const payments = await readTopic(kcat, plaintext, names.payments);
                const dlq = await readTopic(kcat, plaintext, names.dlq);
                assert.equal(new Set(payments.map((record) => record.key)).size, summary.paid);
                assert.equal(new Set(dlq.map((record) => record.key)).size, summary.dead_lettered);
                assert.ok(receiver.spans.length > 0, "the run exported spans");
                assertNoSecret({
                  stdout: run.stdout(),
                  stderr: run.stderr(),
                  "DLQ envelopes": JSON.stringify(dlq),
                  "payments": JSON.stringify(payments),
                  spans: JSON.stringify(receiver.spans),
                  "OTLP logs": JSON.stringify(receiver.logs),
                  "OTLP metrics": JSON.stringify(receiver.metrics),
                }, [password]);
              } finally {
                await run.stop();
              }
            },
          );

          await t.step(
            `[${client}] PLAIN and SCRAM-SHA-512 authenticate the same user, PLAIN by host name`,
            async () => {
              // By host name, the certificate is checked against "localhost" (and the name is
              // sent as the TLS server name); the broker then advertises its address.
              const byName = secure.replace("127.0.0.1", "localhost");
              for (const mechanism of ["PLAIN", "SCRAM-SHA-512"] as const) {
                const settings = parseKafkaSecurity({ ...env, KAFKA_SASL_MECHANISM: mechanism });
                const bootstrap = mechanism === "PLAIN" ? byName : secure;
                await withTransport(client, bootstrap, settings, async (transport) => {
                  const topic = `secured-${client}-${mechanism.toLowerCase()}-${Deno.pid}`;
                  await transport.ensureTopics([{ name: topic, partitions: 1 }]);
                  const producer = await transport.producer();
                  try {
                    await producer.send([{ topic, key: "k", value: "v" }]);
                  } finally {
                    await producer.close();
                  }
                  const offsets = await transport.endOffsets(topic);
                  assert.deepEqual(offsets.end.map((o) => o.offset), [1]);
                });
              }
            },
          );

          await t.step(
            `[${client}] OAUTHBEARER gets its tokens from a client-credentials endpoint, fresh ones as sessions end`,
            async () => {
              const clientSecret = "oauth-client-s3cret-never-shown";
              await using endpoint = startTokenEndpoint({ lifetimeSeconds: TOKEN_SECONDS });
              const oauth = parseKafkaSecurity({
                KAFKA_SECURITY_PROTOCOL: "SASL_SSL",
                KAFKA_SSL_CA_LOCATION: env.KAFKA_SSL_CA_LOCATION,
                KAFKA_SASL_MECHANISM: "OAUTHBEARER",
                KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: endpoint.url,
                KAFKA_SASL_OAUTHBEARER_CLIENT_ID: "payments",
                KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: clientSecret,
              });
              const logs: KafkaLogRecord[] = [];
              await withTransport(client, secure, oauth, async (transport) => {
                const topic = `secured-${client}-oauthbearer-${Deno.pid}`;
                await transport.ensureTopics([{ name: topic, partitions: 1 }]);
                const producer = await transport.producer();
                let sent = 0;
                try {
                  await producer.send([{ topic, key: "k", value: `${sent++}` }]);
                  // Poll: keep sending every 200 ms until the endpoint has issued two more
                  // tokens (the client re-authenticated as sessions ended), within a deadline.
                  const fetched = endpoint.grants.length;
                  const deadline = Date.now() + 6 * OAUTH_REAUTH_MS;
                  while (endpoint.grants.length < fetched + 2) {
                    assert.ok(Date.now() < deadline, "no fresh token as the sessions ended");
                    await new Promise((resolve) => setTimeout(resolve, 200));
                    await producer.send([{ topic, key: "k", value: `${sent++}` }]);
                  }
                } finally {
                  await producer.close();
                }
                // Every send succeeded, across sessions: nothing lost.
                const offsets = await transport.endOffsets(topic);
                assert.deepEqual(offsets.end.map((o) => o.offset), [sent]);
              }, logs);
              const { grants } = endpoint;
              assert.ok(grants.length >= 3 && grants.every((g) => g === "client_credentials"));

              endpoint.refuse();
              const error = await withTransport(client, secure, oauth, (transport) =>
                failsFast(
                  () => transport.producer(),
                  "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL",
                  /^Cannot fetch an OAUTHBEARER token from KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL "http:\/\/127\.0\.0\.1:\d+\/token" for client "payments": HTTP 401 invalid_client$/,
                ), logs);
              assertNoSecret({
                "the error, with its causes and stacks": inspect(error, { depth: 10 }),
                "the transport's log lines": JSON.stringify(logs),
              }, [clientSecret]);
            },
          );

          await t.step(
            `[${client}] a wrong password fails fast naming KAFKA_SASL_PASSWORD, shown nowhere`,
            async () => {
              const logs: KafkaLogRecord[] = [];
              const wrong = parseKafkaSecurity({ ...env, KAFKA_SASL_PASSWORD: WRONG_PASSWORD });
              const error = await withTransport(
                client,
                secure,
                wrong,
                (transport) =>
                  failsFast(
                    () => transport.endOffsets("orders"),
                    "KAFKA_SASL_PASSWORD",
                    /^Cannot authenticate to Kafka broker at "127\.0\.0\.1:\d+" as "orders-pipeline" with SCRAM-SHA-256: the broker refused it; check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD \(.*invalid credentials.*\)$/,
                  ),
                logs,
              );
              // kafkajs logs its failed authentication (redacted); @platformatic/kafka has no log.
              if (client === "kafkajs") {
                assert.ok(logs.length > 0, "kafkajs logged the failed authentication");
              }
              assertNoSecret({
                "the error, with its causes and stacks": inspect(error, { depth: 10 }),
                "the transport's log lines": JSON.stringify(logs),
              }, [WRONG_PASSWORD, password]);

              // The same through the command: exit 1, one clear line, no password.
              const names = uniqueNames(`wrongpassword-${client}`);
              const run = spawnPipeline(["--max-orders", "1"], {
                ...env,
                ...pipelineEnv(secure, names),
                KAFKA_CLIENT: client,
                KAFKA_SASL_PASSWORD: WRONG_PASSWORD,
              });
              try {
                const { code } = await run.exited(60_000);
                assert.equal(code, 1, run.stderr());
                assert.match(run.stderr(), /error: Cannot authenticate to Kafka broker at/);
                assertNoSecret({ stdout: run.stdout(), stderr: run.stderr() }, [
                  WRONG_PASSWORD,
                  password,
                ]);
              } finally {
                await run.stop();
              }
            },
          );

          await t.step(
            `[${client}] a certificate not signed by a trusted CA fails fast naming the CA variable`,
            async () => {
              const { tls: _tls, ...systemCas } = security;
              await withTransport(client, secure, systemCas, (transport) =>
                failsFast(
                  () => transport.producer(),
                  "KAFKA_SSL_CA_LOCATION",
                  /^Cannot connect to Kafka broker at "127\.0\.0\.1:\d+" over TLS as its certificate is not trusted by the system's CAs: .* \([A-Z_]+\); set KAFKA_SSL_CA_LOCATION/,
                ));
              // Another CA, made the same way as the broker's: trusted by the client, but it did
              // not sign the broker's certificate.
              const otherDir = await Deno.makeTempDir();
              try {
                const other = await createSecureMaterial(otherDir, "keytool");
                const otherCa = { ...security, tls: { caLocation: other.caFile } };
                await withTransport(client, secure, otherCa, (transport) =>
                  failsFast(
                    () => transport.producer(),
                    "KAFKA_SSL_CA_LOCATION",
                    /over TLS as its certificate is not trusted by the CA in KAFKA_SSL_CA_LOCATION ".*ca\.pem": .* \([A-Z_]+\); set KAFKA_SSL_CA_LOCATION to the PEM file of the CA that signed the broker's certificate$/,
                  ));
              } finally {
                await Deno.remove(otherDir, { recursive: true });
              }
            },
          );

          await t.step(
            `[${client}] a plaintext client on the TLS listener fails fast naming the protocol`,
            async () => {
              await withTransport(
                client,
                secure,
                { protocol: "PLAINTEXT" },
                (transport) =>
                  failsFast(
                    () => transport.ensureTopics([{ name: "orders", partitions: 1 }]),
                    "KAFKA_SECURITY_PROTOCOL",
                    /^Cannot connect to Kafka broker at "127\.0\.0\.1:\d+" with KAFKA_SECURITY_PROTOCOL "PLAINTEXT": the broker closed the connection without answering, as a TLS listener does with a plaintext client; if it expects TLS, set KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL$/,
                  ),
              );
            },
          );

          await t.step(
            `[${client}] a TLS client on the plaintext listener fails fast naming the protocol`,
            async () => {
              await withTransport(client, plaintext, security, (transport) =>
                failsFast(
                  () => transport.producer(),
                  "KAFKA_SECURITY_PROTOCOL",
                  /^Cannot connect to Kafka broker at "127\.0\.0\.1:\d+" with KAFKA_SECURITY_PROTOCOL "SASL_SSL": the connection was reset during the TLS handshake/,
                ));
            },
          );
        }
      } finally {
        await broker?.stop();
        await Deno.remove(dataDir, { recursive: true }).catch(() => undefined);
      }
    },
  });
} else if (IN_CI) {
  Deno.test(NAME, () => {
    throw new Error(`Cannot run the secured-cluster test under CI: ${missing}`);
  });
} else {
  Deno.test({ name: `${NAME} [ignored: ${missing}]`, ignore: true, fn: () => {} });
}
