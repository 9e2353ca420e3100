// Markdown as staff write it → what a Matrix room shows: `formatted_body` in Matrix HTML and a
// plain-text `body` for clients without HTML (CS API §"m.room.message msgtypes", m.text).
// Rendered with marked (GitHub-flavoured, single line breaks kept, as Element's composer does)
// and sanitised with sanitize-html to the HTML subset the spec allows (§"m.room.message
// msgtypes" → "HTML subset"): nothing else reaches a room, whatever the Markdown contains.
import { Marked } from "marked";
import sanitizeHtml from "sanitize-html";

/** Tags clients should allow in formatted_body (Matrix 1.12; `font` and `strike` are deprecated there and left out). */
export const matrixAllowedTags = [
  "del",
  "h1",
  "h2",
  "h3",
  "h4",
  "h5",
  "h6",
  "blockquote",
  "p",
  "a",
  "ul",
  "ol",
  "sup",
  "sub",
  "li",
  "b",
  "i",
  "u",
  "strong",
  "em",
  "s",
  "code",
  "hr",
  "br",
  "div",
  "table",
  "thead",
  "tbody",
  "tr",
  "th",
  "td",
  "caption",
  "pre",
  "span",
  "img",
  "details",
  "summary",
];

const sanitizeOptions: sanitizeHtml.IOptions = {
  allowedTags: matrixAllowedTags,
  allowedAttributes: {
    span: ["data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"],
    div: ["data-mx-maths"],
    a: ["href", "target"],
    img: ["width", "height", "alt", "title", "src"],
    ol: ["start"],
    code: ["class"],
  },
  allowedClasses: { code: ["language-*"] },
  // §"HTML subset": links with these schemes; images only from the media repository (mxc://).
  allowedSchemes: ["https", "http", "ftp", "mailto", "magnet"],
  allowedSchemesByTag: { img: ["mxc"] },
  allowProtocolRelative: false,
  disallowedTagsMode: "discard",
  // A non-mxc image is dropped, not left as an <img> without src.
  exclusiveFilter: (frame) => frame.tag === "img" && !/^mxc:\/\//.test(frame.attribs.src ?? ""),
  // The spec caps nesting at 100; Markdown that deep is not a circular.
  nestingLimit: 100,
};

const marked = new Marked({ gfm: true, breaks: true, async: false });

export interface RenderedText {
  /** Plain text for `body`: the Markdown source, as Element sends it. */
  body: string;
  /** Matrix HTML for `formatted_body`. */
  html: string;
}

/** Renders staff's Markdown for a room. The plain body is the source text with normalised line ends. */
export function renderMarkdown(markdown: string): RenderedText {
  const source = markdown.replace(/\r\n?/g, "\n").trim();
  const raw = marked.parse(source) as string;
  const html = sanitizeHtml(raw, sanitizeOptions).trim();
  return { body: source, html };
}

/** Sanitises HTML from elsewhere to the Matrix subset (used for tests and HTML the API might receive). */
export function sanitizeMatrixHtml(html: string): string {
  return sanitizeHtml(html, sanitizeOptions);
}

/** Content of an m.text message with the rendered circular. */
export function messageContent(text: RenderedText): Record<string, unknown> {
  return { msgtype: "m.text", body: text.body, format: "org.matrix.custom.html", formatted_body: text.html };
}

/**
 * An edit of `eventId` with new text (CS API §"Event replacements"): the replacement content in
 * `m.new_content`, and a fallback for clients without edits whose body and formatted_body start
 * with "* ". `m.new_content` carries no `m.relates_to`.
 */
export function editContent(eventId: string, content: Record<string, unknown>): Record<string, unknown> {
  const fallback: Record<string, unknown> = { ...content, body: `* ${String(content.body)}` };
  if (typeof content.formatted_body === "string") fallback.formatted_body = `* ${content.formatted_body}`;
  return { ...fallback, "m.new_content": content, "m.relates_to": { rel_type: "m.replace", event_id: eventId } };
}
