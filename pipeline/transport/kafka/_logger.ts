/**
 * Routes kafkajs's log lines through a small adapter: a level filter, secret redaction, and one
 * {@linkcode KafkaLogger} hook.
 *
 * @module
 */
import kafkajs from "kafkajs";
import type { logCreator, LogEntry } from "kafkajs";

const { logLevel: Level } = kafkajs;

/** The levels kafkajs logs at, most severe first. */
export type KafkaLogLevel = "error" | "warn" | "info" | "debug";

/** One kafkajs log line, after redaction. */
export interface KafkaLogRecord {
  /** The level kafkajs logged at. */
  readonly level: KafkaLogLevel;
  /** The kafkajs component, e.g. `Consumer` or `BrokerPool`. */
  readonly namespace: string;
  /** The message. */
  readonly message: string;
  /** The structured fields kafkajs attached, with secrets replaced by `"[redacted]"`. */
  readonly fields: Readonly<Record<string, unknown>>;
}

/** Receives kafkajs log lines at or above the configured level. */
export type KafkaLogger = (record: KafkaLogRecord) => void;

const LEVELS: Record<KafkaLogLevel, number> = {
  error: Level.ERROR,
  warn: Level.WARN,
  info: Level.INFO,
  debug: Level.DEBUG,
};

/** The kafkajs numeric level for one of ours. */
export function kafkaLevel(level: KafkaLogLevel): number {
  return LEVELS[level];
}

function levelName(level: number): KafkaLogLevel {
  if (level <= Level.ERROR) return "error";
  if (level <= Level.WARN) return "warn";
  if (level <= Level.INFO) return "info";
  return "debug";
}

/** Field names whose values are never passed on, whatever they hold. */
const SECRET_FIELDS = new Set(["password", "sasl", "ssl", "secret", "token", "accesskey"]);

function redact(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === "string") {
    return secrets.reduce((text, secret) => text.split(secret).join("[redacted]"), value);
  }
  if (value === null || typeof value !== "object" || depth > 4) return value;
  if (Array.isArray(value)) return value.map((item) => redact(item, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = SECRET_FIELDS.has(key.toLowerCase().replace(/[^a-z]/g, ""))
      ? "[redacted]"
      : redact(item, secrets, depth + 1);
  }
  return out;
}

/** Writes WARN and ERROR lines to stderr as `kafkajs <namespace>: <message> {fields}`. */
export function defaultKafkaLogger(record: KafkaLogRecord): void {
  const fields = Object.keys(record.fields).length ? ` ${JSON.stringify(record.fields)}` : "";
  const line = `kafkajs ${record.namespace}: ${record.message}${fields}`;
  if (record.level === "error") console.error(line);
  else console.warn(line);
}

/**
 * A kafkajs `logCreator` that passes each line to `logger`, with every occurrence of a secret
 * (the SASL password) and every secret-named field replaced.
 */
export function createLogCreator(logger: KafkaLogger, secrets: readonly string[]): logCreator {
  const nonEmpty = secrets.filter((secret) => secret.length > 0);
  return function kafkaLogCreator() {
    return function kafkaLog({ namespace, level, log }: LogEntry) {
      const { message, timestamp: _timestamp, logger: _name, ...fields } = log;
      logger({
        level: levelName(level),
        namespace,
        message: redact(String(message), nonEmpty) as string,
        fields: redact(fields, nonEmpty) as Record<string, unknown>,
      });
    };
  };
}
