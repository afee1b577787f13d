/**
 * Configuration as a spec: one entry per setting (name, type, default, description,
 * environment variable, flag). Values come from flags, then the environment, then defaults;
 * a bad value is a {@linkcode ConfigError} naming the variable or flag. `--help` text and the
 * README's configuration table are generated from the same spec.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";

/** The types a setting can have. */
export type SettingType = "string" | "integer" | "number" | "boolean";

type ValueOf<T extends SettingType> = T extends "string" ? string
  : T extends "boolean" ? boolean
  : number;

/** One setting. */
export interface Setting<T extends SettingType = SettingType> {
  /** The value's type. */
  readonly type: T;
  /** What it does, one sentence. */
  readonly description: string;
  /** The environment variable, if any (e.g. `KAFKA_BROKERS`). */
  readonly env?: string;
  /** The command-line flag, without dashes (e.g. `max-orders`), if any. */
  readonly flag?: string;
  /** The default; `undefined` means unset unless given. */
  readonly default?: ValueOf<T>;
  /** Inclusive lower bound for numbers. */
  readonly min?: number;
  /** Inclusive upper bound for numbers. */
  readonly max?: number;
  /** Allowed values for strings. */
  readonly choices?: readonly string[];
}

/** A set of settings by key. */
export type ConfigSpec = Record<string, Setting>;

type ValueOfSetting<S> = S extends { readonly type: infer T extends SettingType } ? ValueOf<T>
  : never;

/** The parsed values of a spec: settings without a default may be `undefined`. */
export type ConfigValues<S extends ConfigSpec> = {
  -readonly [K in keyof S]: S[K] extends { readonly default: unknown } ? ValueOfSetting<S[K]>
    : ValueOfSetting<S[K]> | undefined;
};

/** Declares a setting, keeping its literal shape so {@linkcode ConfigValues} can type it. */
export function setting<const S extends Setting>(spec: S): S {
  return spec;
}

function convert(setting: Setting, raw: string, source: string): unknown {
  const fail = (rule: string): never => {
    throw new ConfigError(
      `Cannot use ${source} as it must be ${rule}: current value is "${raw}"`,
      { field: source },
    );
  };
  switch (setting.type) {
    case "string": {
      if (setting.choices && !setting.choices.includes(raw)) {
        fail(`one of ${setting.choices.map((c) => `"${c}"`).join(", ")}`);
      }
      if (raw.trim() === "") fail("a non-empty string");
      return raw;
    }
    case "boolean": {
      if (["true", "1", "yes", ""].includes(raw)) return true;
      if (["false", "0", "no"].includes(raw)) return false;
      return fail("true or false");
    }
    case "integer":
    case "number": {
      const value = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(value)) {
        fail(setting.type === "integer" ? "an integer" : "a number");
      }
      if (setting.type === "integer" && !Number.isInteger(value)) fail("an integer");
      if (setting.min !== undefined && value < setting.min) fail(`at least ${setting.min}`);
      if (setting.max !== undefined && value > setting.max) fail(`at most ${setting.max}`);
      return value;
    }
  }
}

/** The result of {@linkcode parseConfig}. */
export interface ParsedConfig<S extends ConfigSpec> {
  /** The values; with `help`, the defaults (flags and environment are not read). */
  readonly values: ConfigValues<S>;
  /** Whether `--help` or `-h` was given. */
  readonly help: boolean;
  /** Where each value came from: `flag`, `env` or `default`. */
  readonly sources: Record<keyof S, "flag" | "env" | "default">;
}

/** Options for {@linkcode parseConfig}. */
export interface ParseConfigOptions {
  /**
   * The environment.
   * @default Deno.env.toObject()
   */
  readonly env?: Record<string, string | undefined>;
  /**
   * The command-line arguments.
   * @default Deno.args
   */
  readonly args?: readonly string[];
}

/**
 * Parses flags (`--name value` or `--name=value`) and environment variables against a spec.
 *
 * @throws {ConfigError} naming the flag or variable at fault, or an unknown flag
 *
 * @example
 * ```ts
 * import { parseConfig, setting } from "./config.ts";
 * const spec = { rate: setting({ type: "number", flag: "rate", default: 10, description: "Per second" }) };
 * const { values } = parseConfig(spec, { args: ["--rate", "5"], env: {} });
 * console.log(values.rate); // 5
 * ```
 */
export function parseConfig<S extends ConfigSpec>(
  spec: S,
  options: ParseConfigOptions = {},
): ParsedConfig<S> {
  const { env = Deno.env.toObject(), args = Deno.args } = options;
  const byFlag = new Map(
    Object.entries(spec).filter(([, s]) => s.flag).map(([key, s]) => [s.flag!, key]),
  );
  const flags = new Map<string, string>();
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    const match = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    if (!match || !byFlag.has(match[1])) {
      throw new ConfigError(`Cannot use argument "${arg}" as it is not a known flag: see --help`, {
        field: arg,
      });
    }
    const key = byFlag.get(match[1])!;
    let value = match[2];
    if (value === undefined) {
      if (
        spec[key].type === "boolean" && (args[i + 1] === undefined || args[i + 1].startsWith("--"))
      ) {
        value = "true";
      } else if (args[i + 1] === undefined) {
        throw new ConfigError(`Cannot use flag "--${match[1]}" as it has no value`, {
          field: `--${match[1]}`,
        });
      } else {
        value = args[++i];
      }
    }
    flags.set(key, value);
  }
  const values: Record<string, unknown> = {};
  const sources: Record<string, "flag" | "env" | "default"> = {};
  for (const [key, s] of Object.entries(spec)) {
    // With --help nothing runs, so a bad value must not hide the help that explains it.
    const fromFlag = help ? undefined : flags.get(key);
    const fromEnv = help || s.env === undefined ? undefined : env[s.env];
    if (fromFlag !== undefined) {
      values[key] = convert(s, fromFlag, `flag "--${s.flag}"`);
      sources[key] = "flag";
    } else if (fromEnv !== undefined && fromEnv !== "") {
      values[key] = convert(s, fromEnv, s.env!);
      sources[key] = "env";
    } else {
      values[key] = s.default;
      sources[key] = "default";
    }
  }
  return {
    values: values as ConfigValues<S>,
    help,
    sources: sources as Record<keyof S, "flag" | "env" | "default">,
  };
}

function defaultText(s: Setting): string {
  return s.default === undefined ? "unset" : JSON.stringify(s.default);
}

/** Options for {@linkcode helpText}. */
export interface HelpTextOptions {
  /**
   * More settings after the command's own, each group under its title (e.g. the Kafka security
   * variables every Kafka command reads).
   * @default []
   */
  readonly sections?: readonly { readonly title: string; readonly spec: ConfigSpec }[];
}

/** The `--help` text for a spec. */
export function helpText(spec: ConfigSpec, usage: string, options: HelpTextOptions = {}): string {
  const { sections = [] } = options;
  const lines = [usage, "", "Options (flag, environment variable, default):"];
  const describe = (settings: ConfigSpec) => {
    for (const s of Object.values(settings)) {
      const names = [s.flag ? `--${s.flag}` : undefined, s.env].filter(Boolean).join(", ");
      lines.push(`  ${names}`);
      lines.push(`      ${s.description} (${s.type}, default ${defaultText(s)})`);
    }
  };
  describe(spec);
  lines.push("  -h, --help", "      Show this help and exit");
  for (const section of sections) {
    lines.push("", `${section.title}:`);
    describe(section.spec);
  }
  return lines.join("\n") + "\n";
}

/** The spec as a Markdown table, for the README. */
export function markdownTable(spec: ConfigSpec): string {
  const rows = [
    "| flag | environment variable | type | default | description |",
    "| --- | --- | --- | --- | --- |",
  ];
  // A "|" inside a cell would end it early and shift every later column.
  const cell = (text: string) => text.replaceAll("|", "\\|");
  for (const s of Object.values(spec)) {
    rows.push(
      `| ${s.flag ? `\`--${s.flag}\`` : ""} | ${s.env ? `\`${s.env}\`` : ""} | ${s.type} | \`${
        cell(defaultText(s))
      }\` | ${cell(s.description)} |`,
    );
  }
  return rows.join("\n") + "\n";
}
