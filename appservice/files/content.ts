// Names and content agree: the type judged from a document's bytes must be one its file name
// promises, so that what a clerk opens by double-click is what was scanned and announced (a PDF
// named setup.exe, text named Rechnung.pdf.bat: refused). And active content — markup a browser
// runs (HTML, SVG) and scripts — is refused unless configured.
// One function for every way in (drop API, console, drop folder, batches, circular attachments).
import { extname } from "node:path";
import { ErrCode, KuvertError } from "../errors.ts";

/** The extensions each type may carry, lower case without the dot. A type missing here has no name that fits it. */
const extensions: Record<string, readonly string[]> = {
  "application/pdf": ["pdf"],
  "image/png": ["png"],
  "image/jpeg": ["jpg", "jpeg", "jpe", "jfif"],
  "image/tiff": ["tif", "tiff"],
  "image/gif": ["gif"],
  "image/webp": ["webp"],
  "image/bmp": ["bmp"],
  "image/heic": ["heic"],
  "image/heif": ["heif"],
  // Text has no signature: whatever text it is, it sniffs as text/plain.
  "text/plain": ["txt", "text", "csv", "tsv", "log", "md", "asc", "xml", "json", "ics", "vcf"],
  "text/csv": ["csv"],
  "application/xml": ["xml", "xsd", "gml", "xrechnung"],
  "text/xml": ["xml"],
  "application/zip": ["zip"],
  "application/gzip": ["gz", "tgz"],
  "application/x-tar": ["tar"],
  "application/x-7z-compressed": ["7z"],
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ["docx"],
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ["xlsx"],
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": ["pptx"],
  "application/vnd.oasis.opendocument.text": ["odt"],
  "application/vnd.oasis.opendocument.spreadsheet": ["ods"],
  "application/vnd.oasis.opendocument.presentation": ["odp"],
  "application/x-cfb": ["doc", "xls", "ppt", "msg"],
  "application/rtf": ["rtf"],
  "message/rfc822": ["eml"],
  "audio/mpeg": ["mp3"],
  "audio/ogg": ["ogg", "oga"],
  "audio/wav": ["wav"],
  "video/mp4": ["mp4", "m4v"],
  "text/html": ["html", "htm", "xhtml"],
  "image/svg+xml": ["svg"],
  "text/x-shellscript": ["sh"],
  "application/x-bat": ["bat", "cmd"],
};

/** Types whose content runs code when opened: markup a browser runs, and scripts. (Programs are simply not on the allow-list.) */
const activeTypes = new Set(["text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript", "application/javascript", "text/x-shellscript", "application/x-bat"]);

// Markup a browser would run and scripts, found in text that has no signature (so it sniffed as text or XML).
const markupPatterns: [RegExp, string][] = [
  [/^\uFEFF?#!/, "text/x-shellscript"],
  [/^\uFEFF?\s*@?echo\s+off\b/i, "application/x-bat"],
  [/<svg[\s>/]/i, "image/svg+xml"],
  [/<!doctype\s+html|<(html|head|body|script|iframe|object|embed|frameset|meta\s+http-equiv)[\s>/]/i, "text/html"],
];

/**
 * The type of a staged file, judged by its content: the sniffed type, or text/html and
 * image/svg+xml when its first bytes hold markup a browser would run.
 */
export function contentType(sniffed: string, head: Buffer): string {
  if (sniffed !== "text/plain" && sniffed !== "application/xml" && sniffed !== "text/xml") return sniffed;
  const text = head.toString("utf8");
  for (const [pattern, type] of markupPatterns) if (pattern.test(text)) return type;
  return sniffed;
}

export interface ContentRules {
  allowedTypes: string[];
  activeContent: boolean;
}

/**
 * Checks that a document may come in under this name with this content type (judged by the
 * content): no active content unless configured, an allowed type, and an extension that
 * belongs to the type. Throws a KuvertError that says what to do.
 */
export function checkContent(filename: string, mimetype: string, rules: ContentRules): void {
  const ext = extname(filename).slice(1).toLowerCase();
  const quoted = JSON.stringify(filename);
  if (!rules.activeContent && activeTypes.has(mimetype)) {
    throw new KuvertError(ErrCode.ActiveContent, `${quoted} is not accepted: its content is ${mimetype}, which runs code when opened (HTML, SVG, scripts). Send a PDF instead; an operator can allow such content with documents.activeContent.`, [
      { path: "(content)", message: `active content (${mimetype})` },
    ]);
  }
  if (!typeAllowed(mimetype, rules.allowedTypes)) {
    throw new KuvertError(ErrCode.TypeNotAllowed, `Documents of type ${mimetype} (judged by the content) are not accepted.`);
  }
  const fitting = extensions[mimetype] ?? [];
  if (!fitting.includes(ext)) {
    const named = ext ? `ends in .${ext}` : "has no extension";
    const hint = fitting.length ? `name it .${fitting[0]}` : "Kuvert knows no file extension for that type";
    throw new KuvertError(ErrCode.TypeMismatch, `${quoted} ${named}, but its content is ${mimetype}; the name must say what the file is (${hint}).`, [{ path: "filename", message: `the extension does not match the content (${mimetype})` }]);
  }
}

/** Whether a content type is on the allow-list (`type/*` allows a family). */
export function typeAllowed(mimetype: string, allowed: string[]): boolean {
  return allowed.some((a) => a === mimetype || (a.endsWith("/*") && mimetype.startsWith(a.slice(0, -1))));
}
