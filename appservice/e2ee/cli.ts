// `kuvert encryption status` and `kuvert encryption enable <org>`: through a running Kuvert's API,
// which owns the bot's device and speaks to the homeserver.
import type { Command } from "commander";
import type { CliContext } from "../module.ts";

async function call(access: { url: string; token: string }, method: string, path: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${access.url.replace(/\/$/, "")}/api/v1${path}`, { method, headers: { authorization: `Bearer ${access.token}` } });
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
    .command("enable <org-id>")
    .description("switch an organisation's room to end-to-end encryption; one way: a room cannot be unencrypted again")
    .option("--url <url>", "Kuvert's public base URL (default: publicApi.baseUrl)")
    .option("--token <token>", "an API token with the admin scope (default: $KUVERT_TOKEN)")
    .action(async function (this: Command, organisationId: string, opts: { url?: string; token?: string }) {
      const answer = await call(ctx.apiAccess(this, opts, "admin"), "POST", `/organisations/${encodeURIComponent(organisationId)}/encryption`);
      console.log(answer["switchedNow"] ? `The room of ${organisationId} is end-to-end encrypted now.` : `The room of ${organisationId} was end-to-end encrypted already.`);
    });
}
