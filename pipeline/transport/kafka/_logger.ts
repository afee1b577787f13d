/**
 * Routes kafkajs's log lines through a small adapter: a level filter, secret redaction, and one
 * {@linkcode KafkaLogger} hook.
 *
 * @module
 */
import kafkajs from "kafkajs";
import type { logCreator, LogEntry } from "kafkajs";
import { getLogger, isLoggingConfigured } from "../../log.ts";

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

/**
 * Errors kafkajs logs while a group rebalances or a fresh broker warms up, and then retries
 * itself: routine, so they are logged as info. kafkajs gives them no error class here, only the
 * broker's text, hence the match on it.
 */
const ROUTINE =
  /rebalancing|coordinator is loading|not the correct coordinator|coordinator is not available/i;

/**
 * Writes kafkajs's lines as JSON log lines (category `kafkajs.<namespace>`), through the
 * framework's logger, so they carry the same shape, redaction and trace ids as ours.
 */
export function defaultKafkaLogger(record: KafkaLogRecord): void {
  const text = `${record.message} ${String(record.fields.error ?? "")}`;
  const level = record.level === "error" && ROUTINE.test(text) ? "info" : record.level;
  if (!isLoggingConfigured()) {
    // Nobody configured logging (a library user, a test): warnings and errors still show.
    if (level !== "error" && level !== "warn") return;
    const fields = Object.keys(record.fields).length ? ` ${JSON.stringify(record.fields)}` : "";
    console.error(`kafkajs ${record.namespace}: ${record.message}${fields}`);
    return;
  }
  const logger = getLogger(["kafkajs", record.namespace]);
  const properties = { ...record.fields };
  if (level === "error") logger.error(record.message, properties);
  else if (level === "warn") logger.warn(record.message, properties);
  else if (level === "info") logger.info(record.message, properties);
  else logger.debug(record.message, properties);
}

/**
 * A kafkajs `logCreator` that passes each line to `logger`, with every occurrence of a secret
 * (SASL password, key password, OAuth client secret and tokens) and every secret-named field
 * replaced. `secrets` is read at each line, so secrets added later (a new token) are redacted
 * too.
 */
export function createLogCreator(logger: KafkaLogger, secrets: readonly string[]): logCreator {
  return function kafkaLogCreator() {
    return function kafkaLog({ namespace, level, log }: LogEntry) {
      const nonEmpty = secrets.filter((secret) => secret.length > 0);
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
