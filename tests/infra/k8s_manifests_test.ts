/**
 * infra/k8s/ against the Kubernetes API schemas with kubeconform (strict: unknown fields are
 * errors), offline. The schemas are for Kubernetes v1.37.2 (the version in
 * infra/tools/kubeconform/kubernetes_version.txt): infra/tools/install_tools.sh makes them from
 * the OpenAPI document (api/openapi-spec/swagger.json) of the k8s.io/kubernetes Go module of that
 * version. Then the deployment's own rules: probes on the health endpoints, a grace period the
 * drain fits in, resources, configuration from the ConfigMap, credentials from the Secret.
 */

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { type Doc, INFRA, repoPath } from "./_infra_files.ts";
import { type Tool, tool, toolTest } from "./_tools.ts";
import { granted, requires } from "../_permissions.ts";

/** Without read access every test here is ignored; nothing is read at load time then. */
const CAN_READ = granted("read");

const KUBERNETES_VERSION = CAN_READ
  ? (await Deno.readTextFile(repoPath("infra/tools/kubeconform/kubernetes_version.txt"))).trim()
  : "unknown";
const SCHEMAS = repoPath(`.local/k8s-schemas/${KUBERNETES_VERSION}-strict`);

const kubeconform = await tool(repoPath(".local/bin/kubeconform"));
/** The schema folder, as a "tool": present once install_tools.sh has made it. */
const schemas: Tool = {
  name: `${SCHEMAS}/_definitions.json`,
  path: CAN_READ
    ? await Deno.stat(`${SCHEMAS}/_definitions.json`).then(() => SCHEMAS, () => undefined)
    : undefined,
};

/** The manifests, one entry per YAML document. */
async function readManifests(): Promise<{ file: string; doc: Doc }[]> {
  const manifests: { file: string; doc: Doc }[] = [];
  for await (const entry of Deno.readDir(INFRA.k8s)) {
    if (!entry.name.endsWith(".yaml")) continue;
    const file = `${INFRA.k8s}/${entry.name}`;
    for (const document of parseAllDocuments(await Deno.readTextFile(file))) {
      assert.ok(!("errors" in document) || document.errors.length === 0, file);
      manifests.push({ file: entry.name, doc: document.toJS() });
    }
  }
  return manifests.sort((a, b) => a.file.localeCompare(b.file));
}

const manifests = CAN_READ ? await readManifests() : [];

function find(kind: string, name: string): Doc {
  const found = manifests.find((m) => m.doc.kind === kind && m.doc.metadata.name === name);
  assert.ok(found, `no ${kind} "${name}" in infra/k8s/`);
  return found.doc;
}

/** kubeconform's JSON report for `files`. */
async function validate(binary: string, schemaDir: string, files: string[]) {
  const output = await new Deno.Command(binary, {
    args: [
      "-strict",
      "-summary",
      "-output",
      "json",
      "-kubernetes-version",
      KUBERNETES_VERSION.replace(/^v/, ""),
      "-schema-location",
      `${schemaDir}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
      ...files,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const report = JSON.parse(new TextDecoder().decode(output.stdout));
  return {
    code: output.code,
    // Only the resources with a problem are listed (no -verbose); the summary counts them all.
    resources: report.resources as { kind: string; name: string; status: string; msg?: string }[],
    summary: report.summary as { valid: number; invalid: number; errors: number; skipped: number },
  };
}

const manifestFiles = [...new Set(manifests.map((m) => `${INFRA.k8s}/${m.file}`))];

toolTest(
  `kubeconform (strict, Kubernetes ${KUBERNETES_VERSION} schemas) accepts every manifest`,
  [kubeconform, schemas],
  async ([bin, schemaDir]) => {
    const { code, resources, summary } = await validate(bin, schemaDir, manifestFiles);
    assert.deepEqual(resources, []);
    // Every document was checked against a schema: none skipped.
    assert.deepEqual(summary, { valid: manifests.length, invalid: 0, errors: 0, skipped: 0 });
    assert.equal(code, 0);
  },
);

toolTest(
  "kubeconform rejects a misspelt field, a wrong type and an unknown kind",
  [kubeconform, schemas],
  async ([bin, schemaDir]) => {
    const dir = await Deno.makeTempDir({ prefix: "kubeconform_" });
    try {
      const payments = await Deno.readTextFile(`${INFRA.k8s}/payments.yaml`);
      await Deno.writeTextFile(
        `${dir}/misspelt.yaml`,
        payments.replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:"),
      );
      await Deno.writeTextFile(
        `${dir}/wrong_type.yaml`,
        payments.replace("containerPort: 9000", 'containerPort: "9000"'),
      );
      await Deno.writeTextFile(
        `${dir}/unknown_kind.yaml`,
        payments.replace("kind: Deployment", "kind: Deploymnet"),
      );
      const { code, resources } = await validate(bin, schemaDir, [
        `${dir}/misspelt.yaml`,
        `${dir}/wrong_type.yaml`,
        `${dir}/unknown_kind.yaml`,
      ]);
      assert.notEqual(code, 0);
      const messages = resources.map((r) => `${r.status}: ${r.msg}`).sort();
      assert.equal(messages.length, 3, messages.join("\n"));
      assert.ok(messages.some((m) => /statusInvalid.*terminationGracePeriodSecond/.test(m)));
      assert.ok(messages.some((m) => /statusInvalid.*containerPort.*want integer/.test(m)));
      assert.ok(messages.some((m) => /statusError.*could not find schema for Deploymnet/.test(m)));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

const DEPLOYMENTS = ["orders", "payments"];
const configMap = CAN_READ ? find("ConfigMap", "orders-stream") : {};
const secret = CAN_READ ? find("Secret", "orders-stream-kafka") : {};

function containerOf(name: string): Doc {
  const deployment = find("Deployment", name);
  const [container] = deployment.spec.template.spec.containers;
  assert.equal(deployment.spec.template.spec.containers.length, 1);
  return container;
}

Deno.test("orders and payments run their command from one image", requires("read"), () => {
  const images = new Set<string>();
  for (const name of DEPLOYMENTS) {
    const container = containerOf(name);
    // The image's entry point is `deno task`: args name the task.
    assert.deepEqual(container.args, [name]);
    assert.equal(container.command, undefined);
    images.add(container.image);
  }
  assert.equal(images.size, 1);
});

Deno.test(
  "the probes ask /livez and /readyz, and scrapers /metrics, on the ConfigMap's HEALTH_PORT",
  requires("read"),
  () => {
    const port = Number(configMap.data.HEALTH_PORT);
    assert.ok(Number.isInteger(port) && port > 0);
    for (const name of DEPLOYMENTS) {
      const container = containerOf(name);
      const health = container.ports.find((p: Doc) => p.name === "health");
      assert.equal(health?.containerPort, port, name);
      assert.equal(container.livenessProbe.httpGet.path, "/livez", name);
      assert.equal(container.startupProbe.httpGet.path, "/livez", name);
      assert.equal(container.readinessProbe.httpGet.path, "/readyz", name);
      for (const probe of ["livenessProbe", "startupProbe", "readinessProbe"]) {
        assert.equal(container[probe].httpGet.port, "health", `${name} ${probe}`);
      }
      const annotations = find("Deployment", name).spec.template.metadata.annotations;
      assert.equal(Number(annotations["prometheus.io/port"]), port, name);
      assert.equal(annotations["prometheus.io/path"], "/metrics", name);
    }
  },
);

Deno.test(
  "SIGTERM's drain fits the termination grace (Kubernetes' default 30 s)",
  requires("read"),
  () => {
    const stopGrace = Number(configMap.data.STOP_GRACE_SECONDS);
    for (const name of DEPLOYMENTS) {
      const grace = find("Deployment", name).spec.template.spec.terminationGracePeriodSeconds;
      assert.ok(grace <= 30, `${name}: ${grace} s is longer than an orchestrator's default`);
      // After the stop grace, workers finish in-flight records, commit and flush telemetry.
      assert.ok(
        stopGrace + 10 <= grace,
        `${name}: STOP_GRACE_SECONDS ${stopGrace} + 10 > ${grace}`,
      );
    }
  },
);

Deno.test("every container requests and limits CPU and memory", requires("read"), () => {
  for (const name of DEPLOYMENTS) {
    const { requests, limits } = containerOf(name).resources;
    for (const resource of ["cpu", "memory"]) {
      assert.ok(requests?.[resource], `${name} requests no ${resource}`);
      assert.ok(limits?.[resource], `${name} limits no ${resource}`);
    }
  }
});

Deno.test(
  "configuration comes from the ConfigMap, credentials only from the Secret",
  requires("read"),
  () => {
    const secretLike = /PASSWORD|SECRET|TOKEN|USERNAME/;
    for (const key of Object.keys(configMap.data)) {
      assert.ok(!secretLike.test(key), `the ConfigMap holds "${key}"`);
    }
    for (const name of DEPLOYMENTS) {
      const container = containerOf(name);
      assert.deepEqual(container.envFrom, [{ configMapRef: { name: "orders-stream" } }]);
      const fromSecret = new Map<string, string>();
      for (const variable of container.env) {
        if (secretLike.test(variable.name)) {
          const ref = variable.valueFrom?.secretKeyRef;
          assert.ok(ref, `${name}: ${variable.name} is not read from a Secret`);
          assert.equal(ref.name, secret.metadata.name);
          assert.ok(ref.key in secret.stringData, `${name}: the Secret has no key "${ref.key}"`);
          fromSecret.set(variable.name, ref.key);
        }
      }
      assert.ok(fromSecret.has("KAFKA_SASL_USERNAME") && fromSecret.has("KAFKA_SASL_PASSWORD"));
    }
  },
);

Deno.test(
  "the CA file KAFKA_SSL_CA_LOCATION names is mounted from the Secret",
  requires("read"),
  () => {
    const location: string = configMap.data.KAFKA_SSL_CA_LOCATION;
    assert.equal(configMap.data.KAFKA_SECURITY_PROTOCOL, "SASL_SSL");
    for (const name of DEPLOYMENTS) {
      const spec = find("Deployment", name).spec.template.spec;
      const mount = containerOf(name).volumeMounts.find((m: Doc) =>
        location.startsWith(`${m.mountPath}/`)
      );
      assert.ok(mount, `${name} mounts nothing at ${location}`);
      const volume = spec.volumes.find((v: Doc) => v.name === mount.name);
      assert.equal(volume.secret.secretName, secret.metadata.name);
      const file = location.slice(mount.mountPath.length + 1);
      const item = volume.secret.items.find((i: Doc) => i.path === file);
      assert.ok(item && item.key in secret.stringData, `${name}: no Secret key for ${file}`);
    }
  },
);

Deno.test(
  "the pods run as the image's non-root deno user, without privilege escalation",
  requires("read"),
  async () => {
    const dockerfile = await Deno.readTextFile(INFRA.dockerfile);
    assert.match(dockerfile, /^USER deno$/m); // uid 1993 in the denoland/deno images
    for (const name of DEPLOYMENTS) {
      const spec = find("Deployment", name).spec.template.spec;
      assert.equal(spec.securityContext.runAsNonRoot, true);
      assert.equal(spec.securityContext.runAsUser, 1993);
      assert.equal(containerOf(name).securityContext.allowPrivilegeEscalation, false);
    }
  },
);
