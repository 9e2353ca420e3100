// Status (admin): health of database, scanner, homeserver and mail; queue depths; e-mails
// given up, each with a button to send it again.
import { useContext, useEffect, useState } from "preact/hooks";
import { api, poll, type DeadMail, type StatusView as StatusBody } from "../api.ts";
import { I18n, formatTime, useT } from "../i18n.ts";
import type { Page } from "../page.ts";
import { ErrorText, LoadError, Loading, Notice, Section, TableHead, message } from "../ui.tsx";

function Status() {
  const t = useT();
  const { lang } = useContext(I18n);
  const [status, setStatus] = useState<StatusBody | null>(null);
  const [dead, setDead] = useState<DeadMail[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const load = async (background = false) => {
    const get = <T,>(path: string) => (background ? poll<T>(path) : api<T>("GET", path));
    try {
      const [s, d] = await Promise.all([get<StatusBody>("/api/v1/status"), get<{ mails: DeadMail[] }>("/api/v1/mail/dead")]);
      setStatus(s);
      setDead(d.mails);
      setLoadError(null);
    } catch (err) {
      setLoadError(`${t("failStatus")} ${message(err, t)}`);
    }
  };
  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(true), 5000);
    return () => clearInterval(timer);
  }, []);
  const retry = async (id: string) => {
    try {
      await api("POST", `/api/v1/mail/${id}/retry`);
      setNotice(t("retried", { id }));
      await load();
    } catch (err) {
      setError(message(err, t));
    }
  };
  return (
    <>
      <h1>{t("status")}</h1>
      <div class="actions">
        <button type="button" class="secondary" onClick={() => void load()}>
          {t("refresh")}
        </button>
      </div>
      <ErrorText error={error} />
      <LoadError error={loadError} retry={() => void load()} />
      <Notice text={notice} />
      {status === null && !loadError && <Loading text={t("loadingStatus")} />}
      {status && dead && (
        <>
          <Section title={t("health")} id="health">
            <p class={status.ready ? "ok" : "error"}>
              <strong>{status.ready ? t("ready") : t("notReady")}</strong>
            </p>
            <ul class="checks">
              {Object.entries(status.checks).map(([name, c]) => (
                <li key={name} class={c.ok ? "ok" : "error"}>
                  <span aria-hidden="true">{c.ok ? "✔" : "✖"}</span> <strong>{name}</strong>: {c.ok ? t("ready") : t("notReady")} <span class="hint">({c.detail})</span>
                </li>
              ))}
            </ul>
          </Section>
          <Section title={t("queues")} id="queues">
            <table>
              <TableHead columns={[t("queue"), t("pending"), t("failed"), t("oldest")]} />
              <tbody>
                {status.queues.map((q) => (
                  <tr key={q.queue}>
                    <td>{q.queue}</td>
                    <td>{q.pending}</td>
                    <td>{q.failed}</td>
                    <td>{formatTime(q.oldestPendingSince, lang)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Section>
        </>
      )}
      {dead && (
        <Section title={t("deadMail")} id="dead-mail">
          {dead.length === 0 ? (
            <p>{t("noDeadMail")}</p>
          ) : (
            <table>
              <TableHead columns={["#", t("recipient"), t("organisation"), t("attempts"), t("lastError")]} hidden={t("retry")} />
              <tbody>
                {dead.map((m) => (
                  <tr key={m.id}>
                    <td>{m.id}</td>
                    <td>{m.recipient}</td>
                    <td>{m.organisationId ?? "–"}</td>
                    <td>{m.attempts}</td>
                    <td>{m.lastError ?? "–"}</td>
                    <td>
                      <button type="button" onClick={() => void retry(m.id)} aria-label={`${t("retry")}: ${m.recipient}`}>
                        {t("retry")}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Section>
      )}
    </>
  );
}

export const statusPage: Page = { path: "status", title: "status", scopes: ["admin"], component: Status };
