// A load balancer for the tests, as an operator puts one in front of several Kuvert processes:
// one address, requests handed round robin to the backends, and a backend that refuses the
// connection (a dead process) skipped for the next live one, as a proxy with health checks
// does. A request whose backend dies after it was sent is retried elsewhere only when its
// method is idempotent (PUT, as the homeserver's transactions are; GET); a POST then gets 502,
// since it may have taken effect. While no backend answers at all, requests wait (up to
// waitMs) instead of failing at once, as a proxy queues during a rolling restart.
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server } from "node:http";

export interface Balancer {
  port: number;
  /** Requests answered by a backend, per backend port. */
  readonly answered: Map<number, number>;
  stop(): Promise<void>;
}

const idempotent = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);

class BackendFailed extends Error {
  /** Whether the connection was made: then the request may have reached the backend. */
  readonly connected: boolean;

  constructor(connected: boolean, cause: unknown) {
    super("the backend failed", { cause });
    this.connected = connected;
  }
}

function forward(port: number, method: string, path: string, headers: IncomingHttpHeaders, body: Buffer): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    // A fresh connection each time (no keep-alive): a pooled socket to a killed process would fail a request that could have gone elsewhere.
    const req = request({ host: "127.0.0.1", port, method, path, headers: { ...headers, connection: "close" }, agent: false });
    let connected = false;
    req.on("socket", (socket) => socket.once("connect", () => (connected = true)));
    req.on("response", resolve);
    req.on("error", (err) => reject(new BackendFailed(connected, err)));
    req.end(body);
  });
}

export async function startBalancer(opts: { port: number; backends: number[]; waitMs?: number }): Promise<Balancer> {
  const waitMs = opts.waitMs ?? 20_000;
  const answered = new Map<number, number>();
  let next = 0;

  const handle = async (method: string, path: string, headers: IncomingHttpHeaders, body: Buffer): Promise<IncomingMessage | undefined> => {
    const deadline = Date.now() + waitMs;
    for (;;) {
      for (let tried = 0; tried < opts.backends.length; tried++) {
        const port = opts.backends[next++ % opts.backends.length]!;
        try {
          const res = await forward(port, method, path, headers, body);
          answered.set(port, (answered.get(port) ?? 0) + 1);
          return res;
        } catch (err) {
          if (!(err instanceof BackendFailed)) throw err;
          if (err.connected && !idempotent.has(method)) return undefined;
        }
      }
      if (Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers = { ...req.headers };
      delete headers.connection;
      handle(req.method ?? "GET", req.url ?? "/", headers, Buffer.concat(chunks))
        .then((upstream) => {
          if (!upstream) {
            res.writeHead(502, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_UNKNOWN", error: "no backend answered" }));
            return;
          }
          res.writeHead(upstream.statusCode ?? 502, upstream.headers);
          // A backend killed while it answers: the client sees the connection break, as behind a real proxy.
          upstream.on("error", () => res.destroy());
          upstream.pipe(res);
        })
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, "127.0.0.1", () => resolve());
  });
  return {
    port: opts.port,
    answered,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
