/**
 * An OAuth 2 token endpoint for the OAUTHBEARER tests: `Deno.serve` on 127.0.0.1 answering the
 * client-credentials grant with unsigned JWTs, which Kafka's default OAUTHBEARER validator
 * accepts (the local secure broker has no signature check).
 *
 * @module
 */

/** An unsigned JWT (`alg: none`) for `subject`, expiring in `lifetimeSeconds`. */
export function unsignedJwt(subject: string, lifetimeSeconds = 3600): string {
  const encode = (value: unknown) =>
    btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: subject, iat: now, exp: now + lifetimeSeconds };
  return `${encode({ alg: "none" })}.${encode(claims)}.`;
}

/** A running token endpoint. */
export interface TokenEndpoint extends AsyncDisposable {
  /** Its URL, for `KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL`. */
  readonly url: string;
  /** The `grant_type` of every request so far, in order. */
  readonly grants: readonly string[];
  /** Answer `401 invalid_client` from now on (or tokens again, with `false`). */
  refuse(refuse?: boolean): void;
}

/** Options for {@linkcode startTokenEndpoint}. */
export interface TokenEndpointOptions {
  /**
   * The tokens' lifetime (`expires_in` and the JWT's `exp`), in seconds.
   * @default 3600
   */
  readonly lifetimeSeconds?: number;
}

/** Starts a token endpoint on 127.0.0.1; dispose of it to stop it. */
export function startTokenEndpoint(options: TokenEndpointOptions = {}): TokenEndpoint {
  const { lifetimeSeconds = 3600 } = options;
  const grants: string[] = [];
  let refusing = false;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      grants.push(new URLSearchParams(await request.text()).get("grant_type") ?? "");
      if (refusing) return Response.json({ error: "invalid_client" }, { status: 401 });
      return Response.json({
        access_token: unsignedJwt("payments", lifetimeSeconds),
        expires_in: lifetimeSeconds,
      });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/token`,
    grants,
    refuse(refuse = true) {
      refusing = refuse;
    },
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}
