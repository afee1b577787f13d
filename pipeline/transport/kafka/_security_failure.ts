/**
 * What a failed first connection says about the security settings, decided by kafkajs's error
 * classes; the errors themselves are worded in `../_security_failure.ts`, shared with the
 * platformatic transport.
 *
 * @module
 */
import kafkajs from "kafkajs";
import { usesTls } from "../_security.ts";
import type { KafkaSecurity } from "../_security.ts";
import {
  type SecurityFailure,
  securityFailureError,
  UNTRUSTED_CERTIFICATE_CODES,
} from "../_security_failure.ts";
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

/**
 * What a failed first connection says about the security settings, as a
 * `KafkaSecurityError` naming the variable to fix; `undefined` when it is not a security
 * failure. Decided by kafkajs's error classes and the socket's error code:
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
  const failure = classify(root, security);
  return failure === undefined
    ? undefined
    : securityFailureError(security, brokers, { ...failure, cause: error });
}

function classify(
  root: unknown,
  security: KafkaSecurity,
): Omit<SecurityFailure, "cause"> | undefined {
  const detail = root instanceof Error ? root.message : String(root);
  if (root instanceof KafkaJSSASLAuthenticationError && security.sasl !== undefined) {
    return { kind: "authentication", detail };
  }
  const code = root instanceof KafkaJSConnectionError
    ? (root as { code?: unknown }).code // kafkajs sets `code` at runtime; its typings omit it
    : undefined;
  if (typeof code === "string" && UNTRUSTED_CERTIFICATE_CODES.has(code)) {
    return { kind: "untrusted-certificate", detail, code };
  }
  if (root instanceof KafkaJSConnectionClosedError && !usesTls(security.protocol)) {
    return { kind: "tls-expected", detail };
  }
  if (code === "ECONNRESET" && usesTls(security.protocol)) {
    return { kind: "tls-refused", detail };
  }
  return undefined;
}
