// Send documents: pick organisations, drop files, watch each document from upload to the
// clerks' e-mail: uploading (with progress), scanning, held, rejected (with the finding),
// delivered, notified.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, poll as pollApi, uploadDocument, type DocumentStatus as Status, type OrganisationChoice as Choice } from "../api.ts";
import { useT, type TextKey } from "../i18n.ts";
import type { Page } from "../page.ts";
import { ErrorText, LoadError, Loading, Section, TableHead, message } from "../ui.tsx";

interface Item {
  key: string;
  file: string;
  organisation: string;
  progress: number;
  documentId?: string;
  /** Above 1 for a new version of an earlier document. */
  version?: number;
  state: string;
  detail?: string;
}

const finished = (s: Status) => s.state === "rejected" || s.state === "failed" || (s.state === "delivered" && (s.notifications?.pending ?? 0) === 0);

/** The state a person wants to see: "notified" once the clerks' e-mails are out. */
function shown(s: Status): { state: string; detail?: string } {
  if (s.state === "rejected") return { state: "rejected", detail: s.signature ?? s.reason ?? undefined };
  if (s.state === "held") return { state: "held", detail: s.reason ?? undefined };
  if (s.state === "failed") return { state: "failed", detail: s.reason ?? undefined };
  if (s.state === "delivered" && s.notifications && s.notifications.sent > 0 && s.notifications.pending === 0) return { state: "notified" };
  return { state: s.state };
}

const stateKey: Record<string, TextKey> = {
  uploading: "sUploading",
  received: "sReceived",
  scanning: "sScanning",
  held: "sHeld",
  rejected: "sRejected",
  delivered: "sDelivered",
  notified: "sNotified",
  failed: "sFailed",
};

function Documents() {
  const t = useT();
  const [choices, setChoices] = useState<Choice[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [filter, setFilter] = useState("");
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [files, setFiles] = useState<File[]>([]);
  const [kind, setKind] = useState("");
  const [reference, setReference] = useState("");
  const [newVersion, setNewVersion] = useState(false);
  const [items, setItems] = useState<Item[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const polling = useRef(new Set<string>());

  const loadChoices = () =>
    api<{ organisations: Choice[] }>("GET", "/api/v1/console/organisations")
      .then((r) => {
        setChoices(r.organisations.filter((o) => o.state === "active"));
        setLoadError(null);
      })
      .catch((e) => setLoadError(`${t("failOrganisations")} ${message(e, t)}`));
  useEffect(() => {
    void loadChoices();
  }, []);

  const update = (key: string, change: Partial<Item>) => setItems((list) => list.map((i) => (i.key === key ? { ...i, ...change } : i)));

  const poll = (key: string, id: string) => {
    polling.current.add(key);
    const tick = async () => {
      if (!polling.current.has(key)) return;
      try {
        const s = await pollApi<Status>(`/api/v1/documents/${encodeURIComponent(id)}`);
        update(key, shown(s));
        if (finished(s)) {
          polling.current.delete(key);
          return;
        }
      } catch {
        // a failed look is tried again
      }
      setTimeout(tick, 1000);
    };
    void tick();
  };
  useEffect(() => () => polling.current.clear(), []);

  const send = async (ev: Event) => {
    ev.preventDefault();
    setError(null);
    if (picked.size === 0 || files.length === 0) return setError(t("nothingPicked"));
    const batch: Item[] = [];
    for (const org of picked) for (const f of files) batch.push({ key: `${Date.now()}-${batch.length}-${org}-${f.name}`, file: f.name, organisation: org, progress: 0, state: "uploading" });
    setItems((list) => [...batch, ...list]);
    const work = [...picked].flatMap((org) => files.map((f) => ({ org, f })));
    setFiles([]);
    // Two uploads at a time: enough to keep the line busy, not so many that each crawls.
    let next = 0;
    const lane = async () => {
      while (next < work.length) {
        const i = next++;
        const { org, f } = work[i]!;
        const key = batch[i]!.key;
        try {
          const supersedesReference = newVersion && reference ? reference : undefined;
          const accepted = await uploadDocument(org, f, { kind, reference, supersedesReference }, (p) => update(key, { progress: p }));
          update(key, { documentId: accepted.id, version: accepted.version, state: accepted.state, progress: 1 });
          poll(key, accepted.id);
        } catch (err) {
          update(key, { state: "failed", detail: message(err, t) });
        }
      }
    };
    await Promise.all([lane(), lane()]);
  };

  const addFiles = (list: FileList | null | undefined) => {
    if (list) setFiles((f) => [...f, ...Array.from(list)]);
  };
  const all = choices ?? [];
  const visible = all.filter((c) => !filter || `${c.id} ${c.name} ${c.tags.join(" ")}`.toLowerCase().includes(filter.toLowerCase()));
  const tags = [...new Set(all.flatMap((c) => c.tags))].sort();
  const pickTag = (tag: string) => setPicked((p) => new Set([...p, ...all.filter((c) => c.tags.includes(tag)).map((c) => c.id)]));
  const toggle = (id: string) =>
    setPicked((p) => {
      const n = new Set(p);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });

  return (
    <>
      <h1>{t("documents")}</h1>
      <form onSubmit={send}>
        <fieldset>
          <legend>{t("pickOrganisations")}</legend>
          <label for="org-filter" class="block">
            {t("filterOrganisations")}
          </label>
          <input id="org-filter" type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
          {tags.length > 0 && (
            <p class="tags">
              <span id="tag-pick">{t("pickTag")}</span>{" "}
              {tags.map((tag) => (
                <button key={tag} type="button" class="secondary small" aria-describedby="tag-pick" onClick={() => pickTag(tag)}>
                  {tag}
                </button>
              ))}
            </p>
          )}
          <LoadError error={loadError} retry={() => void loadChoices()} />
          {choices === null && !loadError && <Loading text={t("loadingOrganisations")} />}
          {choices && choices.length === 0 && <p>{t("noOrganisations")}</p>}
          <ul class="choices">
            {visible.map((c) => (
              <li key={c.id}>
                <label>
                  <input type="checkbox" checked={picked.has(c.id)} onChange={() => toggle(c.id)} /> {c.name} <span class="hint">({c.id})</span>
                </label>
              </li>
            ))}
          </ul>
        </fieldset>
        <div class="grid">
          <label for="doc-kind">{t("kind")}</label>
          <input id="doc-kind" value={kind} maxLength={200} onInput={(e) => setKind(e.currentTarget.value)} />
          <label for="doc-reference">{t("reference")}</label>
          <input id="doc-reference" value={reference} maxLength={200} onInput={(e) => setReference(e.currentTarget.value)} />
        </div>
        <p>
          <label>
            <input type="checkbox" id="doc-new-version" checked={newVersion && reference !== ""} disabled={reference === ""} aria-describedby="doc-new-version-hint" onChange={(e) => setNewVersion(e.currentTarget.checked)} /> {t("newVersion")}
          </label>
          <br />
          <span id="doc-new-version-hint" class="hint">
            {t("newVersionHint")}
          </span>
        </p>
        <div
          class={`dropzone${dragging ? " dragging" : ""}`}
          data-testid="dropzone"
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => {
            e.preventDefault();
            setDragging(false);
            addFiles(e.dataTransfer?.files);
          }}
        >
          {t("dropHere")}{" "}
          <button type="button" class="link" onClick={() => fileInput.current?.click()}>
            {t("chooseFiles")}
          </button>
          <input ref={fileInput} id="doc-files" type="file" multiple hidden onChange={(e) => addFiles(e.currentTarget.files)} aria-label={t("chooseFiles")} />
          {files.length > 0 && (
            <ul>
              {files.map((f, i) => (
                <li key={i}>
                  {f.name} ({Math.ceil(f.size / 1024)} KB)
                </li>
              ))}
            </ul>
          )}
        </div>
        <ErrorText error={error} />
        <button type="submit">{t("send")}</button>
      </form>
      {items.length > 0 && (
        <Section title={t("sent")} id="sent">
          <table aria-live="polite">
            <TableHead columns={[t("file"), t("organisation"), t("progress"), t("state")]} />
            <tbody>
              {items.map((i) => (
                <tr key={i.key} data-state={i.state} data-file={i.file}>
                  <td>
                    {i.file}
                    {i.version && i.version > 1 ? <span class="hint"> ({t("versionNo", { n: i.version })})</span> : null}
                  </td>
                  <td>{all.find((c) => c.id === i.organisation)?.name ?? i.organisation}</td>
                  <td>
                    <progress max={1} value={i.progress} aria-label={`${t("progress")} ${i.file}`}>
                      {Math.round(i.progress * 100)} %
                    </progress>
                  </td>
                  <td class={`state state-${i.state}`}>
                    {t(stateKey[i.state] ?? "sReceived")}
                    {i.detail ? (
                      <>
                        {" – "}
                        {i.state === "rejected" ? `${t("signature")}: ` : ""}
                        <span class="detail">{i.detail}</span>
                      </>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </Section>
      )}
    </>
  );
}

export const documentsPage: Page = { path: "documents", title: "documents", scopes: ["admin", "staff", "drop"], component: Documents };
