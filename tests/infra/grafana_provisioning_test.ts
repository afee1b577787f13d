/**
 * Grafana provisioning checked structurally (Grafana cannot run here): the datasources the
 * generated dashboards use exist, link exemplars and traces to each other, and point at the
 * compose services; the dashboard provider reads the folder compose mounts.
 */

import assert from "node:assert/strict";
import { type Doc, INFRA, readYaml } from "./_infra_files.ts";
import { granted, requires } from "../_permissions.ts";
import { EXEMPLAR_TRACE_ID_LABEL } from "../../pipeline/telemetry/names.ts";

const datasources: Doc = granted("read") ? await readYaml(INFRA.grafanaDatasources) : undefined;
const providers: Doc = granted("read") ? await readYaml(INFRA.grafanaDashboards) : undefined;
const compose: Doc = granted("read") ? await readYaml(INFRA.compose) : undefined;

function byUid(uid: string): Doc {
  const found = datasources.datasources.find((d: Doc) => d.uid === uid);
  assert.ok(found, `no datasource with uid "${uid}"`);
  return found;
}

Deno.test(
  "the datasources file is provisioning apiVersion 1 with unique uids",
  requires("read"),
  () => {
    assert.equal(datasources.apiVersion, 1);
    const uids = datasources.datasources.map((d: Doc) => d.uid);
    assert.deepEqual(new Set(uids).size, uids.length);
    for (const d of datasources.datasources) {
      for (const key of ["name", "type", "uid", "url"]) {
        assert.ok(
          d[key],
          `${d.name} has no ${key}`,
        );
      }
    }
  },
);

Deno.test("the Prometheus datasource links exemplars' trace_id to Tempo", requires("read"), () => {
  const prometheus = byUid("prometheus");
  assert.equal(prometheus.type, "prometheus");
  assert.equal(prometheus.url, "http://prometheus:9090");
  assert.equal(prometheus.isDefault, true);
  assert.deepEqual(
    prometheus.jsonData.exemplarTraceIdDestinations.map((d: Doc) => [d.name, d.datasourceUid]),
    [[EXEMPLAR_TRACE_ID_LABEL, "tempo"]],
  );
});

Deno.test(
  "the exemplar label Grafana looks up is the one Tempo's metrics generator writes",
  requires("read"),
  async () => {
    const tempo: Doc = await readYaml(INFRA.tempo);
    const [destination] = byUid("prometheus").jsonData.exemplarTraceIdDestinations;
    assert.equal(tempo.overrides.defaults.metrics_generator.trace_id_label_name, destination.name);
    assert.equal(byUid(destination.datasourceUid).type, "tempo");
  },
);

Deno.test(
  "the Tempo datasource has traces-to-metrics, the service map and the node graph",
  requires("read"),
  () => {
    const tempo = byUid("tempo");
    assert.equal(tempo.type, "tempo");
    assert.equal(tempo.url, "http://tempo:3200");
    assert.equal(tempo.jsonData.tracesToMetrics.datasourceUid, "prometheus");
    assert.ok(tempo.jsonData.tracesToMetrics.queries.length > 0);
    assert.equal(tempo.jsonData.serviceMap.datasourceUid, "prometheus");
    assert.equal(tempo.jsonData.nodeGraph.enabled, true);
  },
);

Deno.test(
  "provisioning files escape every literal $ (Grafana expands $VAR)",
  requires("read"),
  async () => {
    for (const path of [INFRA.grafanaDatasources, INFRA.grafanaDashboards]) {
      const text = await Deno.readTextFile(path);
      const content = text.split("\n").filter((line) => !line.trimStart().startsWith("#"));
      for (const line of content) {
        // `$$` is a literal dollar; a lone `$` before a name or brace is an expansion.
        const unescaped = line.replaceAll("$$", "").match(/\$[{A-Za-z_]/);
        assert.equal(unescaped, null, `unescaped "$" in ${path}: ${line.trim()}`);
      }
    }
  },
);

Deno.test(
  "the dashboard provider reads the folder compose mounts from dashboards/generated",
  requires("read"),
  () => {
    assert.equal(providers.apiVersion, 1);
    const [provider] = providers.providers;
    assert.equal(provider.type, "file");
    const mount = compose.services.grafana.volumes.find((v: string) =>
      v.startsWith("../dashboards/generated:")
    );
    assert.ok(mount, "compose does not mount dashboards/generated into Grafana");
    assert.equal(mount.split(":")[1], provider.options.path);
    assert.ok(
      compose.services.grafana.volumes.includes(
        "./grafana/provisioning:/etc/grafana/provisioning:ro",
      ),
    );
  },
);

Deno.test("Grafana allows anonymous viewers", requires("read"), () => {
  const env = compose.services.grafana.environment;
  assert.equal(env.GF_AUTH_ANONYMOUS_ENABLED, "true");
  assert.equal(env.GF_AUTH_ANONYMOUS_ORG_ROLE, "Viewer");
});

const generated = granted("read") ? await listDashboards() : [];

Deno.test({
  name: "generated dashboards use only provisioned datasource uids" +
    (granted("read") && generated.length === 0
      ? " [ignored: dashboards/generated has no JSON yet]"
      : ""),
  ignore: requires("read").ignore || generated.length === 0,
  fn: async () => {
    const known = new Set(datasources.datasources.map((d: Doc) => d.uid));
    const types = new Set(datasources.datasources.map((d: Doc) => d.type));
    for (const file of generated) {
      const dashboard = JSON.parse(await Deno.readTextFile(file));
      // Datasource variables: their plugin type is provisioned and their default is a known uid.
      const variables = new Map<string, Doc>();
      for (const variable of dashboard.templating?.list ?? []) {
        if (variable.type !== "datasource") continue;
        variables.set(variable.name, variable);
        assert.ok(types.has(variable.query), `${file}: no "${variable.query}" datasource`);
        const current = variable.current?.value;
        if (current !== undefined) {
          assert.ok(known.has(current), `${file}: "$${variable.name}" defaults to "${current}"`);
        }
      }
      for (const uid of datasourceUids(dashboard)) {
        const variable = /^\$\{?(\w+)\}?$/.exec(uid)?.[1];
        if (variable !== undefined) {
          assert.ok(variables.has(variable), `${file} uses undefined variable "${uid}"`);
        } else {
          assert.ok(known.has(uid), `${file} uses unknown datasource uid "${uid}"`);
        }
      }
    }
  },
});

async function listDashboards(): Promise<string[]> {
  const files: string[] = [];
  try {
    for await (const entry of Deno.readDir(INFRA.generatedDashboards)) {
      if (entry.isFile && entry.name.endsWith(".json")) {
        files.push(`${INFRA.generatedDashboards}/${entry.name}`);
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return files.sort();
}

/** Every `datasource.uid` in a dashboard (variables included), except Grafana's built-ins. */
function datasourceUids(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(datasourceUids);
  if (node === null || typeof node !== "object") return [];
  const record = node as Record<string, unknown>;
  const own: string[] = [];
  const ds = record.datasource;
  if (ds !== null && typeof ds === "object" && typeof (ds as Doc).uid === "string") {
    const uid: string = (ds as Doc).uid;
    if (!uid.startsWith("-- ") && uid !== "grafana") own.push(uid);
  }
  return [...own, ...Object.values(record).flatMap(datasourceUids)];
}
