/**
 * The fault suite's table: what it did, then what it found, one row each, per guarantee.
 *
 * @module
 */
import type { ActionKind, ChaosReport, ModeReport } from "./suite.ts";

const DID: Readonly<Record<ActionKind, string>> = {
  "kill": "SIGKILL a payment service process",
  "restart": "restart a payment service process",
  "broker-kill": "SIGKILL the broker",
  "broker-restart": "restart the broker",
  "member-add": "add a group member",
  "member-remove": "remove a group member (SIGTERM)",
  "poison": "write poison (kcat)",
  "unexpected-exit": "process exited on its own",
};

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function modeRows(mode: ModeReport): string[] {
  const rows: string[] = [];
  for (const line of mode.setup) rows.push(`| ${mode.guarantee} | setup | | ${cell(line)} |`);
  for (const [kind, label] of Object.entries(DID) as [ActionKind, string][]) {
    const done = mode.actions.filter((a) => a.kind === kind);
    if (done.length === 0) continue;
    const detail = kind === "poison"
      ? done.map((a) => a.detail.split(" ")[0]).join(", ")
      : kind === "broker-restart"
      ? done.map((a) => a.detail).join("; ")
      : kind === "kill"
      ? done.map((a) => `${(a.atMs / 1000).toFixed(0)} s ${a.detail.split(" ")[2]}`).join(", ")
      : done.length <= 3
      ? done.map((a) => a.detail).join("; ")
      : `${done.length} times`;
    rows.push(`| ${mode.guarantee} | did: ${label} | ${done.length} | ${cell(detail)} |`);
  }
  for (const check of mode.checks) {
    const result = check.status === "not available" ? "not available" : check.status.toUpperCase();
    rows.push(`| ${mode.guarantee} | ${cell(check.check)} | ${result} | ${cell(check.detail)} |`);
  }
  rows.push(`| ${mode.guarantee} | duration | | ${mode.seconds.toFixed(0)} s |`);
  return rows;
}

/**
 * The report as a Markdown table (the README's "Fault suite" section shows the last one).
 *
 * @example
 * ```ts
 * import { renderReport } from "./report.ts";
 * console.log(renderReport({ seed: 1, modes: [], passed: true }).split("\n")[0]);
 * // | mode | step | result | detail |
 * ```
 */
export function renderReport(report: ChaosReport): string {
  const failed = report.modes.flatMap((m) => m.checks).filter((c) => c.status === "fail");
  const missing = report.modes.flatMap((m) => m.checks).filter((c) => c.status === "not available");
  return [
    "| mode | step | result | detail |",
    "| ---- | ---- | ------ | ------ |",
    ...report.modes.flatMap(modeRows),
    "",
    `seed ${report.seed}: ${
      report.passed ? "PASSED" : `FAILED (${failed.length} checks)`
    }, ${missing.length} checks not available`,
  ].join("\n");
}
