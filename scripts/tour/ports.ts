// The quick start's ports: chosen with an option or an environment variable (which always apply),
// else the default, or the next free one above it when the default is taken.
import { createServer } from "node:net";

export interface PortChoice {
  /** What listens there, in the words of the printed overview. */
  what: string;
  option: string;
  env: string;
  fallback: number;
}

export class PortError extends Error {
  override name = "PortError";
}

/** True when nothing listens on the port (on any address). */
export function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function parsePort(text: string, source: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new PortError(`${source} is ${JSON.stringify(text)}, which is not a port number (1 to 65535).`);
  return port;
}

/**
 * The port to use: the one chosen (an option beats the environment), which must be free, or the
 * default or the next free one above it. `taken` are the ports already given to another listener.
 */
export async function choosePort(choice: PortChoice, given: string | undefined, taken: number[], note: (line: string) => void): Promise<number> {
  const fromEnv = process.env[choice.env];
  const chosen = given !== undefined ? parsePort(given, choice.option) : fromEnv ? parsePort(fromEnv, choice.env) : undefined;
  if (chosen !== undefined) {
    if (taken.includes(chosen) || !(await isFree(chosen))) {
      throw new PortError(`Port ${chosen} (${choice.what}) is in use by another program; choose a free one with ${choice.option} <port> (or ${choice.env}=<port>), e.g. scripts/quickstart.sh ${choice.option} ${chosen + 1}.`);
    }
    return chosen;
  }
  for (let port = choice.fallback; port < choice.fallback + 50 && port <= 65535; port++) {
    if (taken.includes(port) || !(await isFree(port))) continue;
    if (port !== choice.fallback) note(`Port ${choice.fallback} (${choice.what}) is in use; using ${port} instead (choose one with ${choice.option} <port>).`);
    return port;
  }
  throw new PortError(`Ports ${choice.fallback} to ${choice.fallback + 49} (${choice.what}) are all in use; choose a free one with ${choice.option} <port> (or ${choice.env}=<port>).`);
}
