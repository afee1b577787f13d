/**
 * Secured clusters: TLS and SASL settings named after librdkafka's properties
 * (`security.protocol` is `KAFKA_SECURITY_PROTOCOL`, `sasl.mechanism` is
 * `KAFKA_SASL_MECHANISM`, ...), which Redpanda and Confluent users already know. This is the
 * client-independent half, shared by both Kafka transports; each client's mapping of it lives
 * in its folder (`kafka/security.ts` for kafkajs, `platformatic/_security.ts`).
 *
 * One spec ({@linkcode KAFKA_SECURITY_CONFIG}) lists every variable; one parser
 * ({@linkcode parseKafkaSecurity}) reads and cross-checks them into a {@linkcode KafkaSecurity}
 * (plain data, so the supervisor can post it to its workers); {@linkcode readTlsOptions} reads
 * its TLS files into Node TLS options, which both clients take.
 *
 * Secrets (passwords, the key password, the client secret, tokens) are listed by
 * {@linkcode securitySecrets} for the log redaction and never written into a message by this
 * module.
 *
 * @example
 * ```ts
 * import { parseKafkaSecurity } from "./_security.ts";
 * const security = parseKafkaSecurity({
 *   KAFKA_SECURITY_PROTOCOL: "SASL_PLAINTEXT",
 *   KAFKA_SASL_MECHANISM: "SCRAM-SHA-256",
 *   KAFKA_SASL_USERNAME: "alice",
 *   KAFKA_SASL_PASSWORD: "s3cret",
 * });
 * console.log(security.protocol, security.sasl?.mechanism); // SASL_PLAINTEXT SCRAM-SHA-256
 * ```
 *
 * @module
 */
import { createPrivateKey } from "node:crypto";
import type { ConnectionOptions } from "node:tls";
import { type ConfigSpec, parseConfig, setting } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { KafkaSecurityError } from "./_security_error.ts";
import { displayUrl } from "./_oauth_bearer.ts";

export { KafkaSecurityError };

/** The values of `KAFKA_SECURITY_PROTOCOL`, as librdkafka's `security.protocol`. */
export const SECURITY_PROTOCOLS = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] as const;

/** The values of `KAFKA_SASL_MECHANISM`, as librdkafka's `sasl.mechanism`. */
export const SASL_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] as const;

/** A `KAFKA_SECURITY_PROTOCOL` value. */
export type SecurityProtocol = typeof SECURITY_PROTOCOLS[number];

/** A `KAFKA_SASL_MECHANISM` value. */
export type SaslMechanism = typeof SASL_MECHANISMS[number];

/** The environment variables, by setting; shared by the spec, the parser and the errors. */
export const SECURITY_ENV = {
  protocol: "KAFKA_SECURITY_PROTOCOL",
  mechanism: "KAFKA_SASL_MECHANISM",
  username: "KAFKA_SASL_USERNAME",
  password: "KAFKA_SASL_PASSWORD",
  caLocation: "KAFKA_SSL_CA_LOCATION",
  certificateLocation: "KAFKA_SSL_CERTIFICATE_LOCATION",
  keyLocation: "KAFKA_SSL_KEY_LOCATION",
  keyPassword: "KAFKA_SSL_KEY_PASSWORD",
  tokenEndpointUrl: "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL",
  clientId: "KAFKA_SASL_OAUTHBEARER_CLIENT_ID",
  clientSecret: "KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET",
  scope: "KAFKA_SASL_OAUTHBEARER_SCOPE",
} as const;

/** Every security setting; `--help` texts and the README table are generated from it. */
export const KAFKA_SECURITY_CONFIG = {
  protocol: setting({
    type: "string",
    env: SECURITY_ENV.protocol,
    default: "PLAINTEXT",
    choices: SECURITY_PROTOCOLS,
    description:
      "How clients talk to the brokers (librdkafka's security.protocol): PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS)",
  }),
  mechanism: setting({
    type: "string",
    env: SECURITY_ENV.mechanism,
    choices: SASL_MECHANISMS,
    description:
      "SASL mechanism (sasl.mechanism), required with SASL_*: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
  }),
  username: setting({
    type: "string",
    env: SECURITY_ENV.username,
    description: "SASL username for PLAIN and SCRAM (sasl.username)",
  }),
  password: setting({
    type: "string",
    env: SECURITY_ENV.password,
    description: "SASL password for PLAIN and SCRAM (sasl.password); never logged",
  }),
  caLocation: setting({
    type: "string",
    env: SECURITY_ENV.caLocation,
    description:
      "PEM file of the CA certificate(s) that signed the brokers' certificates (ssl.ca.location); unset trusts the system's CAs",
  }),
  certificateLocation: setting({
    type: "string",
    env: SECURITY_ENV.certificateLocation,
    description:
      "PEM file of the client certificate, for brokers that authenticate clients by TLS (ssl.certificate.location)",
  }),
  keyLocation: setting({
    type: "string",
    env: SECURITY_ENV.keyLocation,
    description: "PEM file of the client certificate's private key (ssl.key.location)",
  }),
  keyPassword: setting({
    type: "string",
    env: SECURITY_ENV.keyPassword,
    description:
      "Password of an encrypted private key (ssl.key.password; traditional PEM encryption, see Known limits); never logged",
  }),
  tokenEndpointUrl: setting({
    type: "string",
    env: SECURITY_ENV.tokenEndpointUrl,
    description:
      "OAUTHBEARER: the OAuth 2 token endpoint, asked for tokens with the client-credentials grant (sasl.oauthbearer.token.endpoint.url)",
  }),
  clientId: setting({
    type: "string",
    env: SECURITY_ENV.clientId,
    description: "OAUTHBEARER: the OAuth client id (sasl.oauthbearer.client.id)",
  }),
  clientSecret: setting({
    type: "string",
    env: SECURITY_ENV.clientSecret,
    description:
      "OAUTHBEARER: the OAuth client secret (sasl.oauthbearer.client.secret); never logged",
  }),
  scope: setting({
    type: "string",
    env: SECURITY_ENV.scope,
    description:
      "OAUTHBEARER: the scope to ask for, if the provider needs one (sasl.oauthbearer.scope)",
  }),
} as const;

/** SASL with a username and password: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. */
export interface PasswordSasl {
  /** The mechanism. */
  readonly mechanism: "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512";
  /** `KAFKA_SASL_USERNAME`. */
  readonly username: string;
  /** `KAFKA_SASL_PASSWORD`: a secret. */
  readonly password: string;
}

/** SASL/OAUTHBEARER with tokens from an OAuth 2 client-credentials grant. */
export interface OAuthBearerSasl {
  /** Always `"OAUTHBEARER"`. */
  readonly mechanism: "OAUTHBEARER";
  /** `KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL`. */
  readonly tokenEndpointUrl: string;
  /** `KAFKA_SASL_OAUTHBEARER_CLIENT_ID`. */
  readonly clientId: string;
  /** `KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET`: a secret. */
  readonly clientSecret: string;
  /** `KAFKA_SASL_OAUTHBEARER_SCOPE`, if any. */
  readonly scope?: string;
}

/** TLS files; every field optional (no CA trusts the system's CAs). */
export interface TlsFiles {
  /** `KAFKA_SSL_CA_LOCATION`: PEM file of the CA certificate(s). */
  readonly caLocation?: string;
  /** `KAFKA_SSL_CERTIFICATE_LOCATION`: PEM file of the client certificate. */
  readonly certificateLocation?: string;
  /** `KAFKA_SSL_KEY_LOCATION`: PEM file of the client's private key. */
  readonly keyLocation?: string;
  /** `KAFKA_SSL_KEY_PASSWORD`: a secret. */
  readonly keyPassword?: string;
}

/**
 * How clients connect: plain data (structured-clone-able, so workers receive it by
 * `postMessage`). Build it with {@linkcode parseKafkaSecurity} or by hand.
 */
export interface KafkaSecurity {
  /** `KAFKA_SECURITY_PROTOCOL`. */
  readonly protocol: SecurityProtocol;
  /** The SASL settings; present exactly when `protocol` is `SASL_PLAINTEXT` or `SASL_SSL`. */
  readonly sasl?: PasswordSasl | OAuthBearerSasl;
  /** The TLS files; only with `SSL` or `SASL_SSL`. */
  readonly tls?: TlsFiles;
}

/** Plaintext, no authentication: what an unset environment means. */
export const PLAINTEXT: KafkaSecurity = Object.freeze({ protocol: "PLAINTEXT" });

/** Whether the protocol uses TLS. */
export function usesTls(protocol: SecurityProtocol): boolean {
  return protocol === "SSL" || protocol === "SASL_SSL";
}

/** Whether the protocol uses SASL. */
export function usesSasl(protocol: SecurityProtocol): boolean {
  return protocol === "SASL_PLAINTEXT" || protocol === "SASL_SSL";
}

function fail(message: string, field: string): never {
  throw new KafkaSecurityError(message, { field });
}

/** Names of the variables of a group that are set, for "is set but ..." errors. */
function setNames(
  values: Record<string, unknown>,
  keys: readonly (keyof typeof SECURITY_ENV)[],
): string[] {
  return keys.filter((key) => values[key] !== undefined).map((key) => SECURITY_ENV[key]);
}

const PASSWORD_KEYS = ["username", "password"] as const;
const OAUTH_KEYS = ["tokenEndpointUrl", "clientId", "clientSecret", "scope"] as const;
const SASL_KEYS = ["mechanism", ...PASSWORD_KEYS, ...OAUTH_KEYS] as const;
const TLS_KEYS = ["caLocation", "certificateLocation", "keyLocation", "keyPassword"] as const;

/**
 * Reads and cross-checks the security variables of `env`: the one place they are validated.
 * Protocol and mechanism names are case-insensitive, as in librdkafka.
 *
 * @throws {KafkaSecurityError} naming the variable at fault: an unknown value, a SASL protocol
 *   without its mechanism or credentials, SASL or TLS variables with a protocol that does not
 *   use them, a certificate without its key, a token endpoint that is not an http(s) URL
 *
 * @example
 * ```ts
 * import { parseKafkaSecurity } from "./_security.ts";
 * console.log(parseKafkaSecurity({}).protocol); // PLAINTEXT
 * ```
 */
export function parseKafkaSecurity(env: Record<string, string | undefined>): KafkaSecurity {
  const normalised = { ...env };
  for (const name of [SECURITY_ENV.protocol, SECURITY_ENV.mechanism]) {
    normalised[name] = env[name]?.trim().toUpperCase();
  }
  let values;
  try {
    ({ values } = parseConfig(KAFKA_SECURITY_CONFIG, { env: normalised, args: [] }));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // The generic message quotes the value: fine for choices, never for a secret.
    throw new KafkaSecurityError(error.message, { field: error.field, cause: error });
  }
  const protocol = values.protocol as SecurityProtocol;
  const tls = usesTls(protocol);
  const sasl = usesSasl(protocol);

  const strayTls = tls ? [] : setNames(values, TLS_KEYS);
  if (strayTls.length > 0) {
    fail(
      `Cannot use ${strayTls.join(", ")} as ${SECURITY_ENV.protocol} is "${protocol}", ` +
        `which has no TLS: set ${SECURITY_ENV.protocol} to SSL or SASL_SSL, or unset them`,
      strayTls[0],
    );
  }
  const straySasl = sasl ? [] : setNames(values, SASL_KEYS);
  if (straySasl.length > 0) {
    fail(
      `Cannot use ${straySasl.join(", ")} as ${SECURITY_ENV.protocol} is "${protocol}", ` +
        `which has no SASL: set ${SECURITY_ENV.protocol} to SASL_SSL or SASL_PLAINTEXT, ` +
        `or unset them`,
      straySasl[0],
    );
  }

  const security: { -readonly [K in keyof KafkaSecurity]: KafkaSecurity[K] } = { protocol };
  if (tls) {
    const files: TlsFiles = {
      caLocation: values.caLocation,
      certificateLocation: values.certificateLocation,
      keyLocation: values.keyLocation,
      keyPassword: values.keyPassword,
    };
    if ((files.certificateLocation === undefined) !== (files.keyLocation === undefined)) {
      const [missing, given] = files.certificateLocation === undefined
        ? [SECURITY_ENV.certificateLocation, SECURITY_ENV.keyLocation]
        : [SECURITY_ENV.keyLocation, SECURITY_ENV.certificateLocation];
      fail(
        `Cannot use ${given} without ${missing}: a client certificate needs both the ` +
          `certificate and its private key`,
        missing,
      );
    }
    if (files.keyPassword !== undefined && files.keyLocation === undefined) {
      fail(
        `Cannot use ${SECURITY_ENV.keyPassword} without ${SECURITY_ENV.keyLocation}: ` +
          `it decrypts that key`,
        SECURITY_ENV.keyLocation,
      );
    }
    security.tls = Object.fromEntries(
      Object.entries(files).filter(([, value]) => value !== undefined),
    ) as TlsFiles;
  }
  if (sasl) security.sasl = parseSasl(values, protocol);
  return security;
}

function parseSasl(
  values: Record<string, string | undefined>,
  protocol: SecurityProtocol,
): PasswordSasl | OAuthBearerSasl {
  const mechanism = values.mechanism as SaslMechanism | undefined;
  if (mechanism === undefined) {
    fail(
      `Cannot use ${SECURITY_ENV.protocol} "${protocol}" without ${SECURITY_ENV.mechanism}: ` +
        `set it to one of ${SASL_MECHANISMS.join(", ")}`,
      SECURITY_ENV.mechanism,
    );
  }
  const require = (key: keyof typeof SECURITY_ENV): string => {
    const value = values[key];
    if (value === undefined) {
      fail(
        `Cannot use ${SECURITY_ENV.mechanism} "${mechanism}" without ${SECURITY_ENV[key]}`,
        SECURITY_ENV[key],
      );
    }
    return value;
  };
  if (mechanism === "OAUTHBEARER") {
    const stray = setNames(values, PASSWORD_KEYS);
    if (stray.length > 0) {
      fail(
        `Cannot use ${stray.join(", ")} with ${SECURITY_ENV.mechanism} "OAUTHBEARER": ` +
          `it authenticates with ${SECURITY_ENV.clientId} and ${SECURITY_ENV.clientSecret}`,
        stray[0],
      );
    }
    const tokenEndpointUrl = require("tokenEndpointUrl");
    checkTokenEndpoint(tokenEndpointUrl);
    const oauth: OAuthBearerSasl = {
      mechanism,
      tokenEndpointUrl,
      clientId: require("clientId"),
      clientSecret: require("clientSecret"),
    };
    return values.scope === undefined ? oauth : { ...oauth, scope: values.scope };
  }
  const stray = setNames(values, OAUTH_KEYS);
  if (stray.length > 0) {
    fail(
      `Cannot use ${stray.join(", ")} with ${SECURITY_ENV.mechanism} "${mechanism}": ` +
        `they belong to OAUTHBEARER`,
      stray[0],
    );
  }
  return { mechanism, username: require("username"), password: require("password") };
}

function checkTokenEndpoint(value: string): void {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "https:" && url.protocol !== "http:")) {
    fail(
      `Cannot use ${SECURITY_ENV.tokenEndpointUrl} as it must be an http(s) URL: ` +
        `current value is "${displayUrl(value)}"`,
      SECURITY_ENV.tokenEndpointUrl,
    );
  }
}

/**
 * The security settings of the process environment (see {@linkcode parseKafkaSecurity}).
 * Reads the environment when called, never at import.
 *
 * @param env The environment; defaults to `Deno.env.toObject()` (needs `--allow-env`).
 * @throws {KafkaSecurityError} naming the variable at fault
 *
 * @example
 * ```ts ignore
 * import { kafkaSecurityFromEnv } from "./_security.ts";
 * const security = kafkaSecurityFromEnv(); // PLAINTEXT unless KAFKA_SECURITY_PROTOCOL says else
 * ```
 */
export function kafkaSecurityFromEnv(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): KafkaSecurity {
  return parseKafkaSecurity(env);
}

/**
 * The security settings in a few words, secrets left out: `SASL_SSL, SCRAM-SHA-256 as "alice"`.
 */
export function describeSecurity(security: KafkaSecurity): string {
  const { protocol, sasl } = security;
  if (sasl === undefined) return protocol;
  if (sasl.mechanism === "OAUTHBEARER") {
    return `${protocol}, OAUTHBEARER as client "${sasl.clientId}"`;
  }
  return `${protocol}, ${sasl.mechanism} as "${sasl.username}"`;
}

/** The secrets of a {@linkcode KafkaSecurity}: the strings no log line or message may hold. */
export function securitySecrets(security: KafkaSecurity): string[] {
  const secrets = [security.tls?.keyPassword];
  const { sasl } = security;
  if (sasl?.mechanism === "OAUTHBEARER") secrets.push(sasl.clientSecret);
  else if (sasl !== undefined) secrets.push(sasl.password);
  return secrets.filter((secret): secret is string => secret !== undefined && secret !== "");
}

/**
 * The SASL settings of a SASL protocol, or `undefined` for a protocol without SASL.
 *
 * @throws {KafkaSecurityError} for a SASL protocol without SASL settings (a hand-built
 *   {@linkcode KafkaSecurity}; the parser never returns one)
 */
export function requiredSasl(
  security: KafkaSecurity,
): PasswordSasl | OAuthBearerSasl | undefined {
  if (!usesSasl(security.protocol)) return undefined;
  if (security.sasl === undefined) {
    fail(
      `Cannot use ${SECURITY_ENV.protocol} "${security.protocol}" without SASL settings: ` +
        `set ${SECURITY_ENV.mechanism} and its credentials`,
      SECURITY_ENV.mechanism,
    );
  }
  return security.sasl;
}

/**
 * The Node TLS options of a TLS protocol, which both clients take: `true` for the system's
 * CAs and no client certificate, the files read (PEM) otherwise, the private key decrypted
 * with its password; `undefined` for a protocol without TLS. The broker's certificate is
 * always verified, its name included (Node's defaults are kept).
 *
 * @throws {KafkaSecurityError} naming the variable of a file that cannot be read, a CA file
 *   without a certificate, or a key that cannot be decrypted
 *
 * @example
 * ```ts
 * import { readTlsOptions } from "./_security.ts";
 * console.log(readTlsOptions({ protocol: "SSL" })); // true
 * ```
 */
export function readTlsOptions(security: KafkaSecurity): true | ConnectionOptions | undefined {
  return usesTls(security.protocol) ? tlsOptions(security.tls ?? {}) : undefined;
}

function readPem(path: string, field: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
      ? "no permission to read it"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new KafkaSecurityError(`Cannot read ${field} "${path}": ${reason}`, {
      field,
      cause: error,
    });
  }
}

function tlsOptions(files: TlsFiles): true | ConnectionOptions {
  const { caLocation, certificateLocation, keyLocation, keyPassword } = files;
  if (caLocation === undefined && certificateLocation === undefined) return true;
  const options: ConnectionOptions = {};
  if (caLocation !== undefined) {
    const ca = readPem(caLocation, SECURITY_ENV.caLocation);
    if (!ca.includes("-----BEGIN CERTIFICATE-----")) {
      fail(
        `Cannot use ${SECURITY_ENV.caLocation} "${caLocation}" as it holds no PEM ` +
          `certificate ("-----BEGIN CERTIFICATE-----")`,
        SECURITY_ENV.caLocation,
      );
    }
    options.ca = [ca];
  }
  if (certificateLocation !== undefined && keyLocation !== undefined) {
    options.cert = readPem(certificateLocation, SECURITY_ENV.certificateLocation);
    const key = readPem(keyLocation, SECURITY_ENV.keyLocation);
    options.key = keyPassword === undefined ? key : decryptKey(key, keyLocation, keyPassword);
  }
  return options;
}

/**
 * Decrypts a password-protected PEM key here, because Deno's `node:tls` does not apply a
 * `passphrase` itself. Deno's `node:crypto` reads traditional encrypted PEM
 * (`Proc-Type: 4,ENCRYPTED`), not encrypted PKCS#8.
 */
function decryptKey(pem: string, location: string, password: string): string {
  try {
    return createPrivateKey({ key: pem, passphrase: password })
      .export({ format: "pem", type: "pkcs8" })
      .toString();
  } catch (error) {
    const pkcs8 = pem.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----");
    // The crypto error says "bad decrypt" or "unsupported": never anything of the password.
    const detail = error instanceof Error ? error.message : String(error);
    throw new KafkaSecurityError(
      `Cannot decrypt ${SECURITY_ENV.keyLocation} "${location}" with ` +
        `${SECURITY_ENV.keyPassword}: ${detail}` +
        (pkcs8
          ? "; encrypted PKCS#8 keys are not supported here: convert it with " +
            "'openssl rsa -in key.pem -traditional -aes256 -out key-traditional.pem'"
          : ""),
      { field: SECURITY_ENV.keyPassword, cause: error },
    );
  }
}

/** The security settings as a `--help` section, for every command that connects to Kafka. */
export const KAFKA_SECURITY_HELP: { readonly title: string; readonly spec: ConfigSpec } = {
  title: "Kafka security (environment variables, named after librdkafka's properties)",
  spec: KAFKA_SECURITY_CONFIG,
};
