/**
 * The errors of a failed first connection that the security settings explain, worded once for
 * both Kafka transports: each client decides which failure it saw by its own error classes
 * and codes (`kafka/_security_failure.ts`, `platformatic/_security.ts`) and builds the error
 * here, so a user reads the same message, naming the same variable, whichever client runs.
 *
 * @module
 */
import { KafkaSecurityError } from "./_security_error.ts";
import { SECURITY_ENV, securitySecrets } from "./_security.ts";
import type { KafkaSecurity } from "./_security.ts";

/**
 * What went wrong, as far as the settings go:
 * - `"authentication"`: the broker refused the SASL credentials;
 * - `"untrusted-certificate"`: the broker's certificate is not trusted (or not for its name);
 * - `"tls-expected"`: a client without TLS on a TLS listener;
 * - `"tls-refused"`: a TLS client on a listener without TLS.
 */
export type SecurityFailureKind =
  | "authentication"
  | "untrusted-certificate"
  | "tls-expected"
  | "tls-refused";

/** Socket error codes of a TLS certificate the client does not trust (Node's names). */
export const UNTRUSTED_CERTIFICATE_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** What the client saw, for {@linkcode securityFailureError}. */
export interface SecurityFailure {
  /** Which failure. */
  readonly kind: SecurityFailureKind;
  /** The broker's or the socket's words; redacted here before use. */
  readonly detail: string;
  /** The socket error code, for `"untrusted-certificate"`. */
  readonly code?: string;
  /** The client's error. */
  readonly cause: unknown;
}

/** `Kafka broker at "host:port"` or `the Kafka brokers "a,b"`. */
export function brokersPhrase(brokers: readonly string[]): string {
  return brokers.length === 1
    ? `Kafka broker at "${brokers[0]}"`
    : `the Kafka brokers "${brokers.join(",")}"`;
}

/** `text` with every one of `secrets` replaced by `[redacted]` (empty ones ignored). */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  return secrets.reduce(
    (redacted, secret) => secret === "" ? redacted : redacted.split(secret).join("[redacted]"),
    text,
  );
}

/**
 * The {@linkcode KafkaSecurityError} for a failure, naming the variable to fix. The message
 * holds the broker's or the socket's words, never a secret.
 *
 * @example
 * ```ts
 * import { securityFailureError } from "./_security_failure.ts";
 * const error = securityFailureError(
 *   { protocol: "PLAINTEXT" },
 *   ["127.0.0.1:9094"],
 *   { kind: "tls-expected", detail: "connection closed", cause: undefined },
 * );
 * console.log(error.field); // KAFKA_SECURITY_PROTOCOL
 * ```
 */
export function securityFailureError(
  security: KafkaSecurity,
  brokers: readonly string[],
  failure: SecurityFailure,
): KafkaSecurityError {
  const where = brokersPhrase(brokers);
  const { protocol, sasl } = security;
  const detail = redactSecrets(failure.detail, securitySecrets(security));
  const { cause } = failure;
  switch (failure.kind) {
    case "authentication": {
      const [who, fields, field] = sasl?.mechanism === "OAUTHBEARER"
        ? [
          `client "${sasl.clientId}"`,
          `${SECURITY_ENV.tokenEndpointUrl}, ${SECURITY_ENV.clientId} and ${SECURITY_ENV.clientSecret}`,
          SECURITY_ENV.clientSecret,
        ]
        : [
          `"${sasl?.username}"`,
          `${SECURITY_ENV.username} and ${SECURITY_ENV.password}`,
          SECURITY_ENV.password,
        ];
      return new KafkaSecurityError(
        `Cannot authenticate to ${where} as ${who} with ${sasl?.mechanism}: the broker ` +
          `refused it; check ${SECURITY_ENV.mechanism}, ${fields} (${detail})`,
        { field, cause },
      );
    }
    case "untrusted-certificate": {
      const trusted = security.tls?.caLocation === undefined
        ? "the system's CAs"
        : `the CA in ${SECURITY_ENV.caLocation} "${security.tls.caLocation}"`;
      return new KafkaSecurityError(
        `Cannot connect to ${where} over TLS as its certificate is not trusted by ${trusted}: ` +
          `${detail} (${failure.code}); set ${SECURITY_ENV.caLocation} to the PEM file of the ` +
          `CA that signed the broker's certificate`,
        { field: SECURITY_ENV.caLocation, cause },
      );
    }
    case "tls-expected":
      return new KafkaSecurityError(
        `Cannot connect to ${where} with ${SECURITY_ENV.protocol} "${protocol}": the broker ` +
          `closed the connection without answering, as a TLS listener does with a plaintext ` +
          `client; if it expects TLS, set ${SECURITY_ENV.protocol} to SSL or SASL_SSL`,
        { field: SECURITY_ENV.protocol, cause },
      );
    case "tls-refused":
      return new KafkaSecurityError(
        `Cannot connect to ${where} with ${SECURITY_ENV.protocol} "${protocol}": the ` +
          `connection was reset during the TLS handshake, as a plaintext listener does; check ` +
          `that the port is the broker's TLS listener, or set ${SECURITY_ENV.protocol} to ` +
          `PLAINTEXT or SASL_PLAINTEXT`,
        { field: SECURITY_ENV.protocol, cause },
      );
  }
}
