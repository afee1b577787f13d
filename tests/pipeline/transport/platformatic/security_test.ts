/**
 * How the platformatic transport maps the parsed security settings onto @platformatic/kafka's
 * options (TLS files, SASL PLAIN / SCRAM / OAUTHBEARER with a token provider),
 * and what it makes of the client's errors on a failed first connection: the same
 * `KafkaSecurityError`s as on kafkajs, built from errors shaped as the client raises them
 * (seen against the real broker by tests/integration/secured_cluster_test.ts). No broker
 * needed; loading the client reads its WebAssembly file and the environment.
 *
 * @module
 */
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { KafkaSecurityError } from "../../../../pipeline/transport/_security_error.ts";
import { parseKafkaSecurity } from "../../../../pipeline/transport/_security.ts";
import { OAuthTokenError } from "../../../../pipeline/transport/_oauth_bearer.ts";
import { requires } from "../../../_permissions.ts";

const needsClient = requires("read", "env");

async function load() {
  const client = await import("@platformatic/kafka");
  const security = await import("../../../../pipeline/transport/platformatic/_security.ts");
  return { client, ...security };
}

const PASSWORD = "pa55-never-shown";
const SCRAM = parseKafkaSecurity({
  KAFKA_SECURITY_PROTOCOL: "SASL_SSL",
  KAFKA_SASL_MECHANISM: "SCRAM-SHA-512",
  KAFKA_SASL_USERNAME: "alice",
  KAFKA_SASL_PASSWORD: PASSWORD,
});
const BROKER = ["127.0.0.1:9094"];

Deno.test({
  name: "platformaticClientSecurity() maps PLAIN and SCRAM, with TLS or without",
  ...needsClient,
}, async () => {
  const { platformaticClientSecurity } = await load();
  const scram = platformaticClientSecurity(SCRAM);
  // The system's CAs; Deno sends each broker's host name as the TLS server name by itself.
  assert.deepEqual(scram.tls, {});
  assert.deepEqual(scram.sasl, {
    mechanism: "SCRAM-SHA-512",
    username: "alice",
    password: PASSWORD,
  });
  assert.deepEqual(scram.secrets, [PASSWORD]);

  const plain = platformaticClientSecurity(
    { protocol: "SASL_PLAINTEXT", sasl: { mechanism: "PLAIN", username: "a", password: "b" } },
  );
  assert.equal(plain.tls, undefined);
  assert.equal(plain.sasl?.mechanism, "PLAIN");

  const none = platformaticClientSecurity({ protocol: "PLAINTEXT" });
  assert.deepEqual(none, { secrets: [] });
});

Deno.test({
  name: "platformaticClientSecurity() reads the CA file and names a missing one",
  ...needsClient,
}, async () => {
  const { platformaticClientSecurity } = await load();
  const dir = await Deno.makeTempDir();
  try {
    const ca = `${dir}/ca.pem`;
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    await Deno.writeTextFile(ca, pem);
    const ssl = platformaticClientSecurity({ protocol: "SSL", tls: { caLocation: ca } });
    assert.deepEqual(ssl.tls, { ca: [pem] });
    assert.equal(ssl.sasl, undefined);
    assert.throws(
      () =>
        platformaticClientSecurity({
          protocol: "SSL",
          tls: { caLocation: `${dir}/missing.pem` },
        }),
      (error: unknown) =>
        error instanceof KafkaSecurityError && error.field === "KAFKA_SSL_CA_LOCATION" &&
        /no such file/.test(error.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "platformaticClientSecurity() gives OAUTHBEARER a token provider, fetched and refreshed",
  ...needsClient,
}, async () => {
  const { platformaticClientSecurity } = await load();
  let clock = 0;
  let issued = 0;
  const fetched: string[] = [];
  const client = platformaticClientSecurity(
    {
      protocol: "SASL_SSL",
      sasl: {
        mechanism: "OAUTHBEARER",
        tokenEndpointUrl: "https://idp.example/token",
        clientId: "payments",
        clientSecret: "client-s3cret",
      },
    },
    {
      oauth: {
        now: () => clock,
        fetch: (_url, init) => {
          fetched.push(String(init?.body));
          issued++;
          return Promise.resolve(
            Response.json({ access_token: `token-${issued}`, expires_in: 3600 }),
          );
        },
      },
    },
  );
  const sasl = client.sasl!;
  assert.equal(sasl.mechanism, "OAUTHBEARER");
  assert.equal(typeof sasl.token, "function");
  const token = sasl.token as () => Promise<string>;
  assert.equal(await token(), "token-1");
  assert.equal(await token(), "token-1", "reused until shortly before it expires");
  clock = 3600_000 - 30_000;
  assert.equal(await token(), "token-2", "fetched anew before it expires");
  assert.deepEqual(fetched, ["grant_type=client_credentials", "grant_type=client_credentials"]);
  assert.deepEqual(client.secrets, ["client-s3cret", "token-1", "token-2"]);
});

Deno.test({
  name: "platformatic securityFailure(): a refused password names KAFKA_SASL_PASSWORD",
  ...needsClient,
}, async () => {
  const { client, securityFailure } = await load();
  const refused = new client.ResponseError(
    36, // SaslAuthenticate
    2,
    { "": [58, "Authentication failed due to invalid credentials"] },
    { errorCode: 58, errorMessage: "Authentication failed due to invalid credentials" },
  );
  const error = new client.MultipleErrors("Cannot connect to any broker.", [
    new client.NetworkError("Connection to 127.0.0.1:9094 failed.", {
      cause: new client.AuthenticationError("SASL authentication failed.", { cause: refused }),
    }),
  ]);
  const mapped = securityFailure(error, SCRAM, BROKER);
  assert.ok(mapped instanceof KafkaSecurityError, String(mapped));
  assert.equal(mapped.field, "KAFKA_SASL_PASSWORD");
  assert.equal(mapped.retriable, false);
  assert.equal(
    mapped.message,
    'Cannot authenticate to Kafka broker at "127.0.0.1:9094" as "alice" with SCRAM-SHA-512: ' +
      "the broker refused it; check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and " +
      "KAFKA_SASL_PASSWORD (Authentication failed due to invalid credentials)",
  );
  assert.ok(!inspect(mapped, { depth: 10 }).includes(PASSWORD));
});

Deno.test({
  name: "platformatic securityFailure(): untrusted certificate, TLS expected, TLS refused",
  ...needsClient,
}, async () => {
  const { client, securityFailure } = await load();
  const socketError = (message: string, code: string) =>
    Object.assign(new Error(message), { code });
  const connection = (cause: Error) =>
    new client.MultipleErrors("Cannot connect to any broker.", [
      new client.NetworkError("Connection to 127.0.0.1:9094 failed.", { cause }),
    ]);

  const untrusted = securityFailure(
    connection(
      socketError("self-signed certificate in certificate chain", "SELF_SIGNED_CERT_IN_CHAIN"),
    ),
    SCRAM,
    BROKER,
  );
  assert.equal(untrusted?.field, "KAFKA_SSL_CA_LOCATION");
  assert.match(
    untrusted!.message,
    /^Cannot connect to Kafka broker at "127\.0\.0\.1:9094" over TLS as its certificate is not trusted by the system's CAs: self-signed certificate in certificate chain \(SELF_SIGNED_CERT_IN_CHAIN\); set KAFKA_SSL_CA_LOCATION/,
  );

  const expected = securityFailure(
    new client.UserError("Broker requires TLS."),
    { protocol: "PLAINTEXT" },
    BROKER,
  );
  assert.equal(expected?.field, "KAFKA_SECURITY_PROTOCOL");
  assert.match(expected!.message, /as a TLS listener does with a plaintext client/);

  const refused = securityFailure(
    connection(
      new client.UserError("TLS handshake failed. Please verify the broker supports TLS.", {
        cause: socketError("Client network socket disconnected", "ECONNRESET"),
      }),
    ),
    SCRAM,
    BROKER,
  );
  assert.equal(refused?.field, "KAFKA_SECURITY_PROTOCOL");
  assert.match(refused!.message, /reset during the TLS handshake, as a plaintext listener does/);

  // Nothing to do with the settings: left to the broker-unavailable path.
  assert.equal(
    securityFailure(connection(socketError("connect ECONNREFUSED", "ECONNREFUSED")), SCRAM, BROKER),
    undefined,
  );
});

Deno.test({
  name: "platformatic securityFailure(): the token endpoint's own error passes through",
  ...needsClient,
}, async () => {
  const { client, securityFailure } = await load();
  const own = new OAuthTokenError("Cannot fetch an OAUTHBEARER token", {
    field: "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL",
  });
  const error = new client.MultipleErrors("Cannot connect to any broker.", [
    new client.NetworkError("Connection to 127.0.0.1:9094 failed.", {
      cause: new client.AuthenticationError("The SASL/OAUTHBEARER token provider threw an error.", {
        cause: own,
      }),
    }),
  ]);
  assert.equal(securityFailure(error, SCRAM, BROKER), own);
});
