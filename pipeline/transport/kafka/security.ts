/**
 * Secured clusters on kafkajs: {@linkcode kafkaClientSecurity} turns the parsed settings of
 * `../_security.ts` (the one parser of `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*` and
 * `KAFKA_SSL_*`, re-exported here) into kafkajs's `ssl` and `sasl` options.
 * `createKafkaTransport` reads the environment through {@linkcode kafkaSecurityFromEnv} unless
 * it is given settings, so every command and every worker connects the same way.
 *
 * @example
 * ```ts
 * import { parseKafkaSecurity } from "./security.ts";
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
import type { ConnectionOptions } from "node:tls";
import type { SASLOptions } from "kafkajs";
import { clientCredentialsProvider } from "../_oauth_bearer.ts";
import type { ClientCredentialsOptions } from "../_oauth_bearer.ts";
import { readTlsOptions, requiredSasl, securitySecrets } from "../_security.ts";
import type { KafkaSecurity } from "../_security.ts";

export {
  describeSecurity,
  KAFKA_SECURITY_CONFIG,
  KAFKA_SECURITY_HELP,
  KafkaSecurityError,
  kafkaSecurityFromEnv,
  parseKafkaSecurity,
  PLAINTEXT,
  SASL_MECHANISMS,
  SECURITY_ENV,
  SECURITY_PROTOCOLS,
  securitySecrets,
  usesSasl,
  usesTls,
} from "../_security.ts";
export type {
  KafkaSecurity,
  OAuthBearerSasl,
  PasswordSasl,
  SaslMechanism,
  SecurityProtocol,
  TlsFiles,
} from "../_security.ts";

/** What kafkajs is given: its `ssl` and `sasl` options, and the secrets to redact. */
export interface KafkaClientSecurity {
  /** kafkajs's `ssl`: `true` for the system's CAs, TLS options, or `undefined` (no TLS). */
  readonly ssl?: boolean | ConnectionOptions;
  /** kafkajs's `sasl`, or `undefined` (no SASL). */
  readonly sasl?: SASLOptions;
  /**
   * Every secret in play, for redaction. A live list: OAUTHBEARER tokens are added as they
   * are fetched.
   */
  readonly secrets: readonly string[];
}

/** Options for {@linkcode kafkaClientSecurity}. */
export interface KafkaClientSecurityOptions {
  /**
   * How OAUTHBEARER tokens are fetched (the HTTP client, the clock, the timeout).
   * @default the defaults of {@linkcode ClientCredentialsOptions}
   */
  readonly oauth?: Omit<ClientCredentialsOptions, "onToken">;
}

/**
 * Turns settings into kafkajs options: reads the TLS files (PEM), decrypts the private key
 * with its password, and builds the OAUTHBEARER token provider.
 *
 * @throws {KafkaSecurityError} naming the variable of a file that cannot be read, a key that
 *   cannot be decrypted, or missing SASL settings for a SASL protocol
 *
 * @example
 * ```ts
 * import { kafkaClientSecurity } from "./security.ts";
 * const client = kafkaClientSecurity({
 *   protocol: "SASL_PLAINTEXT",
 *   sasl: { mechanism: "PLAIN", username: "alice", password: "s3cret" },
 * });
 * console.log(client.sasl?.mechanism, client.ssl); // plain undefined
 * ```
 */
export function kafkaClientSecurity(
  security: KafkaSecurity,
  options: KafkaClientSecurityOptions = {},
): KafkaClientSecurity {
  const settings = requiredSasl(security);
  const secrets = securitySecrets(security);
  const ssl = readTlsOptions(security);
  let sasl: SASLOptions | undefined;
  if (settings !== undefined) {
    if (settings.mechanism === "OAUTHBEARER") {
      const provider = clientCredentialsProvider(settings, {
        ...options.oauth,
        onToken: (token) => secrets.push(token),
      });
      sasl = { mechanism: "oauthbearer", oauthBearerProvider: provider };
    } else if (settings.mechanism === "PLAIN") {
      sasl = { mechanism: "plain", username: settings.username, password: settings.password };
    } else if (settings.mechanism === "SCRAM-SHA-256") {
      sasl = {
        mechanism: "scram-sha-256",
        username: settings.username,
        password: settings.password,
      };
    } else {
      sasl = {
        mechanism: "scram-sha-512",
        username: settings.username,
        password: settings.password,
      };
    }
  }
  return { ssl, sasl, secrets };
}
