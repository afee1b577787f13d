/**
 * infra/prometheus/prometheus.yml checked by promtool (Debian's Prometheus 2.42), and its
 * wiring to the rest of the stack.
 */

import assert from "node:assert/strict";
import { type Doc, INFRA, portOf, readYaml } from "./_infra_files.ts";
import { tool, toolTest } from "./_tools.ts";
import { granted, requires } from "../_permissions.ts";

const promtool = await tool("promtool");
const prometheus: Doc = granted("read") ? await readYaml(INFRA.prometheus) : undefined;

async function run(binary: string, args: string[]) {
  const output = await new Deno.Command(binary, { args, stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    text: decoder.decode(output.stdout) + decoder.decode(output.stderr),
  };
}

toolTest("promtool accepts infra/prometheus/prometheus.yml", [promtool], async ([path]) => {
  const { code, text } = await run(path, ["check", "config", INFRA.prometheus]);
  assert.equal(code, 0, text);
  assert.match(text, /SUCCESS/);
});

toolTest("promtool rejects a broken Prometheus config", [promtool], async ([path]) => {
  const dir = await Deno.makeTempDir({ prefix: "promtool_test_" });
  try {
    const broken = (await Deno.readTextFile(INFRA.prometheus)).replace(
      "scrape_interval: 5s",
      "scrape_interval: five seconds",
    );
    await Deno.writeTextFile(`${dir}/prometheus.yml`, broken);
    const { code } = await run(path, ["check", "config", `${dir}/prometheus.yml`]);
    assert.notEqual(code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prometheus.yml loads every rule file under rules/", requires("read"), () => {
  assert.deepEqual(prometheus.rule_files, ["rules/*.yml"]);
});

Deno.test(
  "prometheus.yml scrapes the Collector's Prometheus exporter",
  requires("read"),
  async () => {
    const collector: Doc = await readYaml(INFRA.collector);
    const job = prometheus.scrape_configs.find((j: Doc) => j.job_name === "otel-collector");
    assert.ok(job, "no otel-collector job");
    assert.equal(job.honor_labels, true);
    const [target] = job.static_configs[0].targets;
    assert.equal(target, `otel-collector:${portOf(collector.exporters.prometheus.endpoint)}`);
    assert.ok(job.metric_relabel_configs.length > 0, "unit suffixes are not stripped");
  },
);

Deno.test(
  "Tempo's metrics generator remote-writes to this Prometheus",
  requires("read"),
  async () => {
    const tempo: Doc = await readYaml(INFRA.tempo);
    const urls = tempo.metrics_generator.storage.remote_write.map((w: Doc) => w.url);
    assert.deepEqual(urls, ["http://prometheus:9090/api/v1/write"]);
  },
);
