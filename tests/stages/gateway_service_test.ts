/**
 * The payment gateway service: idempotency across callers, its failure modes (503s, held
 * requests, latency, declines, malformed requests), the ledger, and 24 h key expiry on a fake
 * clock. The handler tests need no permission; the loopback tests need `--allow-net`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../pipeline/testing/fake_clock.ts";
import {
  createGatewayHandler,
  DAY_MS,
  GATEWAY_PATH,
  IDEMPOTENCY_KEY_HEADER,
  REPLAYED_HEADER,
  startGatewayService,
} from "../../stages/gateway_service.ts";
import type { GatewayHandler, Ledger } from "../../stages/gateway_service.ts";
import { GATEWAY_CONFIG, main } from "../../stages/gateway.ts";
import { failureDraw } from "../../stages/payment_gateway.ts";
import { NO_NET } from "./_gateway.ts";

function chargeRequest(
  base: string,
  key: string | undefined,
  body: unknown = { amount: 10, currency: "USD" },
  init: RequestInit = {},
): Request {
  return new Request(new URL(GATEWAY_PATH.CHARGES, base), {
    method: "POST",
    headers: key === undefined ? {} : { [IDEMPOTENCY_KEY_HEADER]: key },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
}

async function charge(
  gateway: GatewayHandler,
  key: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown>; replayed: boolean }> {
  const response = await gateway.handle(chargeRequest("http://gateway", key, body));
  return {
    status: response.status,
    body: await response.json(),
    replayed: response.headers.get(REPLAYED_HEADER) === "true",
  };
}

Deno.test("gateway charges a key once and answers every repeat with the first charge", async () => {
  const gateway = createGatewayHandler({ failureRate: 0 });
  const first = await charge(gateway, "o-1");
  assert.equal(first.status, 201);
  assert.equal(first.body.replayed, false);
  for (let i = 0; i < 3; i++) {
    const again = await charge(gateway, "o-1");
    assert.equal(again.status, 200);
    assert.equal(again.replayed, true);
    assert.equal(again.body.payment_id, first.body.payment_id);
  }
  const ledger = gateway.ledger();
  assert.deepEqual(Object.keys(ledger.ledger), ["o-1"]);
  assert.equal(ledger.ledger["o-1"].length, 1);
  assert.equal(ledger.ledger["o-1"][0].payment_id, first.body.payment_id);
  assert.equal(ledger.charges, 1);
  assert.equal(ledger.replays, 3);
});

Deno.test("gateway charges once when callers race with one key during its latency", async () => {
  const clock = new FakeClock();
  const gateway = createGatewayHandler({ failureRate: 0, latencyMs: 50, clock });
  const racing = Array.from({ length: 5 }, () => charge(gateway, "o-race"));
  // Every request waits on the latency before anything is charged.
  for (const deadline = Date.now() + 2000; clock.pending < 5 && Date.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.equal(clock.pending, 5);
  assert.equal(gateway.counts().charges, 0);
  clock.advance(50);
  const answers = await Promise.all(racing);
  assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 200, 200, 201]);
  assert.equal(new Set(answers.map((a) => a.body.payment_id)).size, 1);
  assert.equal(gateway.ledger().ledger["o-race"].length, 1);
});

Deno.test("gateway 503s charge nothing and follow the seed, the key and its request count", async () => {
  const statuses = async (seed: number) => {
    const gateway = createGatewayHandler({ failureRate: 0.2, seed });
    const seen: number[] = [];
    for (let i = 0; i < 500; i++) seen.push((await charge(gateway, `o-${i}`)).status);
    return { seen, gateway };
  };
  const a = await statuses(7);
  const b = await statuses(7);
  assert.deepEqual(a.seen, b.seen);
  const failed = a.seen.filter((s) => s === 503).length;
  assert.ok(failed > 70 && failed < 130, `about 20% of 500 answered 503: ${failed}`);
  assert.equal(a.gateway.counts().unavailable, failed);
  assert.equal(a.gateway.counts().charges, 500 - failed);
  assert.equal(Object.keys(a.gateway.ledger().ledger).length, 500 - failed);
  // The answer of a request is the draw of its key and its request number.
  for (let i = 0; i < 500; i++) {
    assert.equal(a.seen[i] === 503, failureDraw(7, `o-${i}`, 1) < 0.2);
  }
  const always = createGatewayHandler({ failureRate: 1 });
  const refused = await charge(always, "o-1");
  assert.equal(refused.status, 503);
  assert.equal(always.ledger().charges, 0);
  assert.deepEqual(always.ledger().ledger, {});
});

Deno.test("gateway answers a charged key with its charge even where a 503 would be drawn", async () => {
  const seed = 11;
  // A key whose first request charges and whose next three would each be drawn a 503.
  const key = Array.from({ length: 100_000 }, (_, i) => `o-${i}`).find((k) =>
    failureDraw(seed, k, 1) >= 0.5 &&
    [2, 3, 4].every((attempt) => failureDraw(seed, k, attempt) < 0.5)
  )!;
  assert.ok(key, "such a key exists among the first 100 000");
  const gateway = createGatewayHandler({ failureRate: 0.5, seed });
  const first = await charge(gateway, key);
  assert.equal(first.status, 201);
  for (let i = 0; i < 3; i++) {
    const again = await charge(gateway, key);
    assert.equal(again.status, 200, "the stored charge, not a 503");
    assert.equal(again.body.payment_id, first.body.payment_id);
  }
  assert.equal(gateway.counts().unavailable, 0);
  assert.equal(gateway.ledger().ledger[key].length, 1);
});

Deno.test("gateway holds a timed-out request after charging it, and a retry gets that charge", async () => {
  const clock = new FakeClock();
  // A key whose first request is held and whose second is not.
  let key = "";
  for (let i = 0; key === ""; i++) {
    const k = `o-${i}`;
    if (failureDraw(3, `timeout:${k}`, 1) < 0.5 && failureDraw(3, `timeout:${k}`, 2) >= 0.5) {
      key = k;
    }
  }
  const gateway = createGatewayHandler({
    failureRate: 0,
    timeoutRate: 0.5,
    holdMs: 60_000,
    clock,
    seed: 3,
  });
  let answered = false;
  const held = charge(gateway, key).then((answer) => {
    answered = true;
    return answer;
  });
  for (const deadline = Date.now() + 2000; clock.pending < 1 && Date.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.equal(clock.pending, 1, "the first request is held");
  assert.equal(answered, false);
  assert.equal(gateway.ledger().ledger[key].length, 1, "the held request charged");
  const retry = await charge(gateway, key);
  assert.equal(retry.status, 200);
  assert.equal(retry.replayed, true);
  assert.equal(retry.body.payment_id, gateway.ledger().ledger[key][0].payment_id);
  clock.advance(60_000);
  const late = await held;
  assert.equal(late.status, 201);
  assert.equal(gateway.counts().timeouts, 1);
  assert.equal(gateway.ledger().ledger[key].length, 1);
});

Deno.test("gateway declines with 402 and refuses malformed requests and reused keys", async () => {
  const gateway = createGatewayHandler({ failureRate: 0, declineAbove: 100 });
  const declined = await charge(gateway, "o-big", { amount: 500, currency: "USD" });
  assert.equal(declined.status, 402);
  assert.equal((declined.body.error as { type: string }).type, "card_declined");
  const missingKey = await gateway.handle(chargeRequest("http://gateway", undefined));
  assert.equal(missingKey.status, 400);
  for (const body of ["{", { amount: -1, currency: "USD" }, { amount: 5, currency: "usd" }, []]) {
    assert.equal((await charge(gateway, "o-bad", body)).status, 400, JSON.stringify(body));
  }
  assert.equal((await charge(gateway, "o-1", { amount: 5, currency: "USD" })).status, 201);
  const reused = await charge(gateway, "o-1", { amount: 6, currency: "USD" });
  assert.equal(reused.status, 422);
  assert.match((reused.body.error as { message: string }).message, /"o-1" 6 USD .* 5 USD/);
  const get = await gateway.handle(new Request(`http://gateway${GATEWAY_PATH.CHARGES}`));
  assert.equal(get.status, 405);
  assert.equal((await gateway.handle(new Request("http://gateway/nope"))).status, 404);
  assert.equal(
    (await gateway.handle(new Request(`http://gateway${GATEWAY_PATH.LIVEZ}`))).status,
    200,
  );
  const counts = gateway.counts();
  assert.equal(counts.declined, 1);
  assert.equal(counts.refused, 6);
  assert.equal(counts.charges, 1);
});

Deno.test("gateway keeps keys 24 h: a repeat within replays, one after charges anew", async () => {
  const clock = new FakeClock({ start: Date.UTC(2026, 0, 1) });
  const gateway = createGatewayHandler({ failureRate: 0, clock });
  const first = await charge(gateway, "o-1");
  clock.advance(DAY_MS - 1);
  const within = await charge(gateway, "o-1");
  assert.equal(within.replayed, true);
  assert.equal(within.body.payment_id, first.body.payment_id);
  clock.advance(1);
  const after = await charge(gateway, "o-1");
  assert.equal(after.status, 201);
  assert.notEqual(after.body.payment_id, first.body.payment_id);
  // The ledger, the witness, still shows both charges of the key.
  assert.equal(gateway.ledger().ledger["o-1"].length, 2);
});

Deno.test("gateway memory holds only the keys of the last 24 h", async () => {
  const clock = new FakeClock({ start: Date.UTC(2026, 0, 1) });
  const gateway = createGatewayHandler({ failureRate: 0, clock, ledgerRetentionMs: 2 * DAY_MS });
  for (let i = 0; i < 1000; i++) await charge(gateway, `old-${i}`);
  assert.equal(gateway.counts().keys, 1000);
  clock.advance(12 * 3600 * 1000);
  for (let i = 0; i < 10; i++) await charge(gateway, `new-${i}`);
  assert.equal(gateway.counts().keys, 1010);
  clock.advance(12 * 3600 * 1000);
  await charge(gateway, "later");
  assert.equal(gateway.counts().keys, 11, "the first 1000 keys expired");
  clock.advance(2 * DAY_MS);
  assert.deepEqual(Object.keys(gateway.ledger().ledger), [], "the ledger keeps its retention");
});

Deno.test({
  name: "gateway service on loopback: two callers, one key, one charge, and the ledger says so",
  ignore: NO_NET,
  async fn() {
    const service = await startGatewayService({ failureRate: 0 });
    try {
      assert.match(service.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const callers = [Deno.createHttpClient({}), Deno.createHttpClient({})];
      try {
        const answers = await Promise.all(callers.map(async (client) => {
          const response = await fetch(chargeRequest(service.url, "o-7"), { client });
          return await response.json();
        }));
        assert.equal(answers[0].payment_id, answers[1].payment_id);
      } finally {
        for (const client of callers) client.close();
      }
      const all: Ledger = await (await fetch(new URL(GATEWAY_PATH.LEDGER, service.url))).json();
      assert.equal(all.charges, 1);
      assert.equal(all.replays, 1);
      assert.equal(all.ledger["o-7"].length, 1);
      const one: Ledger = await (await fetch(new URL(`${GATEWAY_PATH.LEDGER}/o-7`, service.url)))
        .json();
      assert.deepEqual(Object.keys(one.ledger), ["o-7"]);
      const none: Ledger = await (await fetch(new URL(`${GATEWAY_PATH.LEDGER}/o-8`, service.url)))
        .json();
      assert.deepEqual(none.ledger, {});
      const livez = await fetch(new URL(GATEWAY_PATH.LIVEZ, service.url));
      assert.equal(await livez.text(), "ok\n");
    } finally {
      await service.close();
    }
  },
});

Deno.test({
  name: "gateway service answers its held requests when it closes",
  ignore: NO_NET,
  async fn() {
    const service = await startGatewayService({ failureRate: 0, timeoutRate: 1, holdMs: 600_000 });
    const pending = fetch(chargeRequest(service.url, "o-1"));
    for (const deadline = Date.now() + 5000; service.handler.counts().timeouts < 1;) {
      assert.ok(Date.now() < deadline, "the request reached the gateway");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await service.close();
    const response = await pending;
    assert.equal(response.status, 201);
    await response.body?.cancel();
  },
});

Deno.test("deno task gateway --help lists every setting", async () => {
  const out: string[] = [];
  const code = await main(["--help"], {}, {
    stdout: (line) => out.push(line),
    stderr: () => {},
  }, new AbortController().signal);
  assert.equal(code, 0);
  for (const s of Object.values(GATEWAY_CONFIG)) {
    assert.ok(out.join("\n").includes(s.env), s.env);
  }
});

Deno.test("deno task gateway refuses a bad setting naming it", async () => {
  const err: string[] = [];
  const code = await main([], { GATEWAY_FAILURE_RATE: "2" }, {
    stdout: () => {},
    stderr: (line) => err.push(line),
  }, new AbortController().signal);
  assert.equal(code, 2);
  assert.match(err.join("\n"), /GATEWAY_FAILURE_RATE as it must be at most 1/);
});

Deno.test({
  name: "deno task gateway serves on GATEWAY_PORT until stopped and prints its counts",
  ignore: NO_NET,
  async fn() {
    const stop = new AbortController();
    const err: string[] = [];
    const out: string[] = [];
    const running = main(["--port", "0", "--failure-rate", "0"], {}, {
      stdout: (line) => out.push(line),
      stderr: (line) => err.push(line),
    }, stop.signal);
    for (const deadline = Date.now() + 5000; err.length === 0;) {
      assert.ok(Date.now() < deadline, "the gateway said where it listens");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const url = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(err[0])?.[1];
    assert.ok(url, err[0]);
    const response = await fetch(chargeRequest(url, "o-1"));
    assert.equal(response.status, 201);
    await response.body?.cancel();
    stop.abort();
    assert.equal(await running, 0);
    assert.equal(JSON.parse(out[0]).gateway.charges, 1);
  },
});
