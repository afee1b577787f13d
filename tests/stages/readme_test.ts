import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { formatMarkdown, readmeSections, renderReadme } from "../../stages/readme.ts";

const README = new URL("../../README.md", import.meta.url);

Deno.test("README.md's generated sections match the pipeline and the config spec", async () => {
  const readme = await Deno.readTextFile(README);
  assertEquals(
    await formatMarkdown(renderReadme(readme, readmeSections())),
    readme,
    "README.md is stale: run `deno task readme`",
  );
});

Deno.test("README.md opens with the two commands a newcomer needs", async () => {
  const readme = await Deno.readTextFile(README);
  const start = readme.indexOf("```sh");
  const firstBlock = readme.slice(start, readme.indexOf("```", start + 5));
  assertEquals(
    [...firstBlock.matchAll(/^deno task (\w+)/gm)].map((m) => m[1]),
    ["pipeline", "test"],
  );
});
