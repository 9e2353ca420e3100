// `kuvert batch …` and `kuvert document …`: send to a running Kuvert through its API (a bulk batch
// followed with progress bars), so they work beside the service on either database.
import { createReadStream, readdirSync, statSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { Readable, Transform } from "node:stream";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import yazl from "yazl";
import type { CliContext } from "../module.ts";
import type { BatchStatus } from "./batch.ts";

function filesBelow(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** The batch as a ZIP stream: a ZIP file as it is, or a folder (with manifest.csv or manifest.json) zipped on the fly. */
function batchBody(path: string): { stream: Readable; size: number | null } {
  if (statSync(path).isFile()) return { stream: createReadStream(path), size: statSync(path).size };
  const zip = new yazl.ZipFile();
  for (const file of filesBelow(path)) zip.addFile(file, relative(path, file).split("\\").join("/"), { compress: false });
  zip.end();
  return { stream: zip.outputStream as Readable, size: null };
}

export interface SubmitOptions {
  url: string;
  token: string;
  idempotencyKey?: string | undefined;
  /** Wait until every document reached its end, with a progress bar. */
  follow: boolean;
}

export async function submitBatch(path: string, opts: SubmitOptions, out: NodeJS.WritableStream = process.stdout): Promise<{ status: BatchStatus | null; ok: boolean }> {
  const { stream, size } = batchBody(path);
  const multi = new cliProgress.MultiBar({ stream: process.stderr, hideCursor: true, noTTYOutput: true, notTTYSchedule: 2000, format: "{label} [{bar}] {value}/{total} {unit}" }, cliProgress.Presets.shades_classic);
  const upload = multi.create(size ?? 0, 0, { label: "Uploading ", unit: "bytes" });
  let sent = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      sent += chunk.length;
      if (size === null) upload.setTotal(sent);
      upload.update(sent);
      done(null, chunk);
    },
  });
  const base = opts.url.replace(/\/$/, "");
  const headers: Record<string, string> = { authorization: `Bearer ${opts.token}`, "content-type": "application/zip" };
  if (opts.idempotencyKey) headers["idempotency-key"] = opts.idempotencyKey;
  // redirect "error": following a redirect would make fetch keep the whole streamed batch in memory.
  const res = await fetch(`${base}/api/v1/batches`, { method: "POST", headers, body: Readable.toWeb(stream.pipe(counter)) as ReadableStream, duplex: "half", redirect: "error" } as RequestInit);
  const answer = (await res.json().catch(() => ({}))) as { id?: string; error?: string; errcode?: string };
  if (res.status !== 202 || !answer.id) {
    multi.stop();
    throw new Error(`Kuvert refused the batch (${res.status} ${answer.errcode ?? ""}): ${answer.error ?? "no reason given"}`);
  }
  out.write(`Batch ${answer.id} accepted.\n`);
  if (!opts.follow) {
    multi.stop();
    return { status: null, ok: true };
  }
  const delivery = multi.create(1, 0, { label: "Delivering", unit: "documents" });
  let status: BatchStatus;
  for (;;) {
    const poll = await fetch(`${base}/api/v1/batches/${answer.id}`, { headers: { authorization: `Bearer ${opts.token}` } });
    status = (await poll.json()) as BatchStatus;
    const done = status.entries.filter((e) => ["delivered", "rejected", "failed", "error"].includes(e.state)).length;
    delivery.setTotal(Math.max(1, status.total ?? status.entries.length));
    delivery.update(done);
    if (status.finished) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  multi.stop();
  if (status.state === "rejected") {
    out.write(`The batch was refused: ${status.reason}\n`);
    return { status, ok: false };
  }
  for (const e of status.entries) {
    if (e.state !== "delivered") out.write(`line ${e.line} ${e.file} → ${e.organisation}: ${e.state}${e.errcode ? ` ${e.errcode}` : ""}${e.reason ? `: ${e.reason}` : ""}\n`);
  }
  const summary = Object.entries(status.counts)
    .map(([state, n]) => `${n} ${state}`)
    .join(", ");
  out.write(`${summary}.\n`);
  return { status, ok: (status.counts.delivered ?? 0) === status.entries.length };
}

export interface SendOptions {
  url: string;
  token: string;
  organisationId: string;
  kind?: string | undefined;
  reference?: string | undefined;
  supersedes?: string | undefined;
  supersedesReference?: string | undefined;
  idempotencyKey?: string | undefined;
}

interface DocumentAnswer {
  id?: string;
  state?: string;
  version?: number;
  supersedes?: string | null;
  errcode?: string;
  error?: string;
}

/** `kuvert document send`: one document through the drop API (streamed), optionally as a new version of another. */
export async function sendDocument(path: string, opts: SendOptions): Promise<DocumentAnswer & { id: string }> {
  const base = opts.url.replace(/\/$/, "");
  const query = new URLSearchParams({ filename: basename(path) });
  for (const [name, value] of [
    ["kind", opts.kind],
    ["reference", opts.reference],
    ["supersedes", opts.supersedes],
    ["supersedesReference", opts.supersedesReference],
  ] as const) {
    if (value) query.set(name, value);
  }
  const headers: Record<string, string> = { authorization: `Bearer ${opts.token}`, "content-type": "application/octet-stream", "content-length": String(statSync(path).size) };
  if (opts.idempotencyKey) headers["idempotency-key"] = opts.idempotencyKey;
  const res = await fetch(`${base}/api/v1/organisations/${encodeURIComponent(opts.organisationId)}/documents?${query}`, {
    method: "POST",
    headers,
    body: Readable.toWeb(createReadStream(path)) as ReadableStream,
    duplex: "half",
    redirect: "error",
  } as RequestInit);
  const answer = (await res.json().catch(() => ({}))) as DocumentAnswer;
  if (res.status !== 202 || !answer.id) throw new Error(`Kuvert refused the document (${res.status} ${answer.errcode ?? ""}): ${answer.error ?? "no reason given"}`);
  return answer as DocumentAnswer & { id: string };
}

export interface VersionList {
  current: string | null;
  versions: { id: string; version: number; state: string; filename: string; reference: string | null; finishedAt: string | null; supersedes: string | null; supersededBy: string | null }[];
}

/** `kuvert document versions`: every version of a document, from the API. */
export async function documentVersions(id: string, opts: { url: string; token: string }): Promise<VersionList> {
  const res = await fetch(`${opts.url.replace(/\/$/, "")}/api/v1/documents/${encodeURIComponent(id)}/versions`, { headers: { authorization: `Bearer ${opts.token}` } });
  const answer = (await res.json().catch(() => ({}))) as VersionList & { errcode?: string; error?: string };
  if (!res.ok) throw new Error(`Kuvert answered ${res.status} ${answer.errcode ?? ""}: ${answer.error ?? "no reason given"}`);
  return answer;
}

/** `kuvert batch submit`, `kuvert document send` and `kuvert document versions`. */
export function documentCommands(program: Command, ctx: CliContext): void {
  const apiAccess = (cmd: Command, opts: { url?: string; token?: string }) => ctx.apiAccess(cmd, opts, "drop");
  const batch = program.command("batch").description("bulk batches of documents");
  batch
    .command("submit <zip-or-folder>")
    .description("send a batch (a ZIP, or a folder, with manifest.csv or manifest.json) to a running Kuvert and follow its delivery")
    .option("--url <url>", "Kuvert's public base URL (default: publicApi.baseUrl)")
    .option("--token <token>", "an API token with the drop or admin scope (default: $KUVERT_TOKEN)")
    .option("--idempotency-key <key>", "send again with the same key: the same batch, never twice")
    .option("--no-follow", "only upload; do not wait for delivery")
    .action(async function (this: Command, path: string, opts: { url?: string; token?: string; idempotencyKey?: string; follow: boolean }) {
      const result = await submitBatch(path, { ...apiAccess(this, opts), idempotencyKey: opts.idempotencyKey, follow: opts.follow });
      if (!result.ok) process.exitCode = 2;
    });

  const document = program.command("document").description("single documents and their versions, through a running Kuvert's API");
  document
    .command("send <file>")
    .description("deliver a document to an organisation; with --supersedes or --supersedes-reference as a new version of an earlier one")
    .requiredOption("--org <id>", "the organisation")
    .option("--kind <kind>", "kind of document, e.g. Beitragsbescheid")
    .option("--reference <reference>", "the reference (Aktenzeichen)")
    .option("--supersedes <doc-id>", "the document this one replaces")
    .option("--supersedes-reference <reference>", "replace the current document with this reference in the same organisation")
    .option("--idempotency-key <key>", "send again with the same key: the same document, never twice")
    .option("--url <url>", "Kuvert's public base URL (default: publicApi.baseUrl)")
    .option("--token <token>", "an API token with the drop or admin scope (default: $KUVERT_TOKEN)")
    .action(async function (this: Command, file: string, opts: { org: string; kind?: string; reference?: string; supersedes?: string; supersedesReference?: string; idempotencyKey?: string; url?: string; token?: string }) {
      const answer = await sendDocument(file, { ...apiAccess(this, opts), organisationId: opts.org, kind: opts.kind, reference: opts.reference, supersedes: opts.supersedes, supersedesReference: opts.supersedesReference, idempotencyKey: opts.idempotencyKey });
      console.log(`${answer.id} accepted (version ${answer.version ?? 1}${answer.supersedes ? `, replaces ${answer.supersedes}` : ""}): ${answer.state}`);
    });
  document
    .command("versions <doc-id>")
    .description("list every version of a document, oldest first, and which one is current")
    .option("--json", "as JSON")
    .option("--url <url>", "Kuvert's public base URL (default: publicApi.baseUrl)")
    .option("--token <token>", "an API token with the drop or admin scope (default: $KUVERT_TOKEN)")
    .action(async function (this: Command, id: string, opts: { json?: boolean; url?: string; token?: string }) {
      const list = await documentVersions(id, apiAccess(this, opts));
      if (opts.json) return console.log(JSON.stringify(list, null, 2));
      for (const v of list.versions) {
        console.log(`${v.id === list.current ? "*" : " "} version ${String(v.version).padEnd(3)} ${v.id}  ${v.state.padEnd(9)} ${v.finishedAt ?? "–"}  ${v.filename}${v.reference ? `  [${v.reference}]` : ""}`);
      }
      console.log(list.current ? `* current: ${list.current}` : "No version is delivered yet.");
    });
}
