import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { formatMarkdown, readmeSections, renderReadme } from "../../stages/readme.ts";
import { requires } from "../_permissions.ts";

const README = new URL("../../README.md", import.meta.url);

Deno.test(
  "README.md's generated sections match the pipeline and the config spec",
  requires("read", "run"),
  async () => {
    const readme = await Deno.readTextFile(README);
    assertEquals(
      await formatMarkdown(renderReadme(readme, readmeSections())),
      readme,
      "README.md is stale: run `deno task readme`",
    );
  },
);

Deno.test(
  "README.md opens with the two commands a newcomer needs, and a stage's own tests",
  requires("read"),
  async () => {
    const readme = await Deno.readTextFile(README);
    const start = readme.indexOf("```sh");
    const firstBlock = readme.slice(start, readme.indexOf("```", start + 5));
    assertEquals(
      [...firstBlock.matchAll(/^deno task (\w+)/gm)].map((m) => m[1]),
      ["pipeline", "test"],
    );
    const stageTests = [...firstBlock.matchAll(/^deno test (\S+)/gm)].map((m) => m[1]);
    assertEquals(stageTests, ["tests/stages/payment_test.ts"]);
    await Deno.stat(new URL(`../../${stageTests[0]}`, import.meta.url));
  },
);

Deno.test(
  "README.md's own-pipeline example runs with no permissions and prints what it says",
  requires("read", "write", "run"),
  async () => {
    const readme = await Deno.readTextFile(README);
    const section = readme.slice(readme.indexOf("### Your own pipeline"));
    const start = section.indexOf("```ts\n") + "```ts\n".length;
    const code = section.slice(start, section.indexOf("```", start));
    // The example imports from the repository root; run it from .local/ with paths adjusted.
    const dir = new URL("../../.local/", import.meta.url);
    await Deno.mkdir(dir, { recursive: true });
    const file = new URL(`readme_example_${Deno.pid}.ts`, dir);
    await Deno.writeTextFile(file, code.replaceAll('from "./pipeline/', 'from "../pipeline/'));
    try {
      const { code: exit, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        // No permission flags: a pipeline of one's own on the embedded transport needs none.
        args: ["run", "--no-prompt", file.pathname],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      assertEquals(exit, 0, decoder.decode(stderr));
      assertEquals(decoder.decode(stdout).trim(), "1");
    } finally {
      await Deno.remove(file);
    }
  },
);
