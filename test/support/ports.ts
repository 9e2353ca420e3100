import { readFileSync } from "node:fs";
import { createServer } from "node:net";

// A port the kernel hands out for listen(0) lies in its ephemeral range, the same range every
// outgoing connection takes its local port from: between freePort() and the service's own
// listen, one of the many connections the suites make can take it (EADDRINUSE). So the ports
// come from below that range, at random, each checked by binding it once.
function ephemeralStart(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 12_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const low = 10_000;
const high = ephemeralStart();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A port that was free a moment ago, outside the kernel's ephemeral range (the tests' services listen on their own, not on fixed ports). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port between ${low} and ${high} after 100 tries`);
}
