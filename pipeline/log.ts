/**
 * Structured logging: one JSON object per line on stderr (stdout stays free for a command's
 * summary), with `trace_id` and `span_id` of the active span, secrets redacted, and optional
 * OTLP export through the logger provider that {@linkcode setupTelemetry} registers.
 *
 * Built on `@logtape/logtape`; the OTLP sink is a few lines of ours over the aligned
 * `@opentelemetry/sdk-logs` rather than `@logtape/otel`, which pins an older OpenTelemetry
 * line and would install a second copy of the SDK.
 *
 * A line looks like:
 * ```json
 * {"ts":"2025-01-01T00:00:00.000Z","level":"info","logger":"pipeline.runtime","message":"Stage \"pay\" started","trace_id":"…","span_id":"…","stage":"pay"}
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
   * Where each JSON line goes (without its newline). Tests capture lines here.
   * @default {a synchronous write of the line and "\n" to stderr}
   */
  readonly write?: (line: string) => void;
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
  const { level = "info", otlp = false, write = writeStderr } = options;
  const sinks: Record<string, Sink> = { json: jsonLinesSink(write) };
  if (otlp) sinks.otlp = otlpSink();
  await configure({
    reset: true,
    sinks,
    loggers: [
      { category: [], sinks: Object.keys(sinks), lowestLevel: level },
      { category: ["logtape", "meta"], sinks: ["json"], lowestLevel: "warning" },
      // The SDK's own warnings (a failed export) must not be exported through the SDK again.
      {
        category: ["pipeline", "telemetry", "sdk"],
        sinks: ["json"],
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
