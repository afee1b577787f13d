/**
 * The Dockerfile, read by BuildKit's own parser and build checks (infra/tools/dockerfile_check):
 * multi-stage, dependencies cached from deno.lock before the sources are copied, a non-root
 * runtime without package installs, the health port exposed and probed, `deno task` as the
 * entry point. The build context after .dockerignore (Docker's own matcher) holds every module
 * the runtime commands load, workers included. And `deno task`, the entry point, passes SIGTERM
 * on to the command, which is what lets a container drain on `docker stop`.
 *
 * No Docker here: the build itself is not run. Its steps are, as far as they can be without
 * Docker: `deno install --frozen` from the lock is what CI runs, and the drain test runs the
 * entry point's command.
 */

import assert from "node:assert/strict";
import { INFRA, repoPath } from "./_infra_files.ts";
import { tool, toolTest } from "./_tools.ts";
import { pollUntil } from "../_observability.ts";
import { requires } from "../_permissions.ts";

/** BuildKit's parser, built by infra/tools/install_tools.sh from infra/tools/dockerfile_check. */
const dockerfileCheck = await tool(repoPath(".local/bin/dockerfile_check"));

/** One instruction as dockerfile_check reports it. */
interface Instruction {
  /** The instruction keyword, upper case as BuildKit names it (`RUN`, `COPY`, ...). */
  name: string;
  /** The source line(s) as written. */
  original: string;
  /** BuildKit's decoded instruction. */
  // deno-lint-ignore no-explicit-any -- BuildKit's instruction structs differ per keyword.
  detail: any;
}

/** dockerfile_check's output. */
interface Report {
  metaArgs: string[];
  stages: { name: string; base: string; commands: Instruction[] }[];
  warnings: { rule: string; message: string; line: number }[];
  context?: string[];
}

async function parseDockerfile(binary: string, dockerfile: string, context?: string) {
  const args = context === undefined ? [dockerfile] : [dockerfile, context];
  const output = await new Deno.Command(binary, { args, stdout: "piped", stderr: "piped" })
    .output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(output.stdout)) as Report;
}

function instructions(stage: Report["stages"][number], name: string): Instruction[] {
  return stage.commands.filter((command) => command.name === name);
}

toolTest("BuildKit parses the Dockerfile with no build-check warning", [dockerfileCheck], async ([
  bin,
]) => {
  const report = await parseDockerfile(bin, INFRA.dockerfile);
  assert.deepEqual(report.warnings, []);
  assert.deepEqual(report.stages.map((stage) => stage.name), ["build", "runtime"]);
});

toolTest(
  "BuildKit reports a Dockerfile mistake (the parser is not a no-op)",
  [dockerfileCheck],
  async ([bin]) => {
    const dir = await Deno.makeTempDir({ prefix: "dockerfile_check_" });
    try {
      // A deprecated MAINTAINER and a lower-case `as`, both flagged by BuildKit's checks.
      const text = (await Deno.readTextFile(INFRA.dockerfile))
        .replace("WORKDIR /app", "MAINTAINER someone\nWORKDIR /app")
        .replace(" AS build", " as build");
      await Deno.writeTextFile(`${dir}/Dockerfile`, text);
      const report = await parseDockerfile(bin, `${dir}/Dockerfile`);
      const rules = report.warnings.map((warning) => warning.rule).sort();
      assert.deepEqual(rules, ["FromAsCasing", "MaintainerDeprecated"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

toolTest(
  "the build stage installs the dependencies from deno.lock alone, then every module",
  [dockerfileCheck],
  async ([bin]) => {
    const [build] = (await parseDockerfile(bin, INFRA.dockerfile)).stages;
    const steps = build.commands.filter((c) => c.name === "COPY" || c.name === "RUN");
    // The dependency layer depends on deno.json and deno.lock only, so a source change keeps it.
    assert.deepEqual(steps[0].detail.SourcePaths, ["deno.json", "deno.lock"]);
    assert.deepEqual(steps[1].detail.CmdLine, ["deno install --frozen"]);
    assert.deepEqual(steps[2].detail.SourcePaths, ["."]);
    // Every module as an entrypoint: `--entrypoint` does not follow `new Worker(...)`.
    assert.match(steps[3].detail.CmdLine[0], /^deno install --frozen --entrypoint \$\(find \. /);
    assert.equal(steps.length, 4);
  },
);

toolTest(
  "the runtime stage runs as the deno user, installs nothing, and starts `deno task`",
  [dockerfileCheck],
  async ([bin]) => {
    const report = await parseDockerfile(bin, INFRA.dockerfile);
    const runtime = report.stages.at(-1)!;
    const users = instructions(runtime, "USER").map((user) => user.detail.User);
    assert.deepEqual(users, ["deno"]);
    // Its RUN steps only make a folder for the deno user: no package manager, no compiler.
    for (const run of instructions(runtime, "RUN")) {
      assert.match(run.detail.CmdLine.join(" "), /^mkdir -p \S+ && chown deno:deno \S+$/);
    }
    // What it ships comes from the build stage: the caches and the application.
    const copies = instructions(runtime, "COPY");
    assert.ok(copies.length > 0 && copies.every((copy) => copy.detail.From === "build"));
    assert.ok(copies.some((copy) => copy.detail.DestPath === "/deno-dir"));
    const [entrypoint] = instructions(runtime, "ENTRYPOINT");
    assert.deepEqual(entrypoint.detail.CmdLine, ["deno", "task"]);
    assert.equal(entrypoint.detail.PrependShell, false);
    const [cmd] = instructions(runtime, "CMD");
    assert.deepEqual(cmd.detail.CmdLine, ["pipeline"]);
    // Both stages start from the Deno that CI installs (.ci/run), so the lock means the same.
    const ci = await Deno.readTextFile(repoPath(".ci/run"));
    const ciDeno = ci.match(/deno@(\d+\.\d+\.\d+)/)?.[1];
    const dockerfile = await Deno.readTextFile(INFRA.dockerfile);
    assert.equal(dockerfile.match(/^ARG DENO_VERSION=(\S+)$/m)?.[1], ciDeno);
    for (const stage of report.stages) {
      assert.equal(stage.base, "denoland/deno:debian-${DENO_VERSION}");
    }
  },
);

toolTest(
  "the image exposes HEALTH_PORT and its healthcheck asks /livez there",
  [dockerfileCheck],
  async ([bin]) => {
    const runtime = (await parseDockerfile(bin, INFRA.dockerfile)).stages.at(-1)!;
    const env = new Map<string, string>(
      instructions(runtime, "ENV").flatMap((e) =>
        e.detail.Env.map((pair: { Key: string; Value: string }) => [pair.Key, pair.Value])
      ),
    );
    const port = env.get("HEALTH_PORT");
    assert.ok(port, "the runtime stage sets no HEALTH_PORT");
    const exposed = instructions(runtime, "EXPOSE").flatMap((e) => e.detail.Ports);
    assert.deepEqual(exposed, [port]);
    const [healthcheck] = instructions(runtime, "HEALTHCHECK");
    const test: string[] = healthcheck.detail.Health.Test;
    assert.equal(test[0], "CMD");
    assert.ok(test.join(" ").includes("HEALTH_PORT") && test.join(" ").includes("/livez"));
  },
);

/**
 * deno.json tasks that are development tools, not commands the image is for: these names and
 * their `name:variant` forms (`broker:secure`, `infra:up`).
 */
const DEVELOPMENT_TASKS = ["test", "check", "broker", "bench", "readme", "dashboards", "infra"];

function isDevelopmentTask(name: string): boolean {
  return DEVELOPMENT_TASKS.some((task) => name === task || name.startsWith(`${task}:`));
}

/** The local modules (repository-relative) that `deno info` finds in a module's graph. */
async function localGraph(module: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", module],
    cwd: repoPath(""),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout));
  const root = new URL("../../", import.meta.url).href;
  return graph.modules
    .map((m: { specifier: string }) => m.specifier)
    .filter((specifier: string) => specifier.startsWith(root))
    .map((specifier: string) => specifier.slice(root.length));
}

toolTest(
  "the build context (after .dockerignore) has every module of every command, workers included",
  [dockerfileCheck],
  async ([bin]) => {
    const { context } = await parseDockerfile(bin, INFRA.dockerfile, repoPath(""));
    assert.ok(context);
    const files = new Set(context);
    assert.ok(files.has("deno.json") && files.has("deno.lock"));
    assert.ok(!context.some((file) => file.startsWith("tests/") || file.startsWith(".local/")));

    const deno = JSON.parse(await Deno.readTextFile(repoPath("deno.json")));
    const roots = new Set<string>();
    for (const [name, command] of Object.entries(deno.tasks as Record<string, string>)) {
      if (isDevelopmentTask(name)) continue;
      const module = command.split(/\s+/).find((word) => word.endsWith(".ts"));
      assert.ok(module, `task "${name}" runs no module: is it a development task?`);
      roots.add(module.replace(/^\.\//, ""));
    }
    assert.ok(roots.has("stages/main.ts"), "the pipeline task's module");
    // Worker modules, which no static import reaches: `new Worker(new URL("./x.ts", ...))`.
    for (const file of context.filter((f) => f.endsWith(".ts"))) {
      const code = (await Deno.readTextFile(repoPath(file))).split("\n")
        .filter((line) => !/^\s*(\*|\/\*|\/\/)/.test(line)); // not the examples in comments
      const text = code.join("\n");
      for (
        const match of text.matchAll(/new URL\(\s*"(\.{1,2}\/[^"]+\.ts)",\s*import\.meta\.url/g)
      ) {
        roots.add(new URL(match[1], `file:///${file}`).pathname.slice(1));
      }
    }
    assert.ok(roots.has("pipeline/supervisor/_worker.ts"), "the payment workers' module");
    for (const root of roots) {
      for (const module of await localGraph(root)) {
        assert.ok(files.has(module), `${module} (loaded from ${root}) is not in the image`);
      }
    }
  },
);

Deno.test(
  "SIGTERM to `deno task pipeline`, the image's entry point, drains the command",
  requires("env", "read", "run"),
  async () => {
    const env = Deno.env.toObject();
    for (const name of Object.keys(env)) {
      if (name.startsWith("OTEL_") || name === "KAFKA_BROKERS" || name === "RUST_BACKTRACE") {
        delete env[name];
      }
    }
    // The embedded transport (no KAFKA_BROKERS): the signal path is what is under test.
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "pipeline", "--rate", "50", "--seed", "7"],
      cwd: repoPath(""),
      env: { ...env, NO_COLOR: "1" },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stdout = "";
    let stderr = "";
    const decode = async (stream: ReadableStream<Uint8Array>, into: (text: string) => void) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) into(text);
    };
    const drained = Promise.all([
      decode(child.stdout, (text) => stdout = (stdout + text).slice(-65536)),
      decode(child.stderr, (text) => stderr = (stderr + text).slice(-65536)),
    ]);
    let exited = false;
    const status = child.status.finally(() => exited = true);
    try {
      // Running: some orders paid.
      await pollUntil(() => /paid [1-9]/.test(stderr + stdout) ? true : undefined, {
        timeoutMs: 30_000,
        description: "the first paid orders",
      });
      child.kill("SIGTERM"); // to `deno task`, as `docker stop` signals the container's PID 1
      const { code } = await pollUntil(() => exited ? status : undefined, {
        timeoutMs: 30_000,
        description: "the exit after SIGTERM",
      });
      await drained;
      assert.equal(code, 0, stderr.slice(-2000));
      assert.match(stderr, /SIGTERM received/);
      const summary = stdout.trim().split("\n").find((line) => line.startsWith('{"summary"'));
      assert.ok(summary, `no summary line: ${stdout.slice(-1000)}`);
      const counts = JSON.parse(summary).summary;
      assert.equal(
        counts.generated,
        counts.paid + counts.dead_lettered,
        "every order has an outcome",
      );
    } finally {
      if (!exited) child.kill("SIGKILL");
      await status;
      await drained;
    }
  },
);
