// Files the suites send: a small valid-looking PDF, and ZIP archives built in memory.
import yazl from "yazl";

/** A minimal PDF whose content (and so hash) differs by `text`; file-type takes it for application/pdf. */
export function pdf(text: string): Buffer {
  return Buffer.from(`%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\n% ${text}\ntrailer<</Root 1 0 R>>\n%%EOF\n`, "latin1");
}

/** A ZIP archive of the given files (names as given, strings as UTF-8). */
export async function zip(files: Record<string, Buffer | string>): Promise<Buffer> {
  const z = new yazl.ZipFile();
  for (const [name, content] of Object.entries(files)) z.addBuffer(Buffer.isBuffer(content) ? content : Buffer.from(content), name);
  z.end();
  const chunks: Buffer[] = [];
  for await (const chunk of z.outputStream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
