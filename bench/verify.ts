// How fast Kuvert answers Prosody's membership checks (POST /verify/user_in_room): every join of
// a room member to a Jitsi conference waits for one. Each answer asks the homeserver about the
// OpenID token, the member's m.room.member state and the room's power levels.
//
//   node bench/verify.ts [--requests=2000] [--concurrency=20]
//
// Runs against the test homeserver (in this process) and a Kuvert in this process, on the test
// suite's stack; prints latency percentiles and throughput. Figures are the machine's, not targets.
import { performance } from "node:perf_hooks";
import { startStack } from "../test/support/harness.ts";
import { ensurePostgres } from "./stack.ts";

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const requests = arg("requests", 2000);
const concurrency = arg("concurrency", 20);

const cluster = await ensurePostgres();
const stack = await startStack({
  name: "bench-verify",
  configure: (raw) => {
    raw.calls = { jitsiDomain: "meet.bench.test" };
    // All requests come from one address, as Prosody's do; the default per-address limit (1200 a minute) would cut the run short.
    raw.publicApi = { ...(raw.publicApi as object), rateLimitPerMinute: 1_000_000 };
  },
});
try {
  const clerk = await stack.user("clerk");
  await clerk.start();
  await stack.api("POST", "/api/v1/organisations", { id: "bench", name: "Bench", clerks: [{ matrixId: clerk.userId }] });
  const roomId = await stack.roomOf("bench");
  await clerk.waitForInvite(roomId);
  await clerk.join(roomId);
  const { access_token: token } = await clerk.client.getOpenIdToken();
  const body = JSON.stringify({ token, room_id: roomId, matrix_server_name: stack.config.homeserver.domain });
  const one = async () => {
    const t0 = performance.now();
    const res = await fetch(`${stack.publicUrl}/verify/user_in_room`, { method: "POST", headers: { "content-type": "application/json" }, body });
    const json = (await res.json()) as { results?: { room_membership?: boolean } };
    if (json.results?.room_membership !== true) throw new Error(`unexpected answer: ${JSON.stringify(json)}`);
    return performance.now() - t0;
  };
  for (let i = 0; i < 50; i++) await one(); // warm-up
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        next++;
        latencies.push(await one());
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(1);
  console.log(`| requests | concurrency | per second | p50 ms | p95 ms | p99 ms | max ms |`);
  console.log(`| --- | --- | --- | --- | --- | --- | --- |`);
  console.log(`| ${requests} | ${concurrency} | ${(requests / seconds).toFixed(0)} | ${p(0.5)} | ${p(0.95)} | ${p(0.99)} | ${latencies.at(-1)!.toFixed(1)} |`);
  clerk.stop();
} finally {
  await stack.stop();
  cluster?.stop();
}
