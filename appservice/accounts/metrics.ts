// The accounts' metric, in Kuvert's registry (appservice/metrics.ts).
import { countsGauge } from "../metrics.ts";

countsGauge({
  name: "kuvert_clerk_accounts",
  help: "Homeserver accounts Kuvert created for clerks, by state (requested, letter_ready, letter_issued, failed, deactivated).",
  labelNames: ["state"],
  sql: "SELECT state, count(*) AS n FROM clerk_accounts GROUP BY state",
});
