/**
 * Structured logging on stderr (stdout stays free for a command's summary), with `trace_id`
 * and `span_id` of the active span, secrets redacted, and optional OTLP export through the
 * logger provider that {@linkcode setupTelemetry} registers.
 *
 * Two formats ({@linkcode LogFormat}): `json`, one JSON object per line, for machines (log
 * shippers, `jq`); `pretty`, one short line a person scans on a terminal: time, level,
 * message, then the fields not already in the message. {@linkcode resolveLogFormat} picks
 * `pretty` when stderr is a terminal and `json` otherwise; `LOG_FORMAT=json` or
 * `LOG_FORMAT=pretty` forces one.
 *
 * Built on `@logtape/logtape`; the OTLP sink is a few lines of ours over the aligned
 * `@opentelemetry/sdk-logs` rather than `@logtape/otel`, which pins an older OpenTelemetry
 * line and would install a second copy of the SDK.
 *
 * A JSON line looks like:
 * ```json
 * {"ts":"2025-01-01T00:00:00.000Z","level":"info","logger":"pipeline.runtime","message":"Stage \"pay\" started","trace_id":"…","span_id":"…","stage":"pay"}
 * ```
 * and the same record, pretty:
 * ```text
 * 00:00:00.000 INFO  Stage "pay" started  trace_id=4bf92f3577b34da6a3ce929d0e0e4736
 * ```
 *
 * @example
 * ```ts ignore
 * import { configureLogging, getLogger } from "./log.ts";
 * await configureLogging({ level: "info", otlp: true });
 * const log = getLogger(["pipeline", "runtime"]);
 * log.info("Stage {stage} started", { stage: "pay", password: "x" }); // password: "[redacted]"
 * ```
 *
 * @module
 */

import {
  configure,
  getConfig,
  getLogger as logtapeGetLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";
import { type AnyValue, context, logs, SeverityNumber } from "@opentelemetry/api";
import { currentTraceIds } from "./telemetry/instrumentation.ts";
import { ConfigError } from "./errors.ts";

export type { Logger, LogLevel } from "@logtape/logtape";

/** The log levels, lowest first. */
export const LOG_LEVELS: readonly LogLevel[] = [
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
];

/**
 * How log lines are written: `json` (one object per line) or `pretty` (short lines for a
 * person at a terminal).
 */
export type LogFormat = "json" | "pretty";

/** The values `LOG_FORMAT` takes: a format, or `auto` to decide by whether stderr is a terminal. */
export const LOG_FORMATS: readonly (LogFormat | "auto")[] = ["auto", "json", "pretty"];

/** Property keys whose values never reach a log line or an exported log record. */
export const REDACTED_KEY = /password|passwd|secret|token|authorization|sasl|api[-_]?key/i;

/** What replaces a redacted value. */
export const REDACTED = "[redacted]";

/** Options for {@linkcode configureLogging}. */
export interface LoggingOptions {
  /**
   * The lowest level written.
   * @default {"info"}
   */
  readonly level?: LogLevel;
  /**
   * Also emit every record as an OTLP log record through the global logger provider, which
   * {@linkcode setupTelemetry} registers when a logs endpoint is configured and
   * `OTEL_LOGS_EXPORTER` is not `none` (without one, the records are dropped cheaply).
   * @default {false}
   */
  readonly otlp?: boolean;
  /**
   * The line format.
   * @default {resolveLogFormat(): `LOG_FORMAT` if set, else `pretty` on a terminal, `json` otherwise}
   */
  readonly format?: LogFormat;
  /**
   * Colour the level of pretty lines (ANSI escapes). Ignored for JSON.
   * @default {true when stderr is a terminal and `NO_COLOR` is not set}
   */
  readonly color?: boolean;
  /**
   * Where each line goes (without its newline). Tests capture lines here.
   * @default {a synchronous write of the line and "\n" to stderr}
   */
  readonly write?: (line: string) => void;
}

/** What {@linkcode resolveLogFormat} decides from. */
export interface LogFormatInputs {
  /** The value of `LOG_FORMAT`, if set: `json`, `pretty` or `auto`. */
  readonly logFormat?: string;
  /** Whether stderr is a terminal. */
  readonly stderrIsTerminal: boolean;
}

/**
 * The log format for a process: `LOG_FORMAT` when it names one, else `pretty` when stderr is a
 * terminal (a person reads it) and `json` when it is not (a pipe, a file, a container log).
 *
 * @throws {ConfigError} naming `LOG_FORMAT` when it holds another value.
 *
 * @example
 * ```ts
 * import { resolveLogFormat } from "./log.ts";
 * resolveLogFormat({ stderrIsTerminal: true }); // "pretty"
 * resolveLogFormat({ logFormat: "json", stderrIsTerminal: true }); // "json"
 * ```
 */
export function resolveLogFormat(inputs: LogFormatInputs): LogFormat {
  const value = inputs.logFormat?.trim().toLowerCase();
  if (value === undefined || value === "" || value === "auto") {
    return inputs.stderrIsTerminal ? "pretty" : "json";
  }
  if (value === "json" || value === "pretty") return value;
  throw new ConfigError(
    `Cannot use "${inputs.logFormat}" as LOG_FORMAT: expected one of ${LOG_FORMATS.join(", ")}`,
    { field: "LOG_FORMAT" },
  );
}

/** Reads a variable, or `undefined` without the permission to read it (tests run without). */
function envOrUndefined(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return undefined;
    throw error;
  }
}

function stderrIsTerminal(): boolean {
  return Deno.stderr.isTerminal();
}

/**
 * Parses a level name, e.g. from a `LOG_LEVEL` variable.
 *
 * @throws {ConfigError} naming `field` when `value` is not a level.
 */
export function parseLogLevel(value: string, field = "LOG_LEVEL"): LogLevel {
  const lower = value.trim().toLowerCase();
  const level = LOG_LEVELS.find((l) => l === (lower === "warn" ? "warning" : lower));
  if (level === undefined) {
    throw new ConfigError(
      `Cannot use "${value}" as ${field}: expected one of ${LOG_LEVELS.join(", ")}`,
      { field },
    );
  }
  return level;
}

/**
 * Configures logging for the whole process (or worker); call it again to change it.
 *
 * @example
 * ```ts
 * import { configureLogging, getLogger } from "./log.ts";
 * const lines: string[] = [];
 * await configureLogging({ level: "debug", write: (line) => lines.push(line) });
 * getLogger("demo").debug("Hello {who}", { who: "world" });
 * console.log(JSON.parse(lines[0]).message); // Hello "world"
 * ```
 */
export async function configureLogging(options: LoggingOptions = {}): Promise<void> {
  const {
    level = "info",
    otlp = false,
    format = resolveLogFormat({
      logFormat: envOrUndefined("LOG_FORMAT"),
      stderrIsTerminal: stderrIsTerminal(),
    }),
    color = stderrIsTerminal() && envOrUndefined("NO_COLOR") === undefined,
    write = writeStderr,
  } = options;
  const sinks: Record<string, Sink> = {
    stderr: format === "json" ? jsonLinesSink(write) : prettyLinesSink(write, color),
  };
  if (otlp) sinks.otlp = otlpSink();
  await configure({
    reset: true,
    sinks,
    loggers: [
      { category: [], sinks: Object.keys(sinks), lowestLevel: level },
      { category: ["logtape", "meta"], sinks: ["stderr"], lowestLevel: "warning" },
      // The SDK's own warnings (a failed export) must not be exported through the SDK again.
      {
        category: ["pipeline", "telemetry", "sdk"],
        sinks: ["stderr"],
        parentSinks: "override",
        lowestLevel: level,
      },
    ],
  });
}

/** Removes the logging configuration: loggers write nowhere until configured again. */
export async function resetLogging(): Promise<void> {
  await reset();
}

/**
 * A logger for `category` (`"pipeline"` or `["pipeline", "runtime"]`); its records go where
 * {@linkcode configureLogging} said. Properties are structured data, interpolated in the
 * message by `{name}`.
 */
export function getLogger(category: string | readonly string[]): Logger {
  return logtapeGetLogger(category);
}

/** A copy of `value` with every secret-looking key's value replaced by {@linkcode REDACTED}. */
export function redact(value: unknown, depth = 0): unknown {
  if (value instanceof Error) {
    return { type: value.constructor.name, message: value.message, stack: value.stack };
  }
  if (typeof value === "bigint") return value.toString();
  if (value === null || typeof value !== "object") return value;
  if (depth >= 8) return "[too deep]";
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = REDACTED_KEY.test(k) ? REDACTED : redact(v, depth + 1);
  }
  return out;
}

const RESERVED = new Set(["ts", "level", "logger", "message", "trace_id", "span_id"]);

function render(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The message with placeholders filled from the redacted properties. */
function messageOf(record: LogRecord, props: Record<string, unknown>): string {
  if (typeof record.rawMessage === "string") {
    return record.rawMessage.replace(
      /\{([^{}]+)\}/g,
      (whole, key: string) => key in props ? render(props[key]) : whole,
    );
  }
  return record.message.map((part, i) => i % 2 === 0 ? String(part) : render(redact(part)))
    .join("");
}

/**
 * The JSON line for a log record: `ts`, `level`, `logger`, `message`, `trace_id` and
 * `span_id` when a span is active, then the redacted properties (a property named like one of
 * those fields is left out).
 */
export function formatLogLine(record: LogRecord): string {
  const props = redact(record.properties) as Record<string, unknown>;
  const line: Record<string, unknown> = {
    ts: new Date(record.timestamp).toISOString(),
    level: record.level,
    logger: record.category.join("."),
    message: messageOf(record, props),
    ...currentTraceIds(),
  };
  for (const [k, v] of Object.entries(props)) {
    if (!RESERVED.has(k)) line[k] = v;
  }
  // redact() made a finite tree of JSON-able values, so this cannot throw.
  return JSON.stringify(line);
}

function jsonLinesSink(write: (line: string) => void): Sink {
  return function jsonLines(record: LogRecord): void {
    write(formatLogLine(record));
  };
}

/** Level labels of pretty lines, all five characters wide so messages line up. */
const LEVEL_LABEL: Record<LogLevel, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO ",
  warning: "WARN ",
  error: "ERROR",
  fatal: "FATAL",
};

/** ANSI colours of the level labels: grey, grey, green, yellow, red, bold red. */
const LEVEL_COLOR: Record<LogLevel, string> = {
  trace: "\x1b[90m",
  debug: "\x1b[90m",
  info: "\x1b[32m",
  warning: "\x1b[33m",
  error: "\x1b[31m",
  fatal: "\x1b[1;31m",
};
const RESET = "\x1b[0m";
const DIM = "\x1b[2m";

/** A field value as `key=value` shows it: bare when it is one plain word, JSON otherwise. */
function fieldValue(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (isErrorShape(value)) return JSON.stringify(`${value.type}: ${value.message}`);
  return render(value);
}

function isErrorShape(value: unknown): value is { type: string; message: string } {
  return value !== null && typeof value === "object" && "type" in value && "message" in value &&
    "stack" in value;
}

/** The property keys a message template interpolates: shown there, not repeated as fields. */
function placeholders(record: LogRecord): Set<string> {
  if (typeof record.rawMessage !== "string") return new Set();
  return new Set([...record.rawMessage.matchAll(/\{([^{}]+)\}/g)].map((m) => m[1]));
}

/**
 * The short line a person reads on a terminal for a log record: local time of day, the level,
 * the message, then `key=value` for each redacted property the message does not already show,
 * and `trace_id` last when a span is active. With `color`, the level is coloured and the
 * fields dimmed.
 *
 * @example
 * ```ts ignore
 * formatPrettyLine(record, false); // 14:03:07.412 WARN  Retrying "o-17"  tier=1 error="GatewayError: 503"
 * ```
 */
export function formatPrettyLine(record: LogRecord, color = false): string {
  const props = redact(record.properties) as Record<string, unknown>;
  const shown = placeholders(record);
  const fields: string[] = [];
  for (const [k, v] of Object.entries(props)) {
    if (!shown.has(k) && !RESERVED.has(k) && v !== undefined) fields.push(`${k}=${fieldValue(v)}`);
  }
  const { trace_id } = currentTraceIds();
  if (trace_id !== undefined) fields.push(`trace_id=${trace_id}`);
  const time = new Date(record.timestamp);
  const clock = [time.getHours(), time.getMinutes(), time.getSeconds()]
    .map((n) => String(n).padStart(2, "0")).join(":") +
    `.${String(time.getMilliseconds()).padStart(3, "0")}`;
  const level = LEVEL_LABEL[record.level];
  const message = messageOf(record, props);
  const rest = fields.length === 0 ? "" : `  ${fields.join(" ")}`;
  return color
    ? `${DIM}${clock}${RESET} ${
      LEVEL_COLOR[record.level]
    }${level}${RESET} ${message}${DIM}${rest}${RESET}`
    : `${clock} ${level} ${message}${rest}`;
}

function prettyLinesSink(write: (line: string) => void, color: boolean): Sink {
  return function prettyLines(record: LogRecord): void {
    write(formatPrettyLine(record, color));
  };
}

const stderrEncoder = new TextEncoder();

function writeStderr(line: string): void {
  const bytes = stderrEncoder.encode(line + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}

const SEVERITY: Record<LogLevel, SeverityNumber> = {
  trace: SeverityNumber.TRACE,
  debug: SeverityNumber.DEBUG,
  info: SeverityNumber.INFO,
  warning: SeverityNumber.WARN,
  error: SeverityNumber.ERROR,
  fatal: SeverityNumber.FATAL,
};

function toAnyValue(value: unknown): AnyValue {
  if (value === null || value === undefined) return null;
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
    return value;
  }
  return render(value);
}

function otlpSink(): Sink {
  return function otlpLogs(record: LogRecord): void {
    const props = redact(record.properties) as Record<string, unknown>;
    const attributes: Record<string, AnyValue> = { "log.logger": record.category.join(".") };
    for (const [k, v] of Object.entries(props)) attributes[k] = toAnyValue(v);
    logs.getLogger("pipeline").emit({
      timestamp: record.timestamp,
      severityNumber: SEVERITY[record.level],
      severityText: record.level.toUpperCase(),
      body: messageOf(record, props),
      attributes,
      context: context.active(),
    });
  };
}

/**
 * Whether {@linkcode configureLogging} (or any logtape configuration) is in force. Library
 * code that must never lose an error falls back to the console when it is not.
 */
export function isLoggingConfigured(): boolean {
  return getConfig() !== null;
}
