/**
 * Errors of the local Kafka broker launcher. They extend the framework's classes so callers
 * decide by `instanceof` (or `retriable`), never by message.
 *
 * @module
 */

import { BrokerUnavailableError, ConfigError, PipelineError } from "../../pipeline/errors.ts";

/** A program the local broker needs (`java` or `mvn`) is not on the `PATH`. */
export class MissingToolError extends ConfigError {
  /** The missing program. */
  readonly tool: string;

  /** Creates the error for the missing `tool`, with a hint on how to get it. */
  constructor(tool: string, hint: string, options: { cause?: unknown } = {}) {
    super(
      `Cannot run the local Kafka broker as "${tool}" is not on the PATH: ${hint}`,
      { field: tool, cause: options.cause },
    );
    this.tool = tool;
  }
}

/** Maven could not gather the broker's jars. `output` holds the tail of Maven's output. */
export class BrokerInstallError extends PipelineError {
  /** The last lines Maven printed. */
  readonly output: string;

  /** Creates the error with Maven's last lines appended to the message. */
  constructor(message: string, output: string, options: { cause?: unknown } = {}) {
    super(output ? `${message}:\n${output}` : message, { cause: options.cause });
    this.output = output;
  }
}

/** Options of {@linkcode BrokerPortInUseError}. */
export interface BrokerPortInUseErrorOptions {
  /** The port that is taken. */
  readonly port: number;
  /** The option naming the port (`port` or `controllerPort`). */
  readonly field: string;
  /** Whether a Kafka broker answers on the port (rather than some other program). */
  readonly runningBroker: boolean;
}

/** A port the local broker needs is already taken, by a running broker or another program. */
export class BrokerPortInUseError extends ConfigError {
  /** The port that is taken. */
  readonly port: number;
  /** Whether a Kafka broker answers on the port. */
  readonly runningBroker: boolean;

  /** Creates the error; the message says what holds the port. */
  constructor(options: BrokerPortInUseErrorOptions) {
    const { port, field, runningBroker } = options;
    super(
      runningBroker
        ? `Cannot start the local Kafka broker on '${field}' ${port}: a Kafka broker already ` +
          `answers on 127.0.0.1:${port} (use it, stop it, or pick another port)`
        : `Cannot start the local Kafka broker on '${field}' ${port}: another program listens ` +
          `on 127.0.0.1:${port}`,
      { field },
    );
    this.port = port;
    this.runningBroker = runningBroker;
  }
}

/**
 * The broker process exited before it was ready, or did not become ready in time.
 * `logTail` holds the last lines of its log and console output.
 */
export class BrokerStartError extends BrokerUnavailableError {
  /** The last lines of the broker's log file and console output. */
  readonly logTail: string;

  /** Creates the error with the log tail appended to the message. */
  constructor(message: string, logTail: string, options: { cause?: unknown } = {}) {
    super(logTail ? `${message}:\n${logTail}` : message, { cause: options.cause });
    this.logTail = logTail;
  }
}

/** Another local broker process still runs on the same data folder. */
export class BrokerDataDirInUseError extends ConfigError {
  /** The process id of the broker that holds the folder. */
  readonly pid: number;

  /** Creates the error naming the folder, the holding process and its address. */
  constructor(dataDir: string, pid: number, brokers: string) {
    super(
      `Cannot start the local Kafka broker on data folder "${dataDir}": broker process ${pid} ` +
        `(${brokers}) still uses it (stop it, or pick another data folder)`,
      { field: "dataDir" },
    );
    this.pid = pid;
  }
}
