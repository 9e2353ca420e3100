// The benchmark's own HTTP client: node:http over one keep-alive connection pool, the body
// streamed. Both of the benchmark's clients use it, the bare client toward the homeserver
// (bench/baselines.ts) and the back office dropping documents into Kuvert (bench/drop.ts), so
// that both sides of the comparison pay for the same client code (replacing fetch and a web
// stream here moved the driver's CPU for scenario A from 3.9 to 3.3–3.8 s: within the spread).
import { Agent, request, type IncomingMessage } from "node:http";
import { pipeline } from "node:stream/promises";

const agent = new Agent({ keepAlive: true });

/** A request with node:http; the body streamed from `body` (or none). Answers status and parsed JSON. */
export async function httpRequest(url: string, method: string, headers: Record<string, string>, body?: () => NodeJS.ReadableStream | Buffer): Promise<{ status: number; json: Record<string, unknown> }> {
  const req = request(url, { method, headers, agent });
  const answer = new Promise<IncomingMessage>((resolve, reject) => {
    req.once("response", resolve);
    req.once("error", reject);
  });
  const content = body?.();
  if (content === undefined) req.end();
  else if (Buffer.isBuffer(content)) req.end(content);
  else await pipeline(content, req);
  const res = await answer;
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
  } catch {
    // not JSON
  }
  return { status: res.statusCode ?? 0, json };
}
