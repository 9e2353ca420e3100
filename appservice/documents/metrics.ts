// The documents' metric, in Kuvert's registry (appservice/metrics.ts), read when Prometheus scrapes.
import { countsGauge } from "../metrics.ts";

export const documentCounts = countsGauge({
  name: "kuvert_documents",
  help: "Documents Kuvert knows, by direction and state (received, scanning, held, rejected, delivered, checked, removed).",
  labelNames: ["direction", "state"] as const,
  sql: "SELECT direction, state, count(*) AS n FROM documents GROUP BY direction, state",
});
