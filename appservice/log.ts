// Structured JSON logs. People appear only as pseudonyms (a keyed hash), so logs can be
// kept and shipped without personal data; tokens never appear.
import { createHmac, randomBytes } from "node:crypto";
import { pino, type Logger } from "pino";
import { version } from "./version.ts";

export type { Logger };

let pseudonymKey: Buffer = randomBytes(32);
// Every line names the service and its version, so a log read later says which Kuvert wrote it.
let root: Logger = pino({ level: process.env.KUVERT_LOG_LEVEL ?? "info", base: { service: "kuvert", version } });

/** A stable, keyed pseudonym of a Matrix ID or e-mail address. */
export function pseudonym(value: string): string {
  return `p:${createHmac("sha256", pseudonymKey).update(value.toLowerCase()).digest("base64url").slice(0, 16)}`;
}

const matrixIdPattern = /@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::\d+)?/gi;
const emailPattern = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
const secretQueryPattern = /((?:access_token|token|password)=)[^&\s"]+/gi;
const bearerPattern = /(Bearer\s+)[A-Za-z0-9._~+/=-]+/g;

/** Replaces Matrix IDs and e-mail addresses with pseudonyms and strips tokens from free text. */
export function scrub(text: string): string {
  return text
    .replace(secretQueryPattern, "$1<redacted>")
    .replace(bearerPattern, "$1<redacted>")
    .replace(matrixIdPattern, (m) => pseudonym(m))
    .replace(emailPattern, (m) => pseudonym(m));
}

export function configureLogging(opts: { level: string; pseudonymKey?: string | undefined; destination?: NodeJS.WritableStream }): void {
  if (opts.pseudonymKey) pseudonymKey = Buffer.from(opts.pseudonymKey, "utf8");
  root = pino(
    {
      level: opts.level,
      base: { service: "kuvert", version },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        // Free text gets the same treatment as fields, so a message never carries a person's ID.
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === "string" ? scrub(a) : a)) as Parameters<typeof method>);
        },
      },
      // Not every thrown thing is an Error with a message (the crypto's wasm errors are not).
      serializers: { err: (err: Error) => ({ type: err?.name ?? typeof err, message: scrub(String(err?.message ?? err)), stack: err?.stack ? scrub(err.stack) : undefined }) },
    },
    opts.destination ?? process.stdout,
  );
}

/** One named logger per module; follows configureLogging() made after the module loaded. */
export function logger(module: string): Logger {
  let made: { root: Logger; child: Logger } | undefined;
  return new Proxy({} as Logger, {
    get(_target, prop) {
      if (made?.root !== root) made = { root, child: root.child({ module }) };
      const child = made.child;
      const value = Reflect.get(child, prop, child) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(child) : value;
    },
  });
}
