// Which media an event references: every `mxc:` URI a client could fetch because of it. A
// plain function of the event, so that what counts as "referenced" is decided in one place.
//
// Known places (CS API §"m.room.message msgtypes", §"m.sticker", §"Sending encrypted
// attachments", §"Event replacements"): `url`, `file` (an encrypted attachment),
// `info.thumbnail_url`, `info.thumbnail_file`, the same inside `m.new_content` of an edit, and
// `<img src="mxc://…">` in `formatted_body`. Rather than a list of those paths, the whole
// content is walked: any string that is an `mxc:` URI counts, wherever a client (or a future
// field) keeps it, and any object with `url` beside `key`/`iv`/`hashes` is an encrypted
// attachment. Plain text (`body`) is not media and is skipped; in HTML (`formatted_body`)
// every attribute value is read after HTML decoding, as a client's sanitiser reads it
// (`src="mxc&#58;//…"` is an image too).
import sanitizeHtml from "sanitize-html";

export interface MediaReference {
  /** The `mxc:` URI, as the event has it (it may not be well-formed: then it cannot be scanned). */
  mxc: string;
  /** Where in the content, e.g. `url`, `info.thumbnail_file`, `m.new_content.url`, `formatted_body`. */
  path: string;
  /** For an encrypted attachment: the attachment object (`url`, `key`, `iv`, `hashes`, `v`) as the event has it. */
  encrypted?: Record<string, unknown>;
}

/** Events whose content a client shows with media. */
export const mediaEventTypes: ReadonlySet<string> = new Set(["m.room.message", "m.sticker"]);

/** An event referencing more media than this is not scanned piece by piece: it is unscannable. */
export const maxReferencesPerEvent = 20;

/** Deeper than any real content; a guard against pathological nesting. */
const maxDepth = 16;
const mxcInText = /mxc:\/\/[^\s"'<>,()\\]+/g;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function looksEncrypted(value: Record<string, unknown>): boolean {
  return typeof value.url === "string" && ("key" in value || "iv" in value || "hashes" in value);
}

/** `mxc:` URIs in the attributes of an HTML fragment (img src, srcset, style url(…), anything). */
export function mxcInHtml(html: string): string[] {
  const found: string[] = [];
  sanitizeHtml(html, {
    allowedTags: false,
    allowedAttributes: false,
    // Only read, never rendered: the output is thrown away.
    allowVulnerableTags: true,
    onOpenTag: (_name, attribs) => {
      for (const value of Object.values(attribs)) {
        for (const match of value.matchAll(mxcInText)) found.push(match[0]);
      }
    },
  });
  return found;
}

/** Every media reference of `event`, each once (same URI and same key), in content order. Events of other types reference none. */
export function mediaReferences(event: { type: string; content: Record<string, unknown> }): MediaReference[] {
  if (!mediaEventTypes.has(event.type)) return [];
  const refs: MediaReference[] = [];
  const seen = new Set<string>();
  const add = (ref: MediaReference) => {
    const key = ref.encrypted ? `${ref.mxc}\u0000${JSON.stringify(ref.encrypted.key ?? null)}` : ref.mxc;
    if (seen.has(key)) return;
    seen.add(key);
    refs.push(ref);
  };
  const walk = (value: unknown, path: string[], depth: number): void => {
    if (depth > maxDepth) return;
    const key = path[path.length - 1];
    const where = path.join(".");
    if (typeof value === "string") {
      if (key === "body") return;
      if (key === "formatted_body") {
        for (const mxc of mxcInHtml(value)) add({ mxc, path: where });
        return;
      }
      if (value.startsWith("mxc://")) add({ mxc: value, path: where });
      return;
    }
    if (Array.isArray(value)) {
      value.forEach((item, i) => walk(item, [...path, String(i)], depth + 1));
      return;
    }
    if (!isRecord(value)) return;
    if (looksEncrypted(value)) {
      add({ mxc: value.url as string, path: where, encrypted: value });
      return;
    }
    for (const [k, v] of Object.entries(value)) walk(v, [...path, k], depth + 1);
  };
  for (const [k, v] of Object.entries(event.content)) walk(v, [k], 1);
  return refs;
}
