import assert from "node:assert/strict";
import {
  describeSecurity,
  kafkaClientSecurity,
  KafkaSecurityError,
  parseKafkaSecurity,
  securitySecrets,
} from "../../../../pipeline/transport/kafka/security.ts";

const SCRAM = {
  KAFKA_SECURITY_PROTOCOL: "SASL_SSL",
  KAFKA_SASL_MECHANISM: "SCRAM-SHA-256",
  KAFKA_SASL_USERNAME: "alice",
  KAFKA_SASL_PASSWORD: "pa55-never-shown",
};

/** Asserts that parsing `env` fails naming `field`, with a message matching `message`. */
function refuses(env: Record<string, string>, field: string, message: RegExp): void {
  assert.throws(
    () => parseKafkaSecurity(env),
    (error: unknown) => {
      assert.ok(error instanceof KafkaSecurityError, String(error));
      assert.equal(error.field, field, error.message);
      assert.match(error.message, message);
      assert.equal(error.retriable, false);
      for (const secret of ["pa55-never-shown", "client-s3cret", "key-pa55"]) {
        assert.ok(!error.message.includes(secret), `a secret in: ${error.message}`);
      }
      return true;
    },
  );
}

Deno.test("parseKafkaSecurity() gives PLAINTEXT for an environment without security variables", () => {
  assert.deepEqual(parseKafkaSecurity({}), { protocol: "PLAINTEXT" });
  assert.deepEqual(parseKafkaSecurity({ KAFKA_SECURITY_PROTOCOL: "" }), { protocol: "PLAINTEXT" });
});

Deno.test("parseKafkaSecurity() reads SASL_SSL with SCRAM and a CA, names case-insensitive", () => {
  const security = parseKafkaSecurity({
    ...SCRAM,
    KAFKA_SECURITY_PROTOCOL: "sasl_ssl",
    KAFKA_SASL_MECHANISM: "scram-sha-256",
    KAFKA_SSL_CA_LOCATION: "/etc/kafka/ca.pem",
  });
  assert.deepEqual(security, {
    protocol: "SASL_SSL",
    tls: { caLocation: "/etc/kafka/ca.pem" },
    sasl: { mechanism: "SCRAM-SHA-256", username: "alice", password: "pa55-never-shown" },
  });
  assert.equal(describeSecurity(security), 'SASL_SSL, SCRAM-SHA-256 as "alice"');
  assert.deepEqual(securitySecrets(security), ["pa55-never-shown"]);
});

Deno.test("parseKafkaSecurity() reads OAUTHBEARER client credentials", () => {
  const security = parseKafkaSecurity({
    KAFKA_SECURITY_PROTOCOL: "SASL_PLAINTEXT",
    KAFKA_SASL_MECHANISM: "OAUTHBEARER",
    KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: "https://idp.example/token",
    KAFKA_SASL_OAUTHBEARER_CLIENT_ID: "payments",
    KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: "client-s3cret",
    KAFKA_SASL_OAUTHBEARER_SCOPE: "kafka",
  });
  assert.deepEqual(security.sasl, {
    mechanism: "OAUTHBEARER",
    tokenEndpointUrl: "https://idp.example/token",
    clientId: "payments",
    clientSecret: "client-s3cret",
    scope: "kafka",
  });
  assert.equal(describeSecurity(security), 'SASL_PLAINTEXT, OAUTHBEARER as client "payments"');
  assert.deepEqual(securitySecrets(security), ["client-s3cret"]);
});

Deno.test("parseKafkaSecurity() refuses bad values naming the variable, never a secret", () => {
  refuses(
    { KAFKA_SECURITY_PROTOCOL: "TLS" },
    "KAFKA_SECURITY_PROTOCOL",
    /^Cannot use KAFKA_SECURITY_PROTOCOL as it must be one of "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL": current value is "TLS"$/,
  );
  refuses(
    { ...SCRAM, KAFKA_SASL_MECHANISM: "GSSAPI" },
    "KAFKA_SASL_MECHANISM",
    /must be one of "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"/,
  );
  refuses(
    { ...SCRAM, KAFKA_SASL_MECHANISM: "" },
    "KAFKA_SASL_MECHANISM",
    /^Cannot use KAFKA_SECURITY_PROTOCOL "SASL_SSL" without KAFKA_SASL_MECHANISM: set it to one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER$/,
  );
  refuses(
    { ...SCRAM, KAFKA_SASL_PASSWORD: "" },
    "KAFKA_SASL_PASSWORD",
    /^Cannot use KAFKA_SASL_MECHANISM "SCRAM-SHA-256" without KAFKA_SASL_PASSWORD$/,
  );
  refuses(
    { ...SCRAM, KAFKA_SECURITY_PROTOCOL: "SSL" },
    "KAFKA_SASL_MECHANISM",
    /^Cannot use KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD as KAFKA_SECURITY_PROTOCOL is "SSL", which has no SASL: set KAFKA_SECURITY_PROTOCOL to SASL_SSL or SASL_PLAINTEXT, or unset them$/,
  );
  refuses(
    { KAFKA_SSL_CA_LOCATION: "/ca.pem" },
    "KAFKA_SSL_CA_LOCATION",
    /as KAFKA_SECURITY_PROTOCOL is "PLAINTEXT", which has no TLS: set KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL/,
  );
  refuses(
    { KAFKA_SECURITY_PROTOCOL: "SSL", KAFKA_SSL_CERTIFICATE_LOCATION: "/client.pem" },
    "KAFKA_SSL_KEY_LOCATION",
    /^Cannot use KAFKA_SSL_CERTIFICATE_LOCATION without KAFKA_SSL_KEY_LOCATION/,
  );
  refuses(
    { KAFKA_SECURITY_PROTOCOL: "SSL", KAFKA_SSL_KEY_PASSWORD: "key-pa55" },
    "KAFKA_SSL_KEY_LOCATION",
    /^Cannot use KAFKA_SSL_KEY_PASSWORD without KAFKA_SSL_KEY_LOCATION/,
  );
  refuses(
    { ...SCRAM, KAFKA_SASL_OAUTHBEARER_CLIENT_ID: "payments" },
    "KAFKA_SASL_OAUTHBEARER_CLIENT_ID",
    /with KAFKA_SASL_MECHANISM "SCRAM-SHA-256": they belong to OAUTHBEARER$/,
  );
  const oauth = {
    KAFKA_SECURITY_PROTOCOL: "SASL_SSL",
    KAFKA_SASL_MECHANISM: "OAUTHBEARER",
    KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: "https://idp.example/token",
    KAFKA_SASL_OAUTHBEARER_CLIENT_ID: "payments",
    KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: "client-s3cret",
  };
  refuses(
    { ...oauth, KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: "" },
    "KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET",
    /without KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET$/,
  );
  refuses(
    { ...oauth, KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: "ftp://user:client-s3cret@idp/token" },
    "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL",
    /must be an http\(s\) URL: current value is "ftp:\/\/idp\/token"$/,
  );
  refuses(
    { ...oauth, KAFKA_SASL_PASSWORD: "pa55-never-shown" },
    "KAFKA_SASL_PASSWORD",
    /with KAFKA_SASL_MECHANISM "OAUTHBEARER": it authenticates with/,
  );
});

Deno.test("kafkaClientSecurity() gives kafkajs its sasl and ssl options", () => {
  const none = kafkaClientSecurity({ protocol: "PLAINTEXT" });
  assert.equal(none.ssl, undefined);
  assert.equal(none.sasl, undefined);
  const systemCas = kafkaClientSecurity({
    protocol: "SASL_SSL",
    sasl: { mechanism: "SCRAM-SHA-512", username: "alice", password: "pa55-never-shown" },
  });
  assert.equal(systemCas.ssl, true);
  assert.deepEqual(systemCas.sasl, {
    mechanism: "scram-sha-512",
    username: "alice",
    password: "pa55-never-shown",
  });
  assert.deepEqual(systemCas.secrets, ["pa55-never-shown"]);
  assert.throws(
    () => kafkaClientSecurity({ protocol: "SASL_SSL" }),
    /^KafkaSecurityError: Cannot use KAFKA_SECURITY_PROTOCOL "SASL_SSL" without SASL settings: set KAFKA_SASL_MECHANISM and its credentials$/,
  );
  const oauth = kafkaClientSecurity({
    protocol: "SASL_PLAINTEXT",
    sasl: {
      mechanism: "OAUTHBEARER",
      tokenEndpointUrl: "http://127.0.0.1:1/token",
      clientId: "payments",
      clientSecret: "client-s3cret",
    },
  });
  assert.equal(oauth.sasl?.mechanism, "oauthbearer");
  assert.equal(
    typeof (oauth.sasl as { oauthBearerProvider?: unknown }).oauthBearerProvider,
    "function",
  );
});

Deno.test({
  name: "kafkaClientSecurity() reads the PEM files and names the variable of one it cannot read",
  ignore: !granted("read", "write"),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const ca = `${dir}/ca.pem`;
      const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
      await Deno.writeTextFile(ca, pem);
      const client = kafkaClientSecurity({ protocol: "SSL", tls: { caLocation: ca } });
      assert.deepEqual(client.ssl, { ca: [pem] });

      for (
        const [tls, field, message] of [
          [{ caLocation: `${dir}/missing.pem` }, "KAFKA_SSL_CA_LOCATION", /: no such file$/],
          [{ caLocation: `${dir}` }, "KAFKA_SSL_CA_LOCATION", /^Cannot read KAFKA_SSL_CA_LOCATION/],
          [
            { certificateLocation: ca, keyLocation: `${dir}/key.pem` },
            "KAFKA_SSL_KEY_LOCATION",
            /^Cannot read KAFKA_SSL_KEY_LOCATION ".*key.pem": no such file$/,
          ],
        ] as const
      ) {
        assert.throws(() => kafkaClientSecurity({ protocol: "SSL", tls }), (error: unknown) => {
          assert.ok(error instanceof KafkaSecurityError, String(error));
          assert.equal(error.field, field);
          assert.match(error.message, message);
          return true;
        });
      }
      await Deno.writeTextFile(`${dir}/not-pem.txt`, "hello");
      assert.throws(
        () => kafkaClientSecurity({ protocol: "SSL", tls: { caLocation: `${dir}/not-pem.txt` } }),
        /holds no PEM certificate/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "kafkaClientSecurity() decrypts a password-protected key, and names the password when wrong",
  ignore: !granted("read", "write", "run") || !hasOpenssl(),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const key = `${dir}/key.pem`;
      const cert = `${dir}/cert.pem`;
      await openssl([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${dir}/plain.pem`,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        "/CN=client",
      ]); // deno-fmt-ignore
      await openssl([
        "rsa", "-in", `${dir}/plain.pem`, "-traditional", "-aes256", "-passout", "pass:key-pa55",
        "-out", key,
      ]); // deno-fmt-ignore
      const tls = { certificateLocation: cert, keyLocation: key, keyPassword: "key-pa55" };
      const client = kafkaClientSecurity({ protocol: "SSL", tls });
      const options = client.ssl as { key: string; cert: string };
      assert.match(options.key, /^-----BEGIN PRIVATE KEY-----/);
      assert.equal(options.cert, await Deno.readTextFile(cert));
      assert.deepEqual(client.secrets, ["key-pa55"]);

      assert.throws(
        () => kafkaClientSecurity({ protocol: "SSL", tls: { ...tls, keyPassword: "wrong-pa55" } }),
        (error: unknown) => {
          assert.ok(error instanceof KafkaSecurityError, String(error));
          assert.equal(error.field, "KAFKA_SSL_KEY_PASSWORD");
          assert.match(
            error.message,
            /^Cannot decrypt KAFKA_SSL_KEY_LOCATION ".*" with KAFKA_SSL_KEY_PASSWORD: /,
          );
          assert.ok(!error.message.includes("wrong-pa55"));
          return true;
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Whether the test process has these permissions (plain `deno test` has none). */
function granted(...names: ("read" | "write" | "run")[]): boolean {
  return names.every((name) => Deno.permissions.querySync({ name }).state === "granted");
}

function hasOpenssl(): boolean {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

async function openssl(args: string[]): Promise<void> {
  const output = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
    .output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
}
