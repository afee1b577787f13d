import assert from "node:assert/strict";
import { HealthStateError, Readiness, watchBroker } from "../../pipeline/health.ts";
import type { MemberState } from "../../pipeline/health.ts";
import { FakeClock } from "../../pipeline/testing/fake_clock.ts";

/** A readiness with a reachable broker and members `a#0`, `a#1` of stage `a`. */
function twoMembers(): Readiness {
  const readiness = new Readiness({ clock: new FakeClock({ start: 1000 }) });
  readiness.broker();
  readiness.member("a#0", "a");
  readiness.member("a#1", "a");
  return readiness;
}

Deno.test("Readiness is not ready before any member or broker probe", () => {
  const report = new Readiness().check();
  assert.equal(report.ready, false);
  assert.deepEqual(report.reasons, ["broker not probed yet", "no member yet"]);
});

Deno.test("Readiness is ready only once every member is consuming", () => {
  const readiness = twoMembers();
  assert.equal(readiness.check().ready, false);
  readiness.report("a#0", "consuming");
  const half = readiness.check();
  assert.equal(half.ready, false);
  assert.deepEqual(half.reasons, ['member "a#1" of stage "a" is assigning']);
  readiness.report("a#1", "consuming");
  assert.deepEqual(readiness.check().reasons, []);
  assert.equal(readiness.check().ready, true);
});

Deno.test("Readiness is not ready while a member restores, or after a rebalance began", () => {
  const readiness = twoMembers();
  readiness.report("a#0", "consuming");
  readiness.report("a#1", "restoring");
  assert.deepEqual(readiness.check().reasons, ['member "a#1" of stage "a" is restoring']);
  readiness.report("a#1", "consuming");
  readiness.report("a#0", "assigning");
  assert.equal(readiness.check().ready, false);
});

Deno.test("Readiness is not ready while a member is stopped, and says why", () => {
  const readiness = twoMembers();
  readiness.report("a#0", "consuming");
  readiness.report("a#1", "stopped", "KafkaJSNonRetriableError: boom");
  assert.deepEqual(readiness.check().reasons, [
    'member "a#1" of stage "a" is stopped: KafkaJSNonRetriableError: boom',
  ]);
  // The supervisor restarts the worker: it registers again as assigning.
  readiness.member("a#1", "a");
  readiness.report("a#1", "consuming");
  assert.equal(readiness.check().ready, true);
});

Deno.test("Readiness is not ready while the broker is unreachable, and ready again after", () => {
  const readiness = twoMembers();
  readiness.report("a#0", "consuming");
  readiness.report("a#1", "consuming");
  readiness.broker(new Error("Connection error: connect ECONNREFUSED 127.0.0.1:9092"));
  const report = readiness.check();
  assert.equal(report.ready, false);
  assert.equal(report.broker.status, "unreachable");
  assert.deepEqual(report.reasons, [
    "broker unreachable: Connection error: connect ECONNREFUSED 127.0.0.1:9092",
  ]);
  readiness.broker();
  assert.equal(readiness.check().ready, true);
});

Deno.test("Readiness is not ready once draining", () => {
  const readiness = twoMembers();
  readiness.report("a#0", "consuming");
  readiness.report("a#1", "consuming");
  readiness.drain();
  assert.deepEqual(readiness.check().reasons, ["draining: the process is stopping"]);
});

Deno.test("Readiness of a producer-only process needs no member", () => {
  const readiness = new Readiness({ readyWithoutMembers: true });
  readiness.broker();
  assert.equal(readiness.check().ready, true);
});

Deno.test("Readiness keeps `since` while a state repeats and moves it on a change", () => {
  const clock = new FakeClock({ start: 1000 });
  const readiness = new Readiness({ clock });
  readiness.member("a#0", "a");
  clock.advance(10);
  readiness.report("a#0", "consuming");
  clock.advance(10);
  readiness.report("a#0", "consuming");
  assert.equal(readiness.check().members[0].since, 1010);
});

Deno.test("Readiness.report() refuses an unknown member and an unknown state", () => {
  const readiness = twoMembers();
  assert.throws(() => readiness.report("b#0", "consuming"), HealthStateError);
  assert.throws(
    () => readiness.report("a#0", "sleeping" as MemberState),
    (error: unknown) =>
      error instanceof HealthStateError &&
      error.message ===
        'Cannot report state of member "a#0" as it must be one of "assigning", "restoring", ' +
          '"consuming", "stopped": current value is "sleeping"',
  );
});

Deno.test("watchBroker() records each probe: reachable, then unreachable on error and on silence", async () => {
  const clock = new FakeClock();
  const readiness = new Readiness({ clock });
  let answerHung!: () => void;
  const answers: Array<() => Promise<void>> = [
    () => Promise.resolve(),
    () => Promise.reject(new Error("ECONNREFUSED")),
    () => new Promise<void>((resolve) => answerHung = resolve),
    () => Promise.resolve(),
  ];
  let probes = 0;
  const watch = watchBroker(readiness, () => answers[probes++](), {
    clock,
    intervalMs: 1000,
    timeoutMs: 500,
  });
  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
  const broker = () => readiness.check().broker;
  await settle();
  assert.equal(broker().status, "reachable");
  clock.advance(1000); // second probe: error
  await settle();
  assert.deepEqual([broker().status, broker().detail], ["unreachable", "ECONNREFUSED"]);
  clock.advance(1000); // third probe: hangs...
  await settle();
  clock.advance(500); // ... and times out
  await settle();
  assert.match(broker().detail ?? "", /no answer within 500 ms/);
  clock.advance(1000); // no fourth probe while the third hangs
  await settle();
  assert.equal(probes, 3);
  assert.match(broker().detail ?? "", /a probe sent earlier has no answer yet/);
  answerHung();
  await settle();
  clock.advance(1000); // fourth probe: answers
  await settle();
  assert.equal(broker().status, "reachable");
  const stopped = watch.stop();
  clock.advance(1000);
  await stopped;
  assert.equal(probes, 4);
});
