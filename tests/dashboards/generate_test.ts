import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import {
  DASHBOARD_FILE,
  DASHBOARDS_DIR,
  generatedFiles,
  RULES_DIR,
  RULES_FILE,
  staleFiles,
  writeGeneratedFiles,
} from "../../dashboards/mod.ts";
import { main, REPO_ROOT } from "../../dashboards/generate.ts";
import { requires } from "../_permissions.ts";

Deno.test(
  "the committed dashboard JSON and rules file match what the code generates",
  requires("read"),
  async () => {
    const stale = await staleFiles();
    assert.deepEqual(
      stale,
      [],
      `Stale generated files: ${stale.join(", ")}: run deno task dashboards`,
    );
  },
);

Deno.test("generation is deterministic, with sorted keys and a final newline", () => {
  const first = generatedFiles();
  const second = generatedFiles();
  assert.deepEqual(first, second);
  assert.deepEqual(Object.keys(first), [DASHBOARD_FILE, RULES_FILE]);
  for (const text of Object.values(first)) {
    assert.ok(text.endsWith("\n") && !text.endsWith("\n\n"));
  }
  const json = first[DASHBOARD_FILE];
  const sorted = (value: unknown): boolean => {
    if (Array.isArray(value)) return value.every(sorted);
    if (value === null || typeof value !== "object") return true;
    const keys = Object.keys(value);
    const inOrder = keys.every((k, i) => i === 0 || keys[i - 1] < k);
    return inOrder && Object.values(value).every(sorted);
  };
  assert.ok(sorted(JSON.parse(json)), "Dashboard JSON keys are not sorted");
});

Deno.test(
  "staleFiles() names missing and edited files, and none after writing",
  requires("read", "write"),
  async () => {
    const root = await Deno.makeTempDir({ prefix: "dashboards_generate_" });
    try {
      assert.deepEqual(await staleFiles(root), [DASHBOARD_FILE, RULES_FILE]);
      assert.deepEqual(await writeGeneratedFiles(root), [DASHBOARD_FILE, RULES_FILE]);
      assert.deepEqual(await staleFiles(root), []);
      await Deno.writeTextFile(join(root, RULES_FILE), "groups: []\n");
      assert.deepEqual(await staleFiles(root), [RULES_FILE]);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);

Deno.test(
  "generate.ts --check exits 0 on the committed files and writes nothing",
  requires("read", "run"),
  async () => {
    const before = await Deno.stat(join(REPO_ROOT, DASHBOARD_FILE));
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", join(REPO_ROOT, "dashboards/generate.ts"), "--check"],
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 0, out);
    assert.match(out, /up to date/);
    const after = await Deno.stat(join(REPO_ROOT, DASHBOARD_FILE));
    assert.equal(after.mtime?.getTime(), before.mtime?.getTime());
  },
);

const SENSORS = new URL("./_sensors_pipeline.ts", import.meta.url).pathname;

async function runGenerate(...args: string[]): Promise<{ code: number; out: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", join(REPO_ROOT, "dashboards/generate.ts"), ...args],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code, out: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr) };
}

Deno.test(
  "generate.ts --help says how to derive a dashboard from any pipeline",
  requires("read", "run", "env"),
  async () => {
    const { code, out } = await runGenerate("--help");
    assert.equal(code, 0, out);
    assert.match(out, /^Usage: deno task dashboards/);
    for (const word of ["--pipeline <module>", "--export <name>", "--check", "node graph"]) {
      assert.ok(out.includes(word), `--help says nothing of "${word}"`);
    }
    const bad = await runGenerate("--pipline", "x.ts");
    assert.equal(bad.code, 2);
    assert.match(bad.out, /Cannot run dashboards with unknown argument "--pipline": see --help/);
  },
);

Deno.test(
  "--pipeline writes a dashboard and alert rules derived from any pipeline module",
  requires("read", "write"),
  async () => {
    const root = await Deno.makeTempDir({ prefix: "dashboards_pipeline_" });
    try {
      assert.equal(await main(["--pipeline", SENSORS], { root }), 0);
      const dashboard = JSON.parse(
        await Deno.readTextFile(join(root, DASHBOARDS_DIR, "sensors_pipeline.json")),
      );
      assert.equal(dashboard.uid, "sensors-pipeline");
      const titles = dashboard.panels.map((p: { title: string }) => p.title);
      assert.ok(titles.includes("check-temperature: lag by partition"));
      assert.ok(titles.includes("notify: latency from traces"));
      const rules = parse(
        await Deno.readTextFile(join(root, RULES_DIR, "sensors_pipeline_alerts.yml")),
      ) as { groups: { name: string; rules: { alert: string }[] }[] };
      assert.equal(rules.groups[0].name, "sensors-pipeline");
      assert.equal(rules.groups[0].rules.length, 4);
      // The same module through --export, and a wrong export refused with exit 1.
      assert.equal(await main(["--pipeline", SENSORS, "--export", "sensors"], { root }), 0);
      assert.equal(await main(["--pipeline", SENSORS, "--export", "notAPipeline"], { root }), 1);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);
