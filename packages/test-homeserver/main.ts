import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { type AppserviceRegistration, TestHomeserver } from "./index.ts";

const USAGE = "usage: node packages/test-homeserver/main.ts --registration path/to/registration.yaml [--registration …] [--port 8008] [--host 127.0.0.1] [--server-name kuvert.test] [--admin-token TOKEN] [--synapse 1.67|current]";

function readRegistration(path: string): AppserviceRegistration {
  const parsed: unknown = parseYaml(readFileSync(path, "utf8"));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${path}: not a YAML mapping`);
  }
  return parsed as AppserviceRegistration;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      registration: { type: "string", multiple: true },
      port: { type: "string" },
      host: { type: "string" },
      "server-name": { type: "string" },
      "admin-token": { type: "string" },
      synapse: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: not a port number: ${values.port}`);
  const synapse = values.synapse ?? "current";
  if (synapse !== "1.67" && synapse !== "current") throw new Error(`--synapse: 1.67 or current, not ${synapse}`);
  const hs = new TestHomeserver({
    synapse,
    registrations: (values.registration ?? []).map(readRegistration),
    port,
    host: values.host,
    serverName: values["server-name"],
    adminToken: values["admin-token"],
  });
  await hs.start();
  process.stdout.write(`${hs.url}\n`);
  const shutdown = (): void => {
    void hs.stop().then(() => process.exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
  process.exit(1);
});
