/**
 * The OAUTHBEARER client-credentials token fetch against a real HTTP token endpoint on
 * 127.0.0.1 (`Deno.serve`): what is sent, token reuse until shortly before expiry, and errors
 * that name the variable and never hold the client secret.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  clientCredentialsProvider,
  OAuthTokenError,
} from "../../../pipeline/transport/_oauth_bearer.ts";
import { kafkaClientSecurity } from "../../../pipeline/transport/kafka/security.ts";

const SECRET = "client-s3cret/with+odd:chars";

/** One request as the endpoint saw it. */
interface SeenRequest {
  readonly method: string;
  readonly authorization: string | null;
  readonly contentType: string | null;
  readonly form: Record<string, string>;
}

/** A token endpoint on 127.0.0.1 answering each request with `answer(n)`. */
async function withTokenEndpoint(
  answer: (count: number) => Response,
  fn: (url: string, seen: SeenRequest[]) => Promise<void>,
): Promise<void> {
  const seen: SeenRequest[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    seen.push({
      method: req.method,
      authorization: req.headers.get("authorization"),
      contentType: req.headers.get("content-type"),
      form: Object.fromEntries(new URLSearchParams(await req.text())),
    });
    return answer(seen.length);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/oauth2/token`, seen);
  } finally {
    await server.shutdown();
  }
}

function tokenResponse(token: string, expiresIn?: number): Response {
  return Response.json({ access_token: token, token_type: "Bearer", expires_in: expiresIn });
}

const canServe = Deno.permissions.querySync({ name: "net" }).state === "granted";

Deno.test({
  name: "clientCredentialsProvider() posts the client-credentials grant with HTTP Basic auth",
  ignore: !canServe,
  fn: () =>
    withTokenEndpoint(() => tokenResponse("token-1", 3600), async (url, seen) => {
      const tokens: string[] = [];
      const provider = clientCredentialsProvider(
        { tokenEndpointUrl: url, clientId: "payments", clientSecret: SECRET, scope: "kafka" },
        { onToken: (token) => tokens.push(token) },
      );
      assert.deepEqual(await provider(), { value: "token-1" });
      assert.equal(seen.length, 1);
      const [request] = seen;
      assert.equal(request.method, "POST");
      assert.equal(request.contentType, "application/x-www-form-urlencoded");
      assert.deepEqual(request.form, { grant_type: "client_credentials", scope: "kafka" });
      // RFC 6749 2.3.1: id and secret form-encoded, then Basic.
      const basic = atob(request.authorization!.replace(/^Basic /, ""));
      assert.equal(basic, "payments:client-s3cret%2Fwith%2Bodd%3Achars");
      assert.deepEqual(tokens, ["token-1"], "each new token is reported for redaction");
    }),
});

Deno.test({
  name: "clientCredentialsProvider() reuses a token until a minute before it expires",
  ignore: !canServe,
  fn: () =>
    withTokenEndpoint((n) => tokenResponse(`token-${n}`, 300), async (url, seen) => {
      let now = 1_000_000;
      const provider = clientCredentialsProvider(
        { tokenEndpointUrl: url, clientId: "payments", clientSecret: SECRET },
        { now: () => now },
      );
      const together = await Promise.all([provider(), provider(), provider()]);
      assert.deepEqual(together.map((t) => t.value), ["token-1", "token-1", "token-1"]);
      assert.equal(seen.length, 1, "connections opened together share one request");
      assert.deepEqual(seen[0].form, { grant_type: "client_credentials" });
      now += 239_000; // 300 s lifetime, refreshed 60 s early: still good at 239 s
      assert.equal((await provider()).value, "token-1");
      now += 1_000;
      assert.equal((await provider()).value, "token-2");
      assert.equal(seen.length, 2);
    }),
});

Deno.test({
  name:
    "clientCredentialsProvider() reports a refused client with the OAuth error, never the secret",
  ignore: !canServe,
  fn: () =>
    withTokenEndpoint(
      () =>
        Response.json(
          { error: "invalid_client", error_description: `bad secret ${SECRET}` },
          { status: 401 },
        ),
      async (url) => {
        const provider = clientCredentialsProvider({
          tokenEndpointUrl: url,
          clientId: "payments",
          clientSecret: SECRET,
        });
        await assert.rejects(provider(), (error: unknown) => {
          assert.ok(error instanceof OAuthTokenError, String(error));
          assert.equal(error.field, "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL");
          assert.equal(error.retriable, false);
          assert.equal(
            error.message,
            `Cannot fetch an OAUTHBEARER token from KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL ` +
              `"${url}" for client "payments": HTTP 401 invalid_client: bad secret [redacted]`,
          );
          return true;
        });
      },
    ),
});

Deno.test({
  name: "clientCredentialsProvider() refuses an answer without access_token",
  ignore: !canServe,
  fn: () =>
    withTokenEndpoint(() => new Response("<html>login</html>"), async (url) => {
      const provider = clientCredentialsProvider({
        tokenEndpointUrl: url,
        clientId: "payments",
        clientSecret: SECRET,
      });
      await assert.rejects(
        provider(),
        /^OAuthTokenError: Cannot use the answer of KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL ".*": it has no "access_token" \(HTTP 200, not JSON\)$/,
      );
    }),
});

Deno.test({
  name: "clientCredentialsProvider() names the endpoint it cannot reach, without its credentials",
  ignore: !canServe,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const provider = clientCredentialsProvider({
      tokenEndpointUrl: `http://user:${encodeURIComponent(SECRET)}@127.0.0.1:${port}/token`,
      clientId: "payments",
      clientSecret: SECRET,
    });
    await assert.rejects(provider(), (error: unknown) => {
      assert.ok(error instanceof OAuthTokenError, String(error));
      assert.match(
        error.message,
        new RegExp(
          `^Cannot fetch an OAUTHBEARER token from KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL ` +
            `"http://127\\.0\\.0\\.1:${port}/token": `,
        ),
      );
      assert.ok(!error.message.includes(SECRET) && !error.message.includes("s3cret"));
      return true;
    });
  },
});

Deno.test({
  name: "kafkaClientSecurity() hands kafkajs an OAUTHBEARER provider whose tokens are redacted",
  ignore: !canServe,
  fn: () =>
    withTokenEndpoint(() => tokenResponse("eyJhbGciOiJub25lIn0.e30.", 3600), async (url) => {
      const client = kafkaClientSecurity({
        protocol: "SASL_SSL",
        sasl: {
          mechanism: "OAUTHBEARER",
          tokenEndpointUrl: url,
          clientId: "c",
          clientSecret: SECRET,
        },
      });
      const sasl = client.sasl as { oauthBearerProvider: () => Promise<{ value: string }> };
      assert.deepEqual(client.secrets, [SECRET]);
      assert.equal((await sasl.oauthBearerProvider()).value, "eyJhbGciOiJub25lIn0.e30.");
      assert.deepEqual(client.secrets, [SECRET, "eyJhbGciOiJub25lIn0.e30."]);
    }),
});
