// `kuvert encryption status` and `kuvert encryption enable <org>`: through a running Kuvert's API,
// which owns the bot's device and speaks to the homeserver.
import type { Command } from "commander";
import type { CliContext } from "../module.ts";
import type { VerificationView } from "./verifications.ts";

async function call(access: { url: string; token: string }, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${access.url.replace(/\/$/, "")}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${access.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const answer = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) throw new Error(`Kuvert answered ${res.status} ${String(answer["errcode"] ?? "")}: ${String(answer["error"] ?? "no reason given")}`);
  return answer;
}

export function e2eeCommands(program: Command, ctx: CliContext): void {
  const encryption = program.command("encryption").description("end-to-end encrypted organisation rooms, through a running Kuvert's API (needs e2ee.secret)");
  encryption
    .command("status")
    .description("the bot's device: its ID, whether a Kuvert process has it open, and whether new rooms are encrypted")
    .option("--url <url>", "Kuvert's public base URL (default: publicApi.baseUrl)")
    .option("--token <token>", "an API token with the admin scope (default: $KUVERT_TOKEN)")
    .action(async function (this: Command, opts: { url?: string; token?: string }) {
      const status = await call(ctx.apiAccess(this, opts, "admin"), "GET", "/encryption");
      console.log(`device ${String(status["deviceId"])} of ${String(status["userId"])}: ${status["ready"] ? "ready" : "not ready"} (${String(status["detail"])})`);
      console.log(`session key (Ed25519 fingerprint): ${String(status["ed25519"] ?? "not published yet")}`);
      console.log(`cross-signed: ${status["crossSigned"] ? "yes" : "no"}`);
      console.log(`new organisation rooms: ${status["newRoomsEncrypted"] ? "encrypted" : "not encrypted"} (organisations.encryption)`);
      if (!status["ready"]) process.exitCode = 2;
    });
  encryption
    .command("verifications")
    .description("verifications of the bot's device that staff started in Element (Verify session), with the emoji to compare")
    .option("--url <url>", "Kuvert's public base URL (default: publicApi.baseUrl)")
    .option("--token <token>", "an API token with the admin scope (default: $KUVERT_TOKEN)")
    .action(async function (this: Command, opts: { url?: string; token?: string }) {
      const answer = await call(ctx.apiAccess(this, opts, "admin"), "GET", "/encryption/verifications");
      const list = answer["verifications"] as VerificationView[];
      if (list.length === 0) return console.log("No verification in the last day. Staff start one in Element: the bot's profile → Sessions → KUVERT → Verify.");
      for (const v of list) {
        console.log(`${v.flowId}  ${v.userId} (${v.deviceId ?? "?"})  ${v.state}${v.decision ? `, decided: ${v.decision} by ${v.decidedBy}` : ""}${v.reason ? ` – ${v.reason}` : ""}`);
        if (v.emoji) console.log(`    ${v.emoji.map((e) => `${e.symbol} ${e.description}`).join("   ")}`);
      }
      if (list.some((v) => v.state === "comparing" && !v.decision)) console.log("Compare the emoji with Element's, then: kuvert encryption compare <flow-id> --match (or --mismatch)");
    });
  encryption
    .command("compare <flow-id>")
    .description("say whether the emoji of a verification are the same as Element shows: --match verifies the staff member's device and Element then shows the bot's session as verified; --mismatch cancels")
    .option("--match", "the emoji are the same")
    .option("--mismatch", "the emoji differ")
    .option("--url <url>", "Kuvert's public base URL (default: publicApi.baseUrl)")
    .option("--token <token>", "an API token with the admin scope (default: $KUVERT_TOKEN)")
    .action(async function (this: Command, flowId: string, opts: { match?: boolean; mismatch?: boolean; url?: string; token?: string }) {
      if (opts.match === opts.mismatch) throw new Error("Say either --match or --mismatch.");
      const answer = (await call(ctx.apiAccess(this, opts, "admin"), "POST", `/encryption/verifications/${encodeURIComponent(flowId)}`, { match: opts.match === true })) as unknown as VerificationView;
      console.log(opts.match ? `Confirmed: ${answer.userId}'s device and the bot's device verify each other once Element confirms too.` : `Cancelled: the verification with ${answer.userId} ends without trust.`);
    });
  encryption
    .command("enable <org-id>")
    .description("switch an organisation's room to end-to-end encryption; one way: a room cannot be unencrypted again")
    .option("--url <url>", "Kuvert's public base URL (default: publicApi.baseUrl)")
    .option("--token <token>", "an API token with the admin scope (default: $KUVERT_TOKEN)")
    .action(async function (this: Command, organisationId: string, opts: { url?: string; token?: string }) {
      const answer = await call(ctx.apiAccess(this, opts, "admin"), "POST", `/organisations/${encodeURIComponent(organisationId)}/encryption`);
      console.log(answer["switchedNow"] ? `The room of ${organisationId} is end-to-end encrypted now.` : `The room of ${organisationId} was end-to-end encrypted already.`);
    });
}
