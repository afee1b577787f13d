/**
 * The commands of this folder run through the framework's command helper; kept as a path of
 * its own so the domain's commands import it from one place.
 *
 * @module
 */
export { runCommand } from "../pipeline/command.ts";
export type { CommandIo, CommandMain } from "../pipeline/command.ts";
