// The audit log (dpo and admin): filter, page back, export as CSV, verify the hash chain.
import { useContext, useEffect, useState } from "preact/hooks";
import { api, type AuditEntryView as Entry, type VerifyResult as Verify } from "../api.ts";
import { I18n, formatTime, useT } from "../i18n.ts";
import type { Page } from "../page.ts";
import { ErrorText, LoadError, Loading, TableHead, message } from "../ui.tsx";

interface Filters {
  from: string;
  to: string;
  actor: string;
  organisation: string;
  action: string;
}

function query(f: Filters, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams();
  // Dates from the date fields are whole days in the browser's time zone; "to" includes its day.
  if (f.from) q.set("from", new Date(`${f.from}T00:00:00`).toISOString());
  if (f.to) q.set("to", new Date(new Date(`${f.to}T00:00:00`).getTime() + 86_400_000).toISOString());
  if (f.actor) q.set("actor", f.actor.trim());
  if (f.organisation) q.set("organisation", f.organisation.trim());
  if (f.action) q.set("action", f.action.trim());
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q.toString();
}

function Audit() {
  const t = useT();
  const { lang } = useContext(I18n);
  const empty: Filters = { from: "", to: "", actor: "", organisation: "", action: "" };
  const [form, setForm] = useState<Filters>(empty);
  const [applied, setApplied] = useState<Filters>(empty);
  const [entries, setEntries] = useState<Entry[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [verify, setVerify] = useState<Verify | null>(null);
  const [verifying, setVerifying] = useState(false);

  const load = async (f: Filters, before?: string) => {
    setError(null);
    setLoadError(null);
    // A new filter starts from nothing: its loading is shown, not the entries of the last one.
    if (!before) setEntries(null);
    try {
      const res = await api<{ entries: Entry[]; next: string | null }>("GET", `/api/v1/audit?${query(f, before ? { before } : {})}`);
      setEntries((list) => (before ? [...(list ?? []), ...res.entries] : res.entries));
      setNext(res.next);
    } catch (err) {
      setLoadError(`${t("failAudit")} ${message(err, t)}`);
    }
  };
  useEffect(() => {
    void load(empty);
  }, []);

  const field = (name: keyof Filters, label: string, type: "text" | "date" = "text", hint?: string) => (
    <div>
      <label for={`audit-${name}`}>{label}</label>
      {type === "date" ? (
        <input id={`audit-${name}`} type="date" value={form[name]} onInput={(e) => setForm({ ...form, [name]: e.currentTarget.value })} />
      ) : (
        <input id={`audit-${name}`} type="text" value={form[name]} onInput={(e) => setForm({ ...form, [name]: e.currentTarget.value })} aria-describedby={hint ? `audit-${name}-hint` : undefined} />
      )}
      {hint && (
        <span class="hint" id={`audit-${name}-hint`}>
          {hint}
        </span>
      )}
    </div>
  );

  const runVerify = async () => {
    setVerifying(true);
    setVerify(null);
    try {
      setVerify(await api<Verify>("POST", "/api/v1/audit/verify"));
    } catch (err) {
      setError(message(err, t));
    } finally {
      setVerifying(false);
    }
  };

  return (
    <>
      <h1>{t("audit")}</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(form);
          void load(form);
        }}
      >
        {field("from", t("from"), "date")}
        {field("to", t("to"), "date")}
        {field("actor", t("actor"))}
        {field("organisation", t("organisation"))}
        {field("action", t("action"), "text", t("actionHint"))}
        <div class="actions">
          <button type="submit">{t("filter")}</button>
        </div>
      </form>
      <div class="actions">
        <a class="button secondary" href={`/api/v1/audit/export?${query({ ...applied, actor: "", organisation: "", action: "" }, { format: "csv" })}`} download>
          {t("exportCsv")}
        </a>
        <button type="button" onClick={runVerify} disabled={verifying}>
          {verifying ? t("verifying") : t("verify")}
        </button>
      </div>
      <div role="status" aria-live="polite">
        {verify && (
          <p class={verify.ok ? "ok" : "error"} data-testid="verify-result">
            {verify.ok ? t("verifyOk", { rows: verify.rows }) : t("verifyBroken", { seq: verify.brokenAt!.seq, reason: verify.brokenAt!.reason, rows: verify.rows })}
          </p>
        )}
      </div>
      <ErrorText error={error} />
      <LoadError error={loadError} retry={() => void load(applied)} />
      {entries === null ? (
        !loadError && <Loading text={t("loadingAudit")} />
      ) : entries.length === 0 ? (
        <p>{t("noEntries")}</p>
      ) : (
        <table class="audit">
          <TableHead columns={["#", t("time"), t("actor"), t("action"), t("organisation"), t("object"), t("outcome"), t("details")]} />
          <tbody>
            {entries.map((e) => (
              <tr key={e.seq} class={`outcome-${e.outcome}`}>
                <td>{e.seq}</td>
                <td>{formatTime(e.at, lang)}</td>
                <td>{e.actor}</td>
                <td>
                  <code>{e.action}</code>
                </td>
                <td>{e.organisationId ?? "–"}</td>
                <td>{e.object ?? "–"}</td>
                <td class="outcome">{e.outcome}</td>
                <td>
                  {Object.keys(e.details).length > 0 ? (
                    <details>
                      <summary>{t("show")}</summary>
                      <pre>{JSON.stringify(e.details, null, 2)}</pre>
                    </details>
                  ) : (
                    "–"
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && (
        <button type="button" class="secondary" onClick={() => void load(applied, next)}>
          {t("more")}
        </button>
      )}
    </>
  );
}

export const auditPage: Page = { path: "audit", title: "audit", scopes: ["audit", "admin"], component: Audit };
