/**
 * The error class of secured connections, in a file of its own so that `./_security.ts` and
 * `./_oauth_bearer.ts` can both use it without importing each other.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";

/**
 * A security setting that cannot be used, or a broker or token endpoint that refused the
 * client's security (wrong password, untrusted certificate, TLS expected, client refused).
 * `field` names the environment variable to fix. Never retriable: trying again with the same
 * settings fails the same way.
 */
export class KafkaSecurityError extends ConfigError {}
