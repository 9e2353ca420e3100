// What the quick start shows as it happens: the e-mails Kuvert sends (caught, not sent) and what a
// clerk sees in her rooms, read as her Matrix client would (CS API /sync; she accepts invitations).
import type { SmtpServer } from "../../test/support/smtp.ts";

type Write = (text: string) => void;

/** Prints each caught e-mail once, as it arrives. */
export function printMails(smtp: SmtpServer, write: Write): () => void {
  let printed = 0;
  const timer = setInterval(() => {
    for (const mail of smtp.messages.slice(printed)) {
      const to = mail.to && "text" in mail.to ? mail.to.text : "?";
      write(`\n[e-mail to ${to}] Subject: ${mail.subject ?? ""}\n${(mail.text ?? "").trimEnd()}\n`);
    }
    printed = smtp.messages.length;
  }, 500);
  timer.unref();
  return () => clearInterval(timer);
}

interface ClientEvent {
  type: string;
  sender: string;
  content: Record<string, unknown>;
  state_key?: string;
}

interface SyncResponse {
  next_batch: string;
  rooms?: {
    invite?: Record<string, unknown>;
    join?: Record<string, { timeline?: { events?: ClientEvent[] }; state?: { events?: ClientEvent[] } }>;
  };
}

function kib(bytes: unknown): string {
  return typeof bytes === "number" ? `${(bytes / 1024).toFixed(1)} KiB` : "? KiB";
}

/**
 * Follows a user's rooms through the client-server API and prints each message; stops when
 * `stop()` is called. Invitations are accepted, as the clerk would in Element.
 */
export function watchRooms(hsUrl: string, user: { userId: string; accessToken: string; name: string }, write: Write): { stop: () => void } {
  const controller = new AbortController();
  const names = new Map<string, string>();
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${hsUrl}/_matrix/client/v3${path}`, {
      method,
      headers: { authorization: `Bearer ${user.accessToken}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  const show = (roomId: string, ev: ClientEvent) => {
    const room = names.get(roomId) ?? roomId;
    if (ev.type === "m.room.name" && typeof ev.content.name === "string") names.set(roomId, ev.content.name);
    if (ev.type !== "m.room.message") return;
    const c = ev.content;
    if (c.msgtype === "m.file" && typeof c.url === "string") {
      const info = (c.info ?? {}) as { size?: number; mimetype?: string };
      const media = c.url.slice("mxc://".length);
      write(
        `\n[room "${room}", seen by ${user.name}] ${ev.sender} sent the file ${String(c.body)} (${kib(info.size)}, ${info.mimetype ?? "?"}). Download it as ${user.name}:\n` +
          `  curl -H "Authorization: Bearer ${user.accessToken}" -o ${JSON.stringify(String(c.body))} ${hsUrl}/_matrix/client/v1/media/download/${media}\n`,
      );
    } else {
      write(`\n[room "${room}", seen by ${user.name}] ${ev.sender}: ${String(c.body ?? "")}\n`);
    }
  };

  const loop = async () => {
    let since: string | undefined;
    while (!controller.signal.aborted) {
      try {
        const sync: SyncResponse = await call("GET", `/sync?timeout=20000${since ? `&since=${encodeURIComponent(since)}` : ""}`);
        since = sync.next_batch;
        for (const roomId of Object.keys(sync.rooms?.invite ?? {})) {
          await call("POST", `/join/${encodeURIComponent(roomId)}`, {});
          write(`\n[${user.name}] accepts the invitation to ${roomId}, as she would in Element.\n`);
        }
        for (const [roomId, room] of Object.entries(sync.rooms?.join ?? {})) {
          for (const ev of room.state?.events ?? []) if (ev.type === "m.room.name" && typeof ev.content.name === "string") names.set(roomId, ev.content.name);
          for (const ev of room.timeline?.events ?? []) show(roomId, ev);
        }
      } catch (err) {
        if (controller.signal.aborted) return;
        write(`\n[${user.name}] could not read her rooms: ${(err as Error).message}; trying again in 5 s.\n`);
        await new Promise((r) => setTimeout(r, 5_000));
      }
    }
  };
  void loop();
  return { stop: () => controller.abort() };
}
