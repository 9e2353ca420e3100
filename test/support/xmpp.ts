// A minimal XMPP client over WebSocket (RFC 7395), just what the Prosody suite needs: open a
// stream, authenticate with SASL ANONYMOUS (Jitsi's token login) or PLAIN (the focus account),
// bind a resource, join a MUC room. Stanzas are matched as text: enough for a test.
const FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";

export class XmppRefusal extends Error {
  readonly condition: string;
  readonly text: string;
  constructor(condition: string, text: string) {
    super(`${condition}: ${text}`);
    this.condition = condition;
    this.text = text;
  }
}

function unescape(text: string): string {
  return text
    .replace(/&apos;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

/** The condition and text of a SASL failure or stanza error. */
function errorOf(frame: string): XmppRefusal {
  const condition = /<(not-allowed|not-authorized|access-denied|bad-request|forbidden|registration-required|item-not-found|malformed-request|temporary-auth-failure)\b/.exec(frame)?.[1] ?? "unknown";
  const text = /<text[^>]*>([\s\S]*?)<\/text>/.exec(frame)?.[1] ?? "";
  return new XmppRefusal(condition, unescape(text));
}

export type Auth = { mechanism: "ANONYMOUS" } | { mechanism: "PLAIN"; username: string; password: string };

export class XmppSession {
  readonly #ws: WebSocket;
  readonly #frames: string[] = [];
  #waiters: (() => void)[] = [];
  jid = "";

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener("message", (e) => {
      this.#frames.push(String(e.data));
      for (const w of this.#waiters.splice(0)) w();
    });
    ws.addEventListener("close", () => {
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** Opens a stream to `domain` at `url`, authenticates and binds; throws XmppRefusal when refused. */
  static async connect(url: string, domain: string, auth: Auth): Promise<XmppSession> {
    const ws = new WebSocket(url, "xmpp");
    const session = new XmppSession(ws);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`WebSocket to ${url} failed`)), { once: true });
    });
    try {
      await session.#open(domain);
      const payload = auth.mechanism === "PLAIN" ? Buffer.from(`\0${auth.username}\0${auth.password}`).toString("base64") : "";
      session.#send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="${auth.mechanism}">${payload}</auth>`);
      const answer = await session.#next((f) => /<success\b|<failure\b/.test(f), "the SASL answer");
      if (/<failure\b/.test(answer)) throw errorOf(answer);
      await session.#open(domain);
      session.#send('<iq xmlns="jabber:client" type="set" id="bind1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>');
      const bound = await session.#next((f) => /id=["']bind1["']/.test(f), "the bind result");
      session.jid = /<jid>([^<]+)<\/jid>/.exec(bound)?.[1] ?? "";
      return session;
    } catch (err) {
      session.close();
      throw err;
    }
  }

  #send(xml: string): void {
    this.#ws.send(xml);
  }

  async #open(domain: string): Promise<void> {
    this.#send(`<open xmlns="${FRAMING}" to="${domain}" version="1.0"/>`);
    await this.#next((f) => /<(stream:)?features\b/.test(f), "the stream features");
  }

  async #next(match: (frame: string) => boolean, what: string, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#frames.findIndex(match);
      if (i >= 0) return this.#frames.splice(0, i + 1).at(-1)!;
      if (this.#ws.readyState === WebSocket.CLOSED) throw new Error(`the stream closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Joins a MUC room (`room@muc/nick`); throws XmppRefusal with the room's error. */
  async join(occupantJid: string): Promise<void> {
    this.#send(`<presence xmlns="jabber:client" to="${occupantJid}"><x xmlns="http://jabber.org/protocol/muc"/></presence>`);
    const answer = await this.#next((f) => (/^<presence\b/.test(f) && f.includes(`from="${occupantJid}"`)) || (/^<presence\b/.test(f) && f.includes(`from='${occupantJid}'`)), `the presence of ${occupantJid}`);
    if (/type=["']error["']/.test(answer)) throw errorOf(answer);
  }

  close(): void {
    try {
      if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(`<close xmlns="${FRAMING}"/>`);
      this.#ws.close();
    } catch {
      // already closed
    }
  }
}
