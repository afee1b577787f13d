/**
 * What a failed first connection says about the security settings: the kafkajs side of
 * `./security.ts`, kept apart so that parsing the settings needs no kafkajs (and no
 * permissions).
 *
 * @module
 */
import kafkajs from "kafkajs";
import { KafkaSecurityError, SECURITY_ENV, securitySecrets, usesTls } from "./security.ts";
import type { KafkaSecurity } from "./security.ts";
import { PipelineError } from "../../errors.ts";
import { rootCause } from "./_errors.ts";

const { KafkaJSConnectionError, KafkaJSSASLAuthenticationError } = kafkajs;

/**
 * The connection closed by the broker: exported by kafkajs at runtime but missing from its
 * typings (a subclass of `KafkaJSConnectionError`), hence the cast.
 */
const KafkaJSConnectionClosedError = (kafkajs as unknown as {
  KafkaJSConnectionClosedError: typeof KafkaJSConnectionError;
}).KafkaJSConnectionClosedError;

/** Socket error codes of a TLS certificate the client does not trust (Node's names). */
const UNTRUSTED_CERTIFICATE_CODES = new Set([
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

/**
 * What a failed first connection says about the security settings, as a
 * {@linkcode KafkaSecurityError} naming the variable to fix; `undefined` when it is not a
 * security failure. Decided by kafkajs's error classes and the socket's error code:
 *
 * - the broker refused the SASL credentials (`KafkaJSSASLAuthenticationError`);
 * - the broker's certificate is not trusted (a certificate error code);
 * - a plaintext client on a TLS listener: the broker closes the connection unanswered;
 * - a TLS client on a plaintext listener: the broker resets the handshake;
 * - the framework's own error from inside kafkajs (the OAUTHBEARER token provider's
 *   `OAuthTokenError`), passed through as it is.
 *
 * The message holds the broker's or the socket's words, never a secret.
 */
export function securityFailure(
  error: unknown,
  security: KafkaSecurity,
  brokers: readonly string[],
): PipelineError | undefined {
  const root = rootCause(error);
  if (error instanceof PipelineError) return error;
  if (root instanceof PipelineError) return root;
  const where = brokers.length === 1
    ? `Kafka broker at "${brokers[0]}"`
    : `the Kafka brokers "${brokers.join(",")}"`;
  const { protocol, sasl } = security;
  const detail = root instanceof Error ? root.message : String(root);
  const redacted = securitySecrets(security).reduce(
    (text, secret) => text.split(secret).join("[redacted]"),
    detail,
  );
  if (root instanceof KafkaJSSASLAuthenticationError && sasl !== undefined) {
    const [who, fields, field] = sasl.mechanism === "OAUTHBEARER"
      ? [
        `client "${sasl.clientId}"`,
        `${SECURITY_ENV.tokenEndpointUrl}, ${SECURITY_ENV.clientId} and ${SECURITY_ENV.clientSecret}`,
        SECURITY_ENV.clientSecret,
      ]
      : [
        `"${sasl.username}"`,
        `${SECURITY_ENV.username} and ${SECURITY_ENV.password}`,
        SECURITY_ENV.password,
      ];
    return new KafkaSecurityError(
      `Cannot authenticate to ${where} as ${who} with ${sasl.mechanism}: the broker refused ` +
        `it; check ${SECURITY_ENV.mechanism}, ${fields} (${redacted})`,
      { field, cause: error },
    );
  }
  const code = root instanceof KafkaJSConnectionError
    ? (root as { code?: unknown }).code // kafkajs sets `code` at runtime; its typings omit it
    : undefined;
  if (typeof code === "string" && UNTRUSTED_CERTIFICATE_CODES.has(code)) {
    const trusted = security.tls?.caLocation === undefined
      ? "the system's CAs"
      : `the CA in ${SECURITY_ENV.caLocation} "${security.tls.caLocation}"`;
    return new KafkaSecurityError(
      `Cannot connect to ${where} over TLS as its certificate is not trusted by ${trusted}: ` +
        `${redacted} (${code}); set ${SECURITY_ENV.caLocation} to the PEM file of the CA that ` +
        `signed the broker's certificate`,
      { field: SECURITY_ENV.caLocation, cause: error },
    );
  }
  if (root instanceof KafkaJSConnectionClosedError && !usesTls(protocol)) {
    return new KafkaSecurityError(
      `Cannot connect to ${where} with ${SECURITY_ENV.protocol} "${protocol}": the broker ` +
        `closed the connection without answering, as a TLS listener does with a plaintext ` +
        `client; if it expects TLS, set ${SECURITY_ENV.protocol} to SSL or SASL_SSL`,
      { field: SECURITY_ENV.protocol, cause: error },
    );
  }
  if (code === "ECONNRESET" && usesTls(protocol)) {
    return new KafkaSecurityError(
      `Cannot connect to ${where} with ${SECURITY_ENV.protocol} "${protocol}": the connection ` +
        `was reset during the TLS handshake, as a plaintext listener does; check that the ` +
        `port is the broker's TLS listener, or set ${SECURITY_ENV.protocol} to PLAINTEXT or ` +
        `SASL_PLAINTEXT`,
      { field: SECURITY_ENV.protocol, cause: error },
    );
  }
  return undefined;
}
