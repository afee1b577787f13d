/**
 * What the local broker's SASL_SSL listener needs, made with the JDK's `keytool` (Java is
 * there anyway): a CA, a broker certificate it signs (for `localhost` and `127.0.0.1`) in a
 * PKCS#12 keystore, the CA as PEM for clients, and a SCRAM user with a random password. Kept in
 * `<dataDir>/secure/` (under `.local/`, git-ignored) and made once per data folder: the SCRAM
 * user is created when the storage is formatted, so the two must stay together.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { BrokerStartError } from "./errors.ts";

/** The SCRAM mechanisms the secure listener accepts (PLAIN too, with the same user). */
export const SCRAM_MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"] as const;

/** The SCRAM user the local broker creates. */
export const LOCAL_SASL_USERNAME = "orders-pipeline";

/** The secure listener's material, as saved in `<dataDir>/secure/secure.json`. */
export interface SecureMaterial {
  /** The SASL username. */
  readonly username: string;
  /** The SASL password (random, made with the data folder). */
  readonly password: string;
  /** The CA certificate clients trust, PEM (`KAFKA_SSL_CA_LOCATION`). */
  readonly caFile: string;
  /** The broker's PKCS#12 keystore (its key and the CA-signed certificate). */
  readonly keystoreFile: string;
  /** The keystore's password (also its key's). */
  readonly keystorePassword: string;
}

/** The folder of the secure material inside a data folder. */
export function secureDir(dataDir: string): string {
  return join(dataDir, "secure");
}

function materialFile(dataDir: string): string {
  return join(secureDir(dataDir), "secure.json");
}

/** The saved material of a data folder, or `undefined` when it has none. */
export async function readSecureMaterial(dataDir: string): Promise<SecureMaterial | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(materialFile(dataDir))) as SecureMaterial;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** A random secret: 24 bytes, base64url. */
function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

/** `keytool` beside the `java` that runs the broker (a bare `java` means `keytool` on PATH). */
export function keytoolBeside(java: string): string {
  return java.includes("/") ? join(dirname(java), "keytool") : "keytool";
}

/**
 * Makes the CA, the broker keystore, the client CA file and the SCRAM credentials in
 * `<dataDir>/secure/`, replacing what was there.
 *
 * @throws {BrokerStartError} with keytool's output when a keytool step fails
 */
export async function createSecureMaterial(
  dataDir: string,
  keytool: string,
): Promise<SecureMaterial> {
  const dir = secureDir(dataDir);
  await Deno.remove(dir, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const storePassword = randomSecret();
  const caStore = join(dir, "ca.p12");
  const caFile = join(dir, "ca.pem");
  const keystoreFile = join(dir, "broker.p12");
  const csr = join(dir, "broker.csr");
  const signed = join(dir, "broker.pem");
  const san = "SAN=dns:localhost,ip:127.0.0.1";
  const run = async (step: string, args: string[]) => {
    const output = await new Deno.Command(keytool, {
      args: [...args, "-storepass", storePassword],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      throw new BrokerStartError(
        `Cannot make the local broker's TLS material: keytool failed to ${step} ` +
          `(exit code ${output.code})`,
        text.split(storePassword).join("[redacted]"),
      );
    }
  };
  const store = (file: string) => ["-keystore", file, "-storetype", "PKCS12"];
  const rsa = ["-keyalg", "RSA", "-keysize", "2048", "-validity", "3650"];
  await run("make the CA", [
    "-genkeypair",
    "-alias",
    "ca",
    ...rsa,
    "-dname",
    "CN=orders-stream local CA",
    "-ext",
    "bc:c",
    ...store(caStore),
  ]);
  await run("export the CA", [
    "-exportcert",
    "-alias",
    "ca",
    "-rfc",
    "-file",
    caFile,
    ...store(caStore),
  ]);
  await run("make the broker key", [
    "-genkeypair",
    "-alias",
    "broker",
    ...rsa,
    "-dname",
    "CN=localhost",
    "-ext",
    san,
    ...store(keystoreFile),
  ]);
  await run("make the certificate request", [
    "-certreq",
    "-alias",
    "broker",
    "-file",
    csr,
    ...store(keystoreFile),
  ]);
  await run("sign the broker certificate", [
    "-gencert",
    "-alias",
    "ca",
    "-infile",
    csr,
    "-outfile",
    signed,
    "-rfc",
    "-validity",
    "3650",
    "-ext",
    san,
    "-ext",
    "KU=digitalSignature,keyEncipherment",
    "-ext",
    "EKU=serverAuth",
    ...store(caStore),
  ]);
  await run("import the CA", [
    "-importcert",
    "-alias",
    "ca",
    "-file",
    caFile,
    "-noprompt",
    ...store(keystoreFile),
  ]);
  await run("import the broker certificate", [
    "-importcert",
    "-alias",
    "broker",
    "-file",
    signed,
    "-noprompt",
    ...store(keystoreFile),
  ]);
  const material: SecureMaterial = {
    username: LOCAL_SASL_USERNAME,
    password: randomSecret(),
    caFile,
    keystoreFile,
    keystorePassword: storePassword,
  };
  await Deno.writeTextFile(materialFile(dataDir), JSON.stringify(material, null, 2) + "\n", {
    mode: 0o600,
  });
  return material;
}

/** The storage tool arguments that create the SCRAM user at format time. */
export function addScramArgs(material: SecureMaterial): string[] {
  return SCRAM_MECHANISMS.flatMap((mechanism) => [
    "--add-scram",
    `${mechanism}=[name=${material.username},password=${material.password}]`,
  ]);
}

/**
 * The variables a client needs for the secure listener at `brokers`, in the order they are
 * printed: `KAFKA_BROKERS`, `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_CA_LOCATION`.
 */
export function secureClientEnv(
  brokers: string,
  material: SecureMaterial,
): Record<string, string> {
  return {
    KAFKA_BROKERS: brokers,
    KAFKA_SECURITY_PROTOCOL: "SASL_SSL",
    KAFKA_SASL_MECHANISM: "SCRAM-SHA-256",
    KAFKA_SASL_USERNAME: material.username,
    KAFKA_SASL_PASSWORD: material.password,
    KAFKA_SSL_CA_LOCATION: material.caFile,
  };
}
