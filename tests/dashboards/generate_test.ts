import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DASHBOARD_FILE,
  generatedFiles,
  RULES_FILE,
  staleFiles,
  writeGeneratedFiles,
} from "../../dashboards/mod.ts";
import { REPO_ROOT } from "../../dashboards/generate.ts";
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
