import assert from "node:assert/strict";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import {
  ALERT_EXPRESSIONS,
  ALERT_RULES,
  alertRulesFile,
  PANEL_QUERIES,
  renderAlertRules,
  RULE_GROUP,
  RULES_FILE,
  RUNBOOKS,
} from "../../dashboards/mod.ts";
import { REPO_ROOT } from "../../dashboards/generate.ts";
import { granted, requires } from "../_permissions.ts";
import { IN_CI } from "../_pipeline_process.ts";

/** promtool reads the rules and writes a temporary file; `PROMTOOL` may name it. */
const promtoolPermissions = requires("env", "read", "write", "run");
const PROMTOOL = (granted("env") ? Deno.env.get("PROMTOOL") : undefined) ?? "promtool";
const UNIT_TESTS = join(REPO_ROOT, "tests/dashboards/alerts_test.yml");

async function promtoolVersion(): Promise<string | null> {
  try {
    const { success, stdout } = await new Deno.Command(PROMTOOL, { args: ["--version"] })
      .output();
    return success ? new TextDecoder().decode(stdout).split("\n")[0] : null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

const version = promtoolPermissions.ignore ? null : await promtoolVersion();
/** Without promtool the tool tests are skipped on a workstation, but fail in CI. */
const missingPromtool = !promtoolPermissions.ignore && version === null && !IN_CI;
const ignorePromtool = promtoolPermissions.ignore || missingPromtool;
if (missingPromtool) {
  console.warn(
    `Ignoring promtool tests: "${PROMTOOL}" is not installed (apt-get install prometheus)`,
  );
}

async function promtool(...args: string[]): Promise<string> {
  if (version === null) {
    throw new Error(
      `Cannot run promtool: "${PROMTOOL}" is not installed: apt-get install prometheus`,
    );
  }
  const { code, stdout, stderr } = await new Deno.Command(PROMTOOL, {
    args,
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, `promtool ${args.join(" ")} failed:\n${out}`);
  return out;
}

Deno.test({
  name: "promtool check rules accepts the generated rules file",
  ignore: ignorePromtool,
  async fn() {
    const out = await promtool("check", "rules", join(REPO_ROOT, RULES_FILE));
    assert.match(out, new RegExp(`SUCCESS: ${ALERT_RULES.length} rules found`));
  },
});

Deno.test({
  name: "promtool test rules passes the unit tests of every alert",
  ignore: ignorePromtool,
  async fn() {
    const out = await promtool("test", "rules", UNIT_TESTS);
    assert.match(out, /SUCCESS/);
  },
});

/** The promtool unit test file, as far as these tests look at it. */
interface UnitTests {
  rule_files: string[];
  tests: {
    alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[];
  }[];
}

Deno.test("every alert has a firing and a quiet promtool unit test", requires("read"), async () => {
  const unit = parse(await Deno.readTextFile(UNIT_TESTS)) as UnitTests;
  assert.deepEqual(unit.rule_files, [`../../${RULES_FILE}`]);
  const cases = unit.tests.flatMap((t) => t.alert_rule_test ?? []);
  for (const { alert } of ALERT_RULES) {
    const mine = cases.filter((c) => c.alertname === alert);
    assert.ok(mine.some((c) => (c.exp_alerts ?? []).length > 0), `No firing test for ${alert}`);
    assert.ok(mine.some((c) => (c.exp_alerts ?? []).length === 0), `No quiet test for ${alert}`);
  }
});

Deno.test(
  "the rules file holds ALERT_EXPRESSIONS with severity, summary, description, runbook",
  requires("read"),
  async () => {
    const file = parse(renderAlertRules(RULE_GROUP, ALERT_RULES)) as ReturnType<
      typeof alertRulesFile
    >;
    assert.deepEqual(file, alertRulesFile(RULE_GROUP, ALERT_RULES));
    assert.equal(RULE_GROUP, "orders-pipeline");
    const rules = file.groups.flatMap((g) => g.rules);
    assert.deepEqual(rules.map(({ alert, expr }) => ({ alert, expr })), ALERT_EXPRESSIONS);
    assert.deepEqual(rules.map((r) => r.alert), [
      "PipelineDlqRateHigh",
      "PipelineConsumerLagGrowing",
      "PipelineStageStalled",
      "PipelineProcessingP95High",
    ]);
    const runbooks = await Deno.readTextFile(join(REPO_ROOT, RUNBOOKS));
    for (const rule of rules) {
      assert.match(rule.labels.severity, /^(warning|critical)$/);
      assert.ok(rule.annotations.summary && rule.annotations.description, rule.alert);
      assert.equal(rule.annotations.runbook_url, `${RUNBOOKS}#${rule.alert.toLowerCase()}`);
      assert.ok(runbooks.includes(`\n## ${rule.alert}\n`), `No runbook section for ${rule.alert}`);
    }
  },
);

Deno.test({
  name: "promtool parses every dashboard query (checked as recording rules)",
  ignore: ignorePromtool,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "panel_queries_" });
    try {
      const rules = PANEL_QUERIES.map((q, i) => ({ record: `panel:query:${i}`, expr: q.promql }));
      const file = join(dir, "panel_queries.yml");
      await Deno.writeTextFile(file, stringify({ groups: [{ name: "panels", rules }] }));
      const out = await promtool("check", "rules", file);
      assert.match(out, new RegExp(`SUCCESS: ${PANEL_QUERIES.length} rules found`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
