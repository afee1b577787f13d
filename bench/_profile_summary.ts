/**
 * Where a variant's CPU goes, by part: reads a V8 CPU profile (`.cpuprofile`, as
 * `_client_variant.ts --profile` writes) and sorts its busy samples into the client and runtime
 * I/O, the framework (`pipeline/`), the domain (`stages/`), zod, garbage collection and V8 itself,
 * each with its share and, given the variant's CPU µs per record, its µs per record.
 *
 * Usage: `deno run --allow-read bench/_profile_summary.ts <file.cpuprofile> [cpuUsPerRecord]`
 *
 * @module
 */
import { PipelineError } from "../pipeline/errors.ts";

/** The parts a sample is counted in. */
export const PARTS = [
  "client and runtime I/O",
  "framework (pipeline/)",
  "domain (stages/)",
  "zod",
  "bench code (the raw loop's transform)",
  "garbage collection",
  "V8 (program)",
] as const;

/** One part of a profile. */
export type Part = typeof PARTS[number];

/** The part of a profile node's call frame. */
export function partOf(frame: { readonly functionName: string; readonly url: string }): Part {
  if (frame.functionName === "(garbage collector)") return "garbage collection";
  if (frame.functionName === "(program)") return "V8 (program)";
  if (frame.url.includes("/zod/") || frame.url.includes("npm:zod")) return "zod";
  if (frame.url.includes("/pipeline/")) return "framework (pipeline/)";
  if (frame.url.includes("/stages/")) return "domain (stages/)";
  if (frame.url.includes("/bench/")) return "bench code (the raw loop's transform)";
  // npm clients, Deno's node:buffer and streams, ops (the codec's UTF-8 ops count here too).
  return "client and runtime I/O";
}

interface Profile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string };
  }[];
  readonly samples: readonly number[];
}

/** Busy samples per part (idle samples left out), largest first. */
export function summarise(profile: Profile): { part: Part; samples: number; share: number }[] {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const counts = new Map<Part, number>();
  let busy = 0;
  for (const id of profile.samples) {
    const frame = frames.get(id);
    if (frame === undefined) {
      throw new PipelineError(`Cannot summarise the profile: sample of unknown node ${id}`);
    }
    if (frame.functionName === "(idle)") continue;
    busy++;
    const part = partOf(frame);
    counts.set(part, (counts.get(part) ?? 0) + 1);
  }
  return [...counts]
    .map(([part, samples]) => ({ part, samples, share: busy === 0 ? 0 : samples / busy }))
    .sort((a, b) => b.samples - a.samples);
}

if (import.meta.main) {
  const [file, perRecord] = Deno.args;
  if (file === undefined) {
    console.error("usage: deno run --allow-read bench/_profile_summary.ts <file> [cpuUsPerRecord]");
    Deno.exit(2);
  }
  const rows = summarise(JSON.parse(await Deno.readTextFile(file)) as Profile);
  const us = perRecord === undefined ? undefined : Number(perRecord);
  console.log("| part | busy samples | share | CPU µs/record |\n| --- | --- | --- | --- |");
  for (const row of rows) {
    const cost = us === undefined ? "-" : (us * row.share).toFixed(1);
    console.log(`| ${row.part} | ${row.samples} | ${(row.share * 100).toFixed(1)}% | ${cost} |`);
  }
}
