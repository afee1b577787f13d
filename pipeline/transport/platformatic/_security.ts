/**
 * Secured clusters on @platformatic/kafka: the parsed settings of `../_security.ts` (the one
 * parser of `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*` and `KAFKA_SSL_*`) turned into the
 * client's `tls` and `sasl` options, and what a failed first connection says
 * about them, decided by the client's error classes and the socket's error codes (never by
 * message strings) and worded by `../_security_failure.ts`, as on kafkajs.
 *
 * @module
 */
import type { ConnectionOptions } from "node:tls";
import {
  AuthenticationError,
  GenericError,
  type SASLOptions,
  UserError,
} from "@platformatic/kafka";
import { PipelineError } from "../../errors.ts";
import { clientCredentialsProvider } from "../_oauth_bearer.ts";
import type { ClientCredentialsOptions } from "../_oauth_bearer.ts";
import {
  type KafkaSecurity,
  readTlsOptions,
  requiredSasl,
  securitySecrets,
  usesTls,
} from "../_security.ts";
import {
  type SecurityFailure,
  securityFailureError,
  UNTRUSTED_CERTIFICATE_CODES,
} from "../_security_failure.ts";

/** What @platformatic/kafka is given: its connection options, and the secrets to redact. */
export interface PlatformaticClientSecurity {
  /**
   * The client's `tls`: Node TLS options, or `undefined` (no TLS). No `tlsServerName` goes with
   * it: Deno's `node:tls` sends each broker's host name as the server name (SNI, which cloud
   * brokers route by) by itself, and none for an IP address, as kafkajs does; the client's
   * `tlsServerName: true` would send IP addresses too, which Deno refuses.
   */
  readonly tls?: ConnectionOptions;
  /** The client's `sasl`, or `undefined` (no SASL). */
  readonly sasl?: SASLOptions;
  /**
   * Every secret in play, for redaction. A live list: OAUTHBEARER tokens are added as they
   * are fetched.
   */
  readonly secrets: readonly string[];
}

/** Options for {@linkcode platformaticClientSecurity}. */
export interface PlatformaticClientSecurityOptions {
  /**
   * How OAUTHBEARER tokens are fetched (the HTTP client, the clock, the timeout).
   * @default the defaults of {@linkcode ClientCredentialsOptions}
   */
  readonly oauth?: Omit<ClientCredentialsOptions, "onToken">;
}

/**
 * Turns settings into @platformatic/kafka options: reads the TLS files (PEM), decrypts the
 * private key with its password, and builds the OAUTHBEARER token provider, which the client
 * asks on every new connection and whenever the broker asks it to re-authenticate (a token is
 * fetched anew shortly before it expires).
 *
 * @param security The parsed settings.
 * @param options How OAUTHBEARER tokens are fetched.
 * @throws {KafkaSecurityError} naming the variable of a file that cannot be read, a key that
 *   cannot be decrypted, or missing SASL settings for a SASL protocol
 *
 * @example
 * ```ts ignore
 * import { platformaticClientSecurity } from "./_security.ts";
 * const client = platformaticClientSecurity({
 *   protocol: "SASL_PLAINTEXT",
 *   sasl: { mechanism: "PLAIN", username: "alice", password: "s3cret" },
 * });
 * console.log(client.sasl?.mechanism, client.tls); // PLAIN undefined
 * ```
 */
export function platformaticClientSecurity(
  security: KafkaSecurity,
  options: PlatformaticClientSecurityOptions = {},
): PlatformaticClientSecurity {
  const settings = requiredSasl(security);
  const secrets = securitySecrets(security);
  const read = readTlsOptions(security);
  const tls = read === undefined ? undefined : read === true ? {} : read;
  let sasl: SASLOptions | undefined;
  if (settings?.mechanism === "OAUTHBEARER") {
    const provider = clientCredentialsProvider(settings, {
      ...options.oauth,
      onToken: (token) => secrets.push(token),
    });
    sasl = {
      mechanism: "OAUTHBEARER",
      token: async function oauthBearerToken(): Promise<string> {
        return (await provider()).value;
      },
    };
  } else if (settings !== undefined) {
    sasl = {
      mechanism: settings.mechanism,
      username: settings.username,
      password: settings.password,
    };
  }
  return {
    ...(tls === undefined ? {} : { tls }),
    ...(sasl === undefined ? {} : { sasl }),
    secrets,
  };
}

/** Every error of a chain: `cause`s and the members of aggregated errors, depth first. */
function chain(error: unknown, depth = 0): unknown[] {
  if (depth > 10 || !(error instanceof Error)) return [error];
  const nested = error instanceof AggregateError ? error.errors : [];
  const cause = error.cause !== undefined && error.cause !== error ? [error.cause] : [];
  return [error, ...[...nested, ...cause].flatMap((inner) => chain(inner, depth + 1))];
}

/** The `code` a socket or TLS error carries (Node sets it at runtime). */
function codeOf(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

/**
 * What a failed first connection says about the security settings, as a
 * `KafkaSecurityError` naming the variable to fix; `undefined` when it is not a security
 * failure. Decided by @platformatic/kafka's error classes and the socket's error code:
 *
 * - the broker refused the SASL credentials or mechanism (an `AuthenticationError`; the
 *   broker's own words are in its SaslAuthenticate answer);
 * - the broker's certificate is not trusted (a certificate error code);
 * - a plaintext client on a TLS listener (the client saw a TLS record: a `UserError`);
 * - a TLS client on a plaintext listener (the handshake was reset: `ECONNRESET`);
 * - the framework's own error from inside the client (the OAUTHBEARER token provider's
 *   `OAuthTokenError`), passed through as it is.
 *
 * The message holds the broker's or the socket's words, never a secret.
 */
export function securityFailure(
  error: unknown,
  security: KafkaSecurity,
  brokers: readonly string[],
): PipelineError | undefined {
  const all = chain(error);
  const own = all.find((entry) => entry instanceof PipelineError);
  if (own instanceof PipelineError) return own;
  const failure = classify(all, security);
  return failure === undefined
    ? undefined
    : securityFailureError(security, brokers, { ...failure, cause: error });
}

function classify(
  all: readonly unknown[],
  security: KafkaSecurity,
): Omit<SecurityFailure, "cause"> | undefined {
  const tls = usesTls(security.protocol);
  const authentication = all.find((entry) => entry instanceof AuthenticationError);
  if (authentication instanceof Error && security.sasl !== undefined) {
    return { kind: "authentication", detail: brokerWords(all) ?? authentication.message };
  }
  const untrusted = all.find((entry) => UNTRUSTED_CERTIFICATE_CODES.has(codeOf(entry) ?? ""));
  if (untrusted instanceof Error) {
    return { kind: "untrusted-certificate", detail: untrusted.message, code: codeOf(untrusted) };
  }
  const user = all.find((entry) => entry instanceof UserError);
  if (!tls && user instanceof Error) return { kind: "tls-expected", detail: user.message };
  const reset = all.find((entry) => codeOf(entry) === "ECONNRESET");
  if (tls && reset instanceof Error) return { kind: "tls-refused", detail: reset.message };
  return undefined;
}

/**
 * The broker's own words in the chain, if any: the `errorMessage` of its answer (e.g.
 * SaslAuthenticate's) or a protocol error's `serverErrorMessage`, both set by the client.
 */
function brokerWords(all: readonly unknown[]): string | undefined {
  for (const entry of all) {
    if (!(entry instanceof GenericError) && !(entry instanceof AggregateError)) continue;
    const { response, serverErrorMessage } = entry as {
      response?: { errorMessage?: unknown };
      serverErrorMessage?: unknown;
    };
    for (const words of [response?.errorMessage, serverErrorMessage]) {
      if (typeof words === "string" && words !== "") return words;
    }
  }
  return undefined;
}
