// Organisations: search, create, edit, archive; clerks with their invitation state; CSV import
// with a preview of what will change and a result per row.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, poll, type Clerk, type Organisation, type PreviewRow, type RoomEncryptionView } from "../api.ts";
import { useT, type TextKey } from "../i18n.ts";
import type { Page } from "../page.ts";
import { ErrorText, LoadError, Loading, Notice, Section, TableHead, message } from "../ui.tsx";

const roomKey: Record<string, TextKey> = { pending: "roomPending", ready: "roomReady", lost: "roomLost" };
const changeLabel: Record<string, TextKey> = {
  name: "cName",
  tagsAdded: "cTagsAdded",
  tagsRemoved: "cTagsRemoved",
  clerksAdded: "cClerksAdded",
  clerksRemoved: "cClerksRemoved",
  clerksChanged: "cClerksChanged",
};
const membershipKey: Record<string, TextKey> = { invite: "mInvite", join: "mJoin", leave: "mLeave", ban: "mBan" };

/** "Anna Beispiel anna@x.de @anna:x" per line → clerk inputs. */
function parseClerks(text: string): { matrixId?: string; email?: string; name?: string }[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map((line) => {
      const clerk: { matrixId?: string; email?: string; name?: string } = {};
      const rest: string[] = [];
      for (const part of line.split(/\s+/)) {
        if (part.startsWith("@") && part.includes(":")) clerk.matrixId = part;
        else if (/^[^@\s]+@[^@\s]+$/.test(part)) clerk.email = part;
        else rest.push(part);
      }
      if (rest.length) clerk.name = rest.join(" ");
      return clerk;
    });
}

const clerkLine = (c: Clerk) => [c.name, c.email, c.matrixId].filter(Boolean).join(" ");
const parseTags = (text: string) => text.split(/[\s,;]+/).filter(Boolean);

function OrganisationForm(props: { org?: Organisation; onSaved: (o: Organisation, outcome: string) => void; onCancel?: () => void }) {
  const t = useT();
  const org = props.org;
  const [id, setId] = useState(org?.id ?? "");
  const [name, setName] = useState(org?.name ?? "");
  const [tags, setTags] = useState(org?.tags.join(" ") ?? "");
  const [clerks, setClerks] = useState(
    org?.clerks
      .filter((c) => c.status === "active")
      .map(clerkLine)
      .join("\n") ?? "",
  );
  const [error, setError] = useState<string | null>(null);
  const prefix = org ? `edit-${org.id}` : "new";
  const submit = async (ev: Event) => {
    ev.preventDefault();
    setError(null);
    try {
      const body = { name, tags: parseTags(tags), clerks: parseClerks(clerks) };
      const res = org ? await api<{ outcome: string; organisation: Organisation }>("PATCH", `/api/v1/organisations/${encodeURIComponent(org.id)}`, body) : await api<{ outcome: string; organisation: Organisation }>("POST", "/api/v1/organisations", { id, ...body });
      props.onSaved(res.organisation, res.outcome);
      if (!org) {
        setId("");
        setName("");
        setTags("");
        setClerks("");
      }
    } catch (err) {
      setError(message(err, t));
    }
  };
  return (
    <form class="grid" onSubmit={submit}>
      {!org && (
        <>
          <label for={`${prefix}-id`}>{t("id")}</label>
          <input id={`${prefix}-id`} required pattern="[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?" value={id} onInput={(e) => setId(e.currentTarget.value)} placeholder="gemeinde-musterstadt" />
        </>
      )}
      <label for={`${prefix}-name`}>{t("name")}</label>
      <input id={`${prefix}-name`} required value={name} onInput={(e) => setName(e.currentTarget.value)} />
      <label for={`${prefix}-tags`}>
        {t("tags")} <span class="hint">({t("tagsHint")})</span>
      </label>
      <input id={`${prefix}-tags`} value={tags} onInput={(e) => setTags(e.currentTarget.value)} />
      <label for={`${prefix}-clerks`}>
        {t("clerks")} <span class="hint">({t("clerksHint")})</span>
      </label>
      <textarea id={`${prefix}-clerks`} rows={3} value={clerks} onInput={(e) => setClerks(e.currentTarget.value)} />
      <ErrorText error={error} />
      <div class="actions">
        <button type="submit">{org ? t("save") : t("create")}</button>
        {props.onCancel && (
          <button type="button" class="secondary" onClick={props.onCancel}>
            {t("cancel")}
          </button>
        )}
      </div>
    </form>
  );
}

function Details(props: { id: string; onChanged: () => void }) {
  const t = useT();
  const [org, setOrg] = useState<Organisation | null>(null);
  const [editing, setEditing] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const lastRoomState = useRef<string | null>(null);
  const load = (background = false) =>
    (background ? poll<Organisation>(`/api/v1/organisations/${encodeURIComponent(props.id)}`) : api<Organisation>("GET", `/api/v1/organisations/${encodeURIComponent(props.id)}`))
      .then((o) => {
        setOrg(o);
        // The list shows the room's state too: refresh it when that changes.
        if (lastRoomState.current !== null && lastRoomState.current !== o.roomState) props.onChanged();
        lastRoomState.current = o.roomState;
      })
      .catch((e) => setError(message(e, t)));
  useEffect(() => {
    lastRoomState.current = null;
    void load();
    // Invitations are sent in the background: look again, as the page's own polling.
    const timer = setInterval(() => void load(true), 3000);
    return () => clearInterval(timer);
  }, [props.id]);
  const [encryption, setEncryption] = useState<RoomEncryptionView | null>(null);
  useEffect(() => {
    setEncryption(null);
    api<RoomEncryptionView>("GET", `/api/v1/organisations/${encodeURIComponent(props.id)}/encryption`)
      .then(setEncryption)
      .catch(() => setEncryption(null));
  }, [props.id, org?.roomId]);
  if (!org) return <ErrorText error={error} />;
  const encrypt = async () => {
    if (!confirm(t("encryptConfirm", { id: org.id }))) return;
    try {
      setEncryption(await api<RoomEncryptionView>("POST", `/api/v1/organisations/${encodeURIComponent(org.id)}/encryption`));
      setNotice(t("encryptedNow"));
    } catch (err) {
      setError(message(err, t));
    }
  };
  const archive = async () => {
    if (!confirm(t("archiveConfirm", { id: org.id }))) return;
    try {
      const res = await api<{ organisation: Organisation }>("POST", `/api/v1/organisations/${encodeURIComponent(org.id)}/archive`);
      setOrg(res.organisation);
      props.onChanged();
    } catch (err) {
      setError(message(err, t));
    }
  };
  return (
    <Section title={`${org.name} (${org.id})`} id="org-details">
      <p>
        {t("state")}: {t(org.state)} · {t("room")}: {t(roomKey[org.roomState]!)}
        {org.roomProblem ? ` – ${org.roomProblem}` : ""}
        {encryption && org.roomId ? ` · ${t("encryption")}: ${t(encryption.encrypted ? "encryptedYes" : "encryptedNo")}` : ""}
      </p>
      <table>
        <caption>{t("clerks")}</caption>
        <TableHead columns={[t("name"), "E-Mail", "Matrix-ID", t("membership")]} />
        <tbody>
          {org.clerks.map((c) => (
            <tr key={`${c.matrixId}|${c.email}`} class={c.status === "removed" ? "muted" : ""}>
              <td>{c.name ?? "–"}</td>
              <td>{c.email ?? "–"}</td>
              <td>{c.matrixId ?? "–"}</td>
              <td>{c.status === "removed" ? t("removed") : c.matrixId ? t(membershipKey[c.membership ?? ""] ?? "mNone") : "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Notice text={notice} />
      <ErrorText error={error} />
      {editing ? (
        <OrganisationForm
          org={org}
          onSaved={(o, outcome) => {
            setOrg(o);
            setEditing(false);
            setNotice(t(outcome === "unchanged" ? "unchanged" : "updated"));
            props.onChanged();
          }}
          onCancel={() => setEditing(false)}
        />
      ) : (
        org.state === "active" && (
          <div class="actions">
            <button type="button" onClick={() => setEditing(true)}>
              {t("edit")}
            </button>
            {encryption?.available && !encryption.encrypted && org.roomState === "ready" && (
              <button type="button" onClick={encrypt}>
                {t("encrypt")}
              </button>
            )}
            <button type="button" class="danger" onClick={archive}>
              {t("archive")}
            </button>
          </div>
        )
      )}
    </Section>
  );
}

function Import(props: { onDone: () => void }) {
  const t = useT();
  const [csv, setCsv] = useState<string | null>(null);
  const [preview, setPreview] = useState<PreviewRow[] | null>(null);
  const [result, setResult] = useState<PreviewRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const outcomeText = (o: string, applied: boolean): string =>
    t(((applied ? { created: "rCreated", updated: "rUpdated", unchanged: "rUnchanged", error: "oError" } : { created: "oCreated", updated: "oUpdated", unchanged: "oUnchanged", error: "oError" }) as Record<string, TextKey>)[o]!);
  const describe = (row: PreviewRow) => {
    if (row.error) return row.error;
    const c = row.changes ?? {};
    return Object.entries(c)
      .map(([k, v]) => `${changeLabel[k] ? t(changeLabel[k]) : k}: ${Array.isArray(v) ? v.join(", ") : typeof v === "object" && v ? `${(v as { from: string }).from} → ${(v as { to: string }).to}` : String(v)}`)
      .join("; ");
  };
  const pick = async (ev: Event) => {
    const file = (ev.currentTarget as HTMLInputElement).files?.[0];
    setPreview(null);
    setResult(null);
    setError(null);
    if (!file) return;
    const text = await file.text();
    setCsv(text);
    try {
      const res = await api<{ rows: PreviewRow[] }>("POST", "/api/v1/organisations/import?dryRun=true", text, "text/csv");
      setPreview(res.rows);
    } catch (err) {
      setError(message(err, t));
    }
  };
  const apply = async () => {
    try {
      const res = await api<{ rows: PreviewRow[] }>("POST", "/api/v1/organisations/import", csv!, "text/csv");
      setResult(res.rows);
      setPreview(null);
      props.onDone();
    } catch (err) {
      setError(message(err, t));
    }
  };
  const rows = result ?? preview;
  return (
    <Section title={t("importTitle")} id="import">
      <label for="import-file" class="block">
        {t("importFile")}
      </label>
      <input id="import-file" type="file" accept=".csv,text/csv" onChange={pick} />
      <ErrorText error={error} />
      {rows && (
        <table>
          <caption>{result ? t("outcome") : t("importPreview")}</caption>
          <TableHead columns={[t("line"), t("id"), t("outcome"), t("changes")]} />
          <tbody>
            {rows.map((r) => (
              <tr key={r.line} class={`outcome-${r.outcome}`}>
                <td>{r.line}</td>
                <td>{r.id}</td>
                <td>{outcomeText(r.outcome, result !== null)}</td>
                <td>{result ? (r.error ?? "") : describe(r)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {preview && preview.some((r) => r.outcome === "created" || r.outcome === "updated") && (
        <button type="button" onClick={apply}>
          {t("importApply")}
        </button>
      )}
    </Section>
  );
}

function Organisations() {
  const t = useT();
  const [search, setSearch] = useState("");
  const [list, setList] = useState<Organisation[] | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const load = (q = search) =>
    api<{ organisations: Organisation[] }>("GET", `/api/v1/organisations?limit=500${q ? `&search=${encodeURIComponent(q)}` : ""}`)
      .then((r) => {
        setList(r.organisations);
        setError(null);
      })
      .catch((e) => setError(`${t("failOrganisations")} ${message(e, t)}`));
  useEffect(() => {
    void load("");
  }, []);
  return (
    <>
      <h1>{t("organisations")}</h1>
      <form
        role="search"
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void load();
        }}
      >
        <label for="org-search">{t("search")}</label>
        <input id="org-search" type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        <button type="submit">{t("search")}</button>
      </form>
      <LoadError error={error} retry={() => void load()} />
      {list === null && !error && <Loading text={t("loadingOrganisations")} />}
      {list && list.length === 0 && <p>{t("noOrganisations")}</p>}
      {list && list.length > 0 && (
        <table>
          <TableHead columns={[t("id"), t("name"), t("tags"), t("state"), t("room"), t("clerks")]} />
          <tbody>
            {list.map((o) => (
              <tr key={o.id} aria-selected={selected === o.id}>
                <td>
                  <button type="button" class="link" onClick={() => setSelected(o.id)}>
                    {o.id}
                  </button>
                </td>
                <td>{o.name}</td>
                <td>{o.tags.join(", ")}</td>
                <td>{t(o.state)}</td>
                <td>{t(roomKey[o.roomState]!)}</td>
                <td>{o.clerks.filter((c) => c.status === "active").length}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {selected && <Details key={selected} id={selected} onChanged={() => void load()} />}
      <Section title={t("create")} id="create">
        <Notice text={notice} />
        <OrganisationForm
          onSaved={(o, outcome) => {
            setNotice(`${o.id}: ${t(outcome === "created" ? "created" : outcome === "unchanged" ? "unchanged" : "updated")}`);
            setSelected(o.id);
            void load();
          }}
        />
      </Section>
      <Import onDone={() => void load()} />
    </>
  );
}

export const organisationsPage: Page = { path: "organisations", title: "organisations", scopes: ["admin"], component: Organisations };
