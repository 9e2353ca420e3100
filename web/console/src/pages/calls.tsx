// Video consultations (staff, admin): the running calls, starting one for an organisation (a
// running one is reused, and the page says so), ending it, and guest links for one call: issue
// (the link is shown once, with a copy button; the guest also gets it by e-mail), list, revoke.
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import { api, poll, type Call, type GuestLink, type OrganisationChoice as Choice } from "../api.ts";
import { I18n, formatTime, useT, type TextKey } from "../i18n.ts";
import type { Page } from "../page.ts";
import { ErrorText, LoadError, Loading, Notice, Section, TableHead, message } from "../ui.tsx";

/** A notice kept as its text key, so that it follows a change of language. */
interface Said {
  key: TextKey;
  vars: Record<string, string>;
}

const linkState: Record<GuestLink["state"], TextKey> = { valid: "linkValid", expired: "linkExpired", revoked: "linkRevoked" };

/** Guest links of one call: the form to issue one, the new link (once), the list with revoke buttons. */
function GuestLinks(props: { call: Call; organisation: string }) {
  const t = useT();
  const { lang } = useContext(I18n);
  const [links, setLinks] = useState<GuestLink[]>([]);
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [minutes, setMinutes] = useState("");
  const [issued, setIssued] = useState<{ url: string; expiresAt: string; name: string } | null>(null);
  const [copied, setCopied] = useState(false);
  const [notice, setNotice] = useState<Said | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const linkField = useRef<HTMLInputElement>(null);
  const callId = props.call.id;

  const load = async (background = false) => {
    const path = `/api/v1/calls/${encodeURIComponent(callId)}/guest-links`;
    try {
      const r = await (background ? poll<{ guestLinks: GuestLink[] }>(path) : api<{ guestLinks: GuestLink[] }>("GET", path));
      setLinks(r.guestLinks);
    } catch (err) {
      setError(message(err, t));
    }
  };
  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(true), 10_000);
    return () => clearInterval(timer);
  }, [callId]);

  const issue = async (ev: Event) => {
    ev.preventDefault();
    setError(null);
    setNotice(null);
    setCopied(false);
    setBusy(true);
    try {
      const body: { name: string; email: string; validMinutes?: number } = { name: name.trim(), email: email.trim() };
      if (minutes.trim()) body.validMinutes = Number(minutes);
      const r = await api<{ id: string; url: string; expiresAt: string }>("POST", `/api/v1/calls/${encodeURIComponent(callId)}/guest-links`, body);
      setIssued({ url: r.url, expiresAt: r.expiresAt, name: body.name });
      setName("");
      setEmail("");
      setMinutes("");
      await load();
    } catch (err) {
      setError(message(err, t));
    } finally {
      setBusy(false);
    }
  };

  const copy = async () => {
    if (!issued) return;
    try {
      await navigator.clipboard.writeText(issued.url);
    } catch {
      // No clipboard API (an insecure origin): select the text and copy it the old way.
      linkField.current?.select();
      document.execCommand("copy");
    }
    setCopied(true);
  };

  const revoke = async (link: GuestLink) => {
    if (!confirm(t("revokeConfirm", { name: link.name }))) return;
    setError(null);
    try {
      await api("DELETE", `/api/v1/guest-links/${encodeURIComponent(link.id)}`);
      setNotice({ key: "revoked", vars: { name: link.name } });
      await load();
    } catch (err) {
      setError(message(err, t));
    }
  };

  return (
    <Section title={t("guestLinksFor", { organisation: props.organisation })} id="guest-links">
      <p class="hint">{t("guestLinksIntro")}</p>
      <form class="grid" onSubmit={issue}>
        <label for="guest-name">{t("guestName")}</label>
        <input id="guest-name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <label for="guest-email">{t("guestEmail")}</label>
        <input id="guest-email" type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        <label for="guest-minutes">
          {t("validMinutes")} <span class="hint below">{t("validMinutesHint")}</span>
        </label>
        <input id="guest-minutes" type="number" min={5} step={1} value={minutes} onInput={(e) => setMinutes(e.currentTarget.value)} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            {t("issueLink")}
          </button>
        </div>
      </form>
      {issued && (
        <div class="issued" data-testid="issued-link">
          <p role="status">{t("linkIssued", { name: issued.name, time: formatTime(issued.expiresAt, lang) })}</p>
          <label for="issued-url" class="block">
            {t("theLink")}
          </label>
          <div class="copy">
            <input id="issued-url" ref={linkField} readOnly value={issued.url} onFocus={(e) => e.currentTarget.select()} />
            <button type="button" class="secondary" onClick={() => void copy()}>
              {t("copyLink")}
            </button>
          </div>
          <p class="hint" aria-live="polite">
            {copied ? t("copied") : t("shownOnce")}
          </p>
        </div>
      )}
      <ErrorText error={error} />
      <Notice text={notice && t(notice.key, notice.vars)} />
      {links.length === 0 ? (
        <p>{t("noGuestLinks")}</p>
      ) : (
        <table class="links">
          <TableHead columns={[t("guestName"), t("guestEmail"), t("issuedBy"), t("validUntil"), t("state")]} hidden={t("actions")} />
          <tbody>
            {links.map((l) => (
              <tr key={l.id} data-link-state={l.state} class={l.state === "valid" ? undefined : "muted"}>
                <td>{l.name}</td>
                <td>{l.email}</td>
                <td>
                  {l.createdBy}, {formatTime(l.createdAt, lang)}
                </td>
                <td>{formatTime(l.expiresAt, lang)}</td>
                <td class={`state link-${l.state}`}>{t(linkState[l.state])}</td>
                <td>
                  {l.state === "valid" && (
                    <button type="button" class="secondary small" aria-label={`${t("revoke")}: ${l.name}`} onClick={() => void revoke(l)}>
                      {t("revoke")}
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function Calls() {
  const t = useT();
  const { lang } = useContext(I18n);
  const [choices, setChoices] = useState<Choice[]>([]);
  const [calls, setCalls] = useState<Call[] | null>(null);
  const [organisation, setOrganisation] = useState("");
  const [selected, setSelected] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<Said | null>(null);
  const [busy, setBusy] = useState(false);
  const [loadError, setLoadError] = useState<string | null>(null);

  const nameOf = (id: string) => choices.find((c) => c.id === id)?.name ?? id;

  const load = async (background = false) => {
    try {
      const path = "/api/v1/calls?state=running";
      const r = await (background ? poll<{ calls: Call[] }>(path) : api<{ calls: Call[] }>("GET", path));
      setCalls(r.calls);
      setLoadError(null);
    } catch (err) {
      setLoadError(`${t("failCalls")} ${message(err, t)}`);
    }
  };
  const loadChoices = () =>
    api<{ organisations: Choice[] }>("GET", "/api/v1/console/organisations")
      .then((r) => setChoices(r.organisations.filter((o) => o.state === "active")))
      .catch((e) => setError(`${t("failOrganisations")} ${message(e, t)}`));
  useEffect(() => {
    void loadChoices();
    void load();
    // The widget is posted in the background and calls expire: look again now and then.
    const timer = setInterval(() => void load(true), 5000);
    return () => clearInterval(timer);
  }, []);

  const start = async (ev: Event) => {
    ev.preventDefault();
    setError(null);
    setNotice(null);
    if (!organisation) return setError(t("pickOrganisation"));
    setBusy(true);
    try {
      const r = await api<{ reused: boolean; call: Call }>("POST", `/api/v1/organisations/${encodeURIComponent(organisation)}/call`);
      setNotice({ key: r.reused ? "callReused" : "callStarted", vars: { organisation: nameOf(organisation) } });
      setSelected(r.call.id);
      await load();
    } catch (err) {
      setError(message(err, t));
    } finally {
      setBusy(false);
    }
  };

  const end = async (call: Call) => {
    if (!confirm(t("endConfirm", { organisation: nameOf(call.organisationId) }))) return;
    setError(null);
    setNotice(null);
    try {
      await api("DELETE", `/api/v1/organisations/${encodeURIComponent(call.organisationId)}/call`);
      setNotice({ key: "callEnded", vars: { organisation: nameOf(call.organisationId) } });
      if (selected === call.id) setSelected(null);
      await load();
    } catch (err) {
      setError(message(err, t));
    }
  };

  const current = calls?.find((c) => c.id === selected) ?? null;

  return (
    <>
      <h1>{t("calls")}</h1>
      <form class="inline" onSubmit={start}>
        <label for="call-organisation">{t("organisation")}</label>
        <select id="call-organisation" value={organisation} onChange={(e) => setOrganisation(e.currentTarget.value)}>
          <option value="">{t("choose")}</option>
          {choices.map((c) => (
            <option key={c.id} value={c.id}>
              {c.name} ({c.id})
            </option>
          ))}
        </select>
        <button type="submit" disabled={busy}>
          {t("startCall")}
        </button>
      </form>
      <ErrorText error={error} />
      <Notice text={notice && t(notice.key, notice.vars)} />
      <Section title={t("runningCalls")} id="running-calls">
        <LoadError error={loadError} retry={() => void load()} />
        {calls === null ? (
          !loadError && <Loading text={t("loadingCalls")} />
        ) : calls.length === 0 ? (
          <p>{t("noCalls")}</p>
        ) : (
          <table class="calls">
            <TableHead columns={[t("organisation"), t("startedBy"), t("endsAt"), t("widget")]} hidden={t("actions")} />
            <tbody>
              {calls.map((c) => (
                <tr key={c.id} data-organisation={c.organisationId} aria-selected={c.id === selected ? "true" : undefined}>
                  <td>
                    {nameOf(c.organisationId)} <span class="hint">({c.organisationId})</span>
                  </td>
                  <td>
                    {c.startedBy}, {formatTime(c.startedAt, lang)}
                  </td>
                  <td>{formatTime(c.expiresAt, lang)}</td>
                  <td class={c.widgetPosted ? "ok" : undefined}>{c.widgetPosted ? t("widgetPosted") : t("widgetPending")}</td>
                  <td class="row-actions">
                    <button type="button" class="secondary small" aria-label={`${t("guestLinks")}: ${nameOf(c.organisationId)}`} aria-expanded={c.id === selected} onClick={() => setSelected(c.id === selected ? null : c.id)}>
                      {t("guestLinks")}
                    </button>
                    <button type="button" class="danger small" aria-label={`${t("endCall")}: ${nameOf(c.organisationId)}`} onClick={() => void end(c)}>
                      {t("endCall")}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      {current && <GuestLinks key={current.id} call={current} organisation={nameOf(current.organisationId)} />}
    </>
  );
}

export const callsPage: Page = { path: "calls", title: "calls", scopes: ["admin", "staff"], component: Calls };
