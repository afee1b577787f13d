/**
 * The fault suite's short form inside `deno task test`: a few hundred orders through two
 * payment service processes on the suite's own broker, two SIGKILLs, one broker kill and
 * restart, a member added and removed, every poison kind; in every guarantee this checkout
 * offers. The test expects every promise of issue 8 to hold (a check that is not available
 * on this checkout is listed, not failed).
 *
 * @module
 */
import assert from "node:assert/strict";
import { integrationTest } from "./_integration.ts";

/** The suite, loaded only where env access is granted (kafkajs reads env on load). */
const chaos = Deno.permissions.querySync({ name: "env" }).state === "granted"
  ? await import("../../chaos/mod.ts")
  : undefined;

await integrationTest(
  "fault suite (short): kills, a broker restart, members coming and going and every poison kind break no promise",
  async (_sharedBrokers, kcat) => {
    const log: string[] = [];
    const workDir = await Deno.makeTempDir({ prefix: "chaos-short-" });
    const { POISON_KINDS, renderReport, runChaos } = chaos!;
    const report = await runChaos({
      orders: 300,
      rate: 20,
      workers: 2,
      processes: 2,
      kills: 2,
      brokerRestarts: 1,
      drainTimeoutMs: 120_000,
      seed: 20_260_801,
      kcat,
      workDir,
      log: (line) => log.push(line),
    }).finally(() => Deno.remove(workDir, { recursive: true }));
    const table = renderReport(report);
    const ran = report.modes.filter((mode) => mode.actions.length > 0);
    assert.ok(ran.length >= 1, `at least one guarantee ran:\n${table}`);
    for (const mode of ran) {
      const count = (kind: string) => mode.actions.filter((a) => a.kind === kind).length;
      assert.equal(count("kill"), 2, `${mode.guarantee}: two SIGKILLs\n${table}`);
      assert.equal(count("broker-restart"), 1, `${mode.guarantee}: one broker restart\n${table}`);
      assert.equal(count("member-add"), 1, `${mode.guarantee}: a member added\n${table}`);
      assert.equal(count("member-remove"), 1, `${mode.guarantee}: a member removed\n${table}`);
      const poison = mode.checks.filter((c) => c.check.startsWith("poison: ")).map((c) =>
        c.check.slice("poison: ".length)
      );
      assert.deepEqual(poison.sort(), [...POISON_KINDS].sort(), `every poison kind\n${table}`);
    }
    assert.ok(
      report.passed,
      `the fault suite found violations:\n${table}\n${log.slice(-40).join("\n")}`,
    );
  },
);
