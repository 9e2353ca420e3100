// A real SMTP server for the tests, in-process (smtp-server): no TLS, authentication
// optional, on a free port. Every message it accepts is parsed with mailparser and kept.
// pause() closes the listener (connections are refused), resume() listens again on the
// same port, to test what happens while the mail relay is down.
import { simpleParser, type ParsedMail } from "mailparser";
import { SMTPServer } from "smtp-server";
import { freePort } from "./ports.ts";

export interface SmtpServer {
  host: string;
  port: number;
  /** Accepted messages, in the order they arrived. */
  messages: ParsedMail[];
  /** Envelope recipients (RCPT TO) of each accepted message, same order as messages. */
  envelopes: string[][];
  /** Resolves with the messages once at least n arrived; rejects after timeoutMs. */
  waitForMessages(n: number, timeoutMs?: number): Promise<ParsedMail[]>;
  stop(): Promise<void>;
  /** Closes the listener: new connections are refused. */
  pause(): Promise<void>;
  /** Listens again on the same port. */
  resume(): Promise<void>;
}

export type TestSmtp = SmtpServer;

export interface TestSmtpOptions {
  /** Recipients the server refuses for good (550 at RCPT TO). */
  refuse?: string[];
}

export async function startSmtp(opts: TestSmtpOptions = {}): Promise<SmtpServer> {
  const host = "127.0.0.1";
  const port = await freePort();
  const refused = new Set((opts.refuse ?? []).map((a) => a.toLowerCase()));
  const messages: ParsedMail[] = [];
  const envelopes: string[][] = [];
  let waiters: (() => void)[] = [];

  const make = () =>
    new SMTPServer({
      secure: false,
      disabledCommands: ["STARTTLS"],
      authOptional: true,
      logger: false,
      closeTimeout: 200,
      onRcptTo(address, _session, callback) {
        if (refused.has(address.address.toLowerCase())) {
          const err = new Error("5.1.1 mailbox unavailable") as Error & { responseCode: number };
          err.responseCode = 550;
          callback(err);
          return;
        }
        callback();
      },
      onData(stream, session, callback) {
        simpleParser(stream)
          .then((mail) => {
            messages.push(mail);
            envelopes.push(session.envelope.rcptTo.map((r) => r.address));
            for (const wake of waiters) wake();
            callback();
          })
          .catch((err: unknown) => callback(err as Error));
      },
    });

  let server: SMTPServer | undefined;
  const listen = async () => {
    if (server) return;
    const s = make();
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, host, () => {
        s.off("error", reject);
        resolve();
      });
    });
    // Errors of single connections (a client that hangs up) are not the test's business.
    s.on("error", () => undefined);
    server = s;
  };
  const close = async () => {
    const s = server;
    server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();

  return {
    host,
    port,
    messages,
    envelopes,
    waitForMessages(n, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (messages.length < n) return false;
          clearTimeout(timer);
          waiters = waiters.filter((w) => w !== wake);
          resolve(messages.slice());
          return true;
        };
        const wake = () => void check();
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== wake);
          reject(new Error(`expected ${n} e-mail(s) within ${timeoutMs} ms, got ${messages.length}`));
        }, timeoutMs);
        if (!check()) waiters.push(wake);
      });
    },
    stop: close,
    pause: close,
    resume: listen,
  };
}
