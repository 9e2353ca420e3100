// Kuvert's work queues: the core's and each module's, each a table with the queue columns
// (workers/queue.ts). kuvert_queue_depth counts their pending rows when Prometheus scrapes, and
// the console's status page shows them (it gets this list through the module context).
import { Gauge } from "prom-client";
import { boundDatabase, registry } from "./metrics.ts";
import { modules } from "./modules.ts";

/** The work queues by name: the core's first, then each module's in list order (switched on or not: their tables exist either way). */
export const queues: Readonly<Record<string, string>> = {
  inbound_events: "inbound_events",
  room_sync: "room_sync",
  mail: "mail_outbox",
  ...Object.assign({}, ...modules.map((m) => m.queues ?? {})),
};

new Gauge({
  name: "kuvert_queue_depth",
  help: `Work items waiting, by queue (${Object.keys(queues).join(", ")}).`,
  labelNames: ["queue"] as const,
  registers: [registry],
  async collect() {
    const database = boundDatabase();
    if (!database) return;
    for (const [label, table] of Object.entries(queues)) {
      const { rows } = await database.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE state = 'pending'`);
      this.set({ queue: label }, Number(rows[0]!.n));
    }
  },
});
