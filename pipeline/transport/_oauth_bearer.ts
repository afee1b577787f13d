/**
 * SASL/OAUTHBEARER tokens from an OAuth 2 client-credentials grant (RFC 6749 section 4.4), as
 * librdkafka's `sasl.oauthbearer.method=oidc` gets them: `POST` to the token endpoint with the
 * client id and secret in HTTP Basic authentication, `grant_type=client_credentials` and the
 * scope, if any. Both clients ask the provider for a token on every new connection
 * (@platformatic/kafka also when the broker asks it to re-authenticate); the provider here
 * reuses a token until shortly before it expires. kafkajs takes it as it is, the platformatic
 * transport takes its `value`.
 *
 * @module
 */
import { KafkaSecurityError } from "./_security_error.ts";

/** The settings a token is fetched with. */
export interface ClientCredentials {
  /** The token endpoint, `http:` or `https:`. */
  readonly tokenEndpointUrl: string;
  /** The OAuth client id. */
  readonly clientId: string;
  /** The OAuth client secret. */
  readonly clientSecret: string;
  /** The scope to ask for, if any. */
  readonly scope?: string;
}

/** Options for {@linkcode clientCredentialsProvider}. */
export interface ClientCredentialsOptions {
  /**
   * The HTTP client.
   * @default globalThis.fetch
   */
  readonly fetch?: typeof fetch;
  /**
   * The current time in milliseconds, for token expiry.
   * @default Date.now
   */
  readonly now?: () => number;
  /**
   * How long one token request may take, in milliseconds.
   * @default 10000
   */
  readonly timeoutMs?: number;
  /**
   * A token is fetched anew this long before it expires, in milliseconds (a token without
   * `expires_in` is fetched anew for every connection).
   * @default 60000
   */
  readonly refreshMarginMs?: number;
  /**
   * Called with each new token before it is used, e.g. to add it to the log redaction.
   * @default does nothing
   */
  readonly onToken?: (token: string) => void;
}

/** What kafkajs's `oauthBearerProvider` returns. */
export interface OAuthBearerToken {
  /** The access token, sent to the broker. */
  readonly value: string;
}

/** The environment variable named by errors of the token endpoint. */
const ENDPOINT_FIELD = "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL";

/**
 * The token endpoint refused the client or answered something unusable. Not retriable: the
 * client id, secret or scope need fixing. `field` names the endpoint's variable.
 */
export class OAuthTokenError extends KafkaSecurityError {}

/**
 * A kafkajs `oauthBearerProvider` fetching tokens with the client-credentials grant.
 *
 * @throws {OAuthTokenError} (from the returned function) when the endpoint cannot be reached
 *   or refuses the request; the message has the HTTP status and the OAuth `error` code, never
 *   the client secret
 *
 * @example
 * ```ts ignore
 * import { clientCredentialsProvider } from "./_oauth_bearer.ts";
 * const provider = clientCredentialsProvider({
 *   tokenEndpointUrl: "https://idp.example/oauth2/token",
 *   clientId: "payments",
 *   clientSecret: Deno.env.get("KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET")!,
 * });
 * const { value } = await provider();
 * ```
 */
export function clientCredentialsProvider(
  credentials: ClientCredentials,
  options: ClientCredentialsOptions = {},
): () => Promise<OAuthBearerToken> {
  const {
    fetch: fetchToken = globalThis.fetch,
    now = Date.now,
    timeoutMs = 10_000,
    refreshMarginMs = 60_000,
    onToken = () => {},
  } = options;
  const endpoint = `"${displayUrl(credentials.tokenEndpointUrl)}"`;
  let cached: { value: string; refreshAt: number } | undefined;
  let inFlight: Promise<OAuthBearerToken> | undefined;

  async function fetchClientCredentialsToken(): Promise<OAuthBearerToken> {
    const body = new URLSearchParams({ grant_type: "client_credentials" });
    if (credentials.scope !== undefined) body.set("scope", credentials.scope);
    const basic = btoa(
      `${formEncode(credentials.clientId)}:${formEncode(credentials.clientSecret)}`,
    );
    const requested = now();
    let response: Response;
    try {
      response = await fetchToken(credentials.tokenEndpointUrl, {
        method: "POST",
        headers: {
          "authorization": `Basic ${basic}`,
          "content-type": "application/x-www-form-urlencoded",
          "accept": "application/json",
        },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const detail = error instanceof DOMException && error.name === "TimeoutError"
        ? `no answer within ${timeoutMs} ms`
        : error instanceof Error
        ? error.message
        : String(error);
      throw new OAuthTokenError(
        `Cannot fetch an OAUTHBEARER token from ${ENDPOINT_FIELD} ${endpoint}: ${
          scrub(detail, credentials)
        }`,
        { field: ENDPOINT_FIELD, cause: error },
      );
    }
    const text = await response.text();
    let json: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      json = parsed !== null && typeof parsed === "object"
        ? parsed as Record<string, unknown>
        : undefined;
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      // RFC 6749 5.2: `error` is a short code, `error_description` a human sentence.
      const code = typeof json?.error === "string" ? ` ${json.error}` : "";
      const description = typeof json?.error_description === "string"
        ? `: ${json.error_description}`
        : "";
      throw new OAuthTokenError(
        `Cannot fetch an OAUTHBEARER token from ${ENDPOINT_FIELD} ${endpoint} for client ` +
          `"${credentials.clientId}": HTTP ${response.status}` +
          scrub(`${code}${description}`.slice(0, 300), credentials),
        { field: ENDPOINT_FIELD },
      );
    }
    const token = json?.access_token;
    if (typeof token !== "string" || token === "") {
      throw new OAuthTokenError(
        `Cannot use the answer of ${ENDPOINT_FIELD} ${endpoint}: it has no "access_token" ` +
          `(HTTP ${response.status}, ${json === undefined ? "not JSON" : "JSON"})`,
        { field: ENDPOINT_FIELD },
      );
    }
    onToken(token);
    const expiresIn = typeof json?.expires_in === "number" ? json.expires_in : Number.NaN;
    cached = Number.isFinite(expiresIn) && expiresIn * 1000 > refreshMarginMs
      ? { value: token, refreshAt: requested + expiresIn * 1000 - refreshMarginMs }
      : undefined;
    return { value: token };
  }

  return function oauthBearerProvider(): Promise<OAuthBearerToken> {
    if (cached !== undefined && now() < cached.refreshAt) {
      return Promise.resolve({ value: cached.value });
    }
    // Connections opened together share one request.
    inFlight ??= fetchClientCredentialsToken().finally(() => inFlight = undefined);
    return inFlight;
  };
}

/** `application/x-www-form-urlencoded` encoding, as RFC 6749 2.3.1 asks for Basic credentials. */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

/** A URL as it may be shown: any `user:password@` part removed. */
export function displayUrl(value: string): string {
  try {
    const url = new URL(value);
    url.username = "";
    url.password = "";
    return url.href;
  } catch {
    return value.replace(/\/\/[^/@]*@/, "//");
  }
}

/** Removes the client secret from text that came from elsewhere (an endpoint, a socket). */
function scrub(text: string, credentials: ClientCredentials): string {
  const secret = credentials.clientSecret;
  return secret === "" ? text : text.split(secret).join("[redacted]");
}
