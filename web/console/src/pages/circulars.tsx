// Circulars (staff, admin): compose one message for many organisations (Markdown with a live
// preview rendered by the same code the server sends to the rooms), choose the targets (all, a
// tag, or by hand), attach files, send now or at a time; then watch the delivery per organisation
// as it moves, cancel a scheduled circular, or correct a sent one.
import { useContext, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, poll, type CircularState, type CircularStatus as Circular, type OrganisationChoice as Choice, type Targets } from "../api.ts";
import { I18n, formatTime, useT, type TextKey } from "../i18n.ts";
import type { Page } from "../page.ts";
import { ErrorText, LoadError, Loading, Notice, Section, TableHead, message } from "../ui.tsx";

/** A notice kept as its text key, so that it follows a change of language. */
interface Said {
  key: TextKey;
  vars: Record<string, string>;
}

const circularState: Record<CircularState, TextKey> = {
  scheduled: "cScheduled",
  scanning: "cScanning",
  sending: "cSending",
  sent: "cSent",
  cancelled: "cCancelled",
  stopped: "cStopped",
};
const deliveryState: Record<string, TextKey> = { pending: "dPending", delivered: "dDelivered", failed: "dFailed" };
const finalStates = new Set<CircularState>(["sent", "cancelled", "stopped"]);

/** The server's own Markdown rendering (marked, sanitised to Matrix's HTML subset), loaded when first needed. */
type Render = (markdown: string) => { html: string };
let renderer: Promise<Render> | null = null;
const loadRenderer = () => (renderer ??= import("../../../../appservice/circulars/markdown.ts").then((m) => m.renderMarkdown));

/** What the rooms will show for `text`. The HTML is sanitised to the Matrix subset before it is shown. */
function Preview(props: { text: string; id: string }) {
  const t = useT();
  const [html, setHtml] = useState("");
  useEffect(() => {
    let live = true;
    void loadRenderer().then((render) => live && setHtml(props.text.trim() ? render(props.text).html : ""));
    return () => {
      live = false;
    };
  }, [props.text]);
  return (
    <div class="preview-box">
      <h3 id={`${props.id}-title`}>{t("preview")}</h3>
      {html ? (
        <div class="preview" id={props.id} role="region" aria-labelledby={`${props.id}-title`} data-testid={props.id} dangerouslySetInnerHTML={{ __html: html }} />
      ) : (
        <div class="preview empty" id={props.id} data-testid={props.id}>
          <p class="hint">{t("previewEmpty")}</p>
        </div>
      )}
    </div>
  );
}

/** The first line of a circular, without Markdown's heading marks: how the list names it. */
const titleOf = (text: string) => {
  const first = (text.split("\n").find((l) => l.trim()) ?? "").replace(/^#+\s*/, "").trim();
  return first.length > 70 ? `${first.slice(0, 69)}…` : first;
};

function useTargetsText(choices: Choice[]) {
  const t = useT();
  return (targets: Targets) => {
    if ("all" in targets) return t("targetAll");
    if ("tag" in targets) return t("targetTagIs", { tag: targets.tag });
    const names = targets.organisations.map((id) => choices.find((c) => c.id === id)?.name ?? id);
    return names.length <= 3 ? names.join(", ") : t("targetCount", { n: names.length });
  };
}

function Compose(props: { choices: Choice[]; onCreated: (c: Circular) => void }) {
  const t = useT();
  const [text, setText] = useState("");
  const [mode, setMode] = useState<"all" | "tag" | "pick">("tag");
  const [tag, setTag] = useState("");
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [filter, setFilter] = useState("");
  const [files, setFiles] = useState<File[]>([]);
  const [later, setLater] = useState(false);
  const [when, setWhen] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const zone = useMemo(() => Intl.DateTimeFormat().resolvedOptions().timeZone, []);
  const active = props.choices;
  const tags = useMemo(() => [...new Set(active.flatMap((c) => c.tags))].sort(), [active]);
  useEffect(() => {
    if (!tag && tags.length > 0) setTag(tags[0]!);
    if (tags.length === 0 && mode === "tag") setMode("all");
  }, [tags]);

  const reached = mode === "all" ? active.length : mode === "tag" ? active.filter((c) => c.tags.includes(tag)).length : picked.size;
  const visible = active.filter((c) => !filter || `${c.id} ${c.name} ${c.tags.join(" ")}`.toLowerCase().includes(filter.toLowerCase()));
  const toggle = (id: string) =>
    setPicked((p) => {
      const n = new Set(p);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });

  const send = async (ev: Event) => {
    ev.preventDefault();
    setError(null);
    if (!text.trim()) return setError(t("textMissing"));
    if (mode === "pick" && picked.size === 0) return setError(t("nothingPickedCircular"));
    if (later && !when) return setError(t("whenMissing"));
    const targets: Targets = mode === "all" ? { all: true } : mode === "tag" ? { tag } : { organisations: [...picked] };
    const scheduledAt = later ? new Date(when).toISOString() : undefined;
    setBusy(true);
    try {
      let created: Circular;
      if (files.length > 0) {
        const form = new FormData();
        form.append("text", text);
        form.append("targets", JSON.stringify(targets));
        if (scheduledAt) form.append("scheduledAt", scheduledAt);
        for (const f of files) form.append("attachment", f, f.name);
        created = await api<Circular>("POST", "/api/v1/circulars", form);
      } else {
        created = await api<Circular>("POST", "/api/v1/circulars", { text, targets, ...(scheduledAt ? { scheduledAt } : {}) });
      }
      setText("");
      setFiles([]);
      setLater(false);
      setWhen("");
      setPicked(new Set());
      props.onCreated(created);
    } catch (err) {
      setError(message(err, t));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Section title={t("newCircular")} id="new-circular">
      {/* A message about what was wrong goes once the person changes something. */}
      <form onSubmit={send} onInput={() => error && setError(null)} onChange={() => error && setError(null)}>
        <div class="compose">
          <div>
            <label for="circular-text" class="block">
              {t("circularText")} <span class="hint">({t("markdownHint")})</span>
            </label>
            <textarea id="circular-text" rows={12} maxLength={20000} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          </div>
          <Preview text={text} id="circular-preview" />
        </div>
        <fieldset>
          <legend>{t("targets")}</legend>
          <div class="radios">
            <label>
              <input type="radio" name="targets" value="all" checked={mode === "all"} onChange={() => setMode("all")} /> {t("targetAll")}
            </label>
            <label>
              <input type="radio" name="targets" value="tag" checked={mode === "tag"} disabled={tags.length === 0} onChange={() => setMode("tag")} /> {t("targetTag")}
            </label>
            <label>
              <input type="radio" name="targets" value="pick" checked={mode === "pick"} onChange={() => setMode("pick")} /> {t("targetPick")}
            </label>
          </div>
          {mode === "tag" && (
            <p>
              <label for="circular-tag">{t("tag")}</label>{" "}
              <select id="circular-tag" value={tag} onChange={(e) => setTag(e.currentTarget.value)}>
                {tags.map((g) => (
                  <option key={g} value={g}>
                    {g}
                  </option>
                ))}
              </select>
            </p>
          )}
          {mode === "pick" && (
            <>
              <label for="circular-filter" class="block">
                {t("filterOrganisations")}
              </label>
              <input id="circular-filter" type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
              <ul class="choices">
                {visible.map((c) => (
                  <li key={c.id}>
                    <label>
                      <input type="checkbox" checked={picked.has(c.id)} onChange={() => toggle(c.id)} /> {c.name} <span class="hint">({c.id})</span>
                    </label>
                  </li>
                ))}
              </ul>
            </>
          )}
          <p class="hint" role="status" data-testid="reached">
            {t("reached", { n: reached })}
          </p>
        </fieldset>
        <fieldset>
          <legend>{t("attachments")}</legend>
          <input
            ref={fileInput}
            id="circular-files"
            type="file"
            multiple
            class="visually-hidden"
            tabIndex={-1}
            aria-label={t("addAttachments")}
            onChange={(e) => {
              const list = e.currentTarget.files;
              if (list) setFiles((f) => [...f, ...Array.from(list)]);
              e.currentTarget.value = "";
            }}
          />
          <button type="button" class="secondary" onClick={() => fileInput.current?.click()}>
            {t("addAttachments")}
          </button>
          {files.length === 0 ? (
            <p class="hint">{t("noAttachments")}</p>
          ) : (
            <ul class="files">
              {files.map((f, i) => (
                <li key={`${i}-${f.name}`}>
                  {f.name} <span class="hint">({Math.ceil(f.size / 1024)} KB)</span>{" "}
                  <button type="button" class="link" aria-label={`${t("remove")}: ${f.name}`} onClick={() => setFiles((list) => list.filter((_, j) => j !== i))}>
                    {t("remove")}
                  </button>
                </li>
              ))}
            </ul>
          )}
        </fieldset>
        <fieldset>
          <legend>{t("when")}</legend>
          <div class="radios">
            <label>
              <input type="radio" name="when" checked={!later} onChange={() => setLater(false)} /> {t("sendNow")}
            </label>
            <label>
              <input type="radio" name="when" checked={later} onChange={() => setLater(true)} /> {t("sendLater")}
            </label>
          </div>
          {later && (
            <p>
              <label for="circular-when">{t("whenAt", { zone })}</label> <input id="circular-when" type="datetime-local" required value={when} onInput={(e) => setWhen(e.currentTarget.value)} />
            </p>
          )}
        </fieldset>
        <ErrorText error={error} />
        <button type="submit" disabled={busy}>
          {later ? t("scheduleCircular") : t("sendCircular")}
        </button>
      </form>
    </Section>
  );
}

function Detail(props: { id: string; choices: Choice[]; onChanged: () => void }) {
  const t = useT();
  const { lang } = useContext(I18n);
  const [c, setC] = useState<Circular | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<Said | null>(null);
  const [correction, setCorrection] = useState("");
  const [busy, setBusy] = useState(false);
  const targetsText = useTargetsText(props.choices);
  const nameOf = (id: string) => props.choices.find((o) => o.id === id)?.name ?? id;
  const path = `/api/v1/circulars/${encodeURIComponent(props.id)}`;

  const load = async (background = false) => {
    try {
      setC(await (background ? poll<Circular>(path) : api<Circular>("GET", path)));
    } catch (err) {
      setError(message(err, t));
    }
  };
  // Live while anything moves: every 2 s until the circular and its corrections are done.
  const moving = c === null || !finalStates.has(c.state) || c.summary.pending > 0 || c.corrections.some((r) => r.summary.pending > 0);
  useEffect(() => {
    void load();
  }, [props.id]);
  useEffect(() => {
    const timer = setInterval(() => void load(true), moving ? 2000 : 15_000);
    return () => clearInterval(timer);
  }, [props.id, moving]);

  const cancel = async () => {
    if (!confirm(t("cancelConfirm"))) return;
    setError(null);
    try {
      setC(await api<Circular>("POST", `${path}/cancel`));
      setNotice({ key: "cancelledNotice", vars: {} });
      props.onChanged();
    } catch (err) {
      setError(message(err, t));
    }
  };

  const correct = async (ev: Event) => {
    ev.preventDefault();
    setError(null);
    if (!correction.trim()) return setError(t("textMissing"));
    setBusy(true);
    try {
      const r = await api<{ revision: number; rooms: number; circular: Circular }>("POST", `${path}/corrections`, { text: correction });
      setC(r.circular);
      setCorrection("");
      setNotice({ key: "correctionSent", vars: { n: String(r.rooms) } });
    } catch (err) {
      setError(message(err, t));
    } finally {
      setBusy(false);
    }
  };

  if (!c) return <ErrorText error={error} />;
  const total = c.summary.pending + c.summary.delivered + c.summary.failed;
  return (
    <Section title={t("circularDetail", { title: titleOf(c.text) })} id="circular-detail">
      <dl class="facts">
        <dt>{t("state")}</dt>
        <dd class={`cstate cstate-${c.state}`} data-testid="circular-state">
          {t(circularState[c.state])}
          {c.reason ? ` – ${c.reason}` : ""}
        </dd>
        <dt>{t("targets")}</dt>
        <dd>{targetsText(c.targets)}</dd>
        <dt>{t("author")}</dt>
        <dd>
          {c.author}, {formatTime(c.createdAt, lang)}
        </dd>
        {c.scheduledAt && (
          <>
            <dt>{t("scheduledFor")}</dt>
            <dd>{formatTime(c.scheduledAt, lang)}</dd>
          </>
        )}
        {c.attachments.length > 0 && (
          <>
            <dt>{t("attachments")}</dt>
            <dd>
              <ul class="files">
                {c.attachments.map((a) => (
                  <li key={a.filename}>
                    {a.filename} <span class="hint">({Math.ceil(a.size / 1024)} KB)</span> –{" "}
                    <span class={a.verdict === "clean" ? "ok" : a.verdict ? "error" : undefined}>{a.verdict === "clean" ? t("verdictClean") : a.verdict ? `${t("verdictBad")}${a.signature ? `: ${a.signature}` : ""}` : t("verdictPending")}</span>
                  </li>
                ))}
              </ul>
            </dd>
          </>
        )}
      </dl>
      <Notice text={notice && t(notice.key, notice.vars as Record<string, string>)} />
      <ErrorText error={error} />
      {(c.state === "scheduled" || c.state === "scanning") && (
        <div class="actions">
          <button type="button" class="danger" onClick={() => void cancel()}>
            {t("cancelCircular")}
          </button>
        </div>
      )}
      <h3 id="deliveries-title">{t("deliveries")}</h3>
      <p data-testid="delivery-summary">
        <progress max={Math.max(total, 1)} value={c.summary.delivered + c.summary.failed} aria-labelledby="deliveries-title" /> {t("summaryText", { delivered: c.summary.delivered, failed: c.summary.failed, pending: c.summary.pending })}
      </p>
      <table class="deliveries" aria-labelledby="deliveries-title">
        <TableHead columns={[t("organisation"), t("state"), t("deliveredAt"), t("reason")]} />
        <tbody>
          {(c.deliveries ?? []).map((d) => (
            <tr key={d.organisationId} data-organisation={d.organisationId} data-state={d.state}>
              <td>
                {nameOf(d.organisationId)} <span class="hint">({d.organisationId})</span>
              </td>
              <td class={`state state-${d.state === "delivered" ? "delivered" : d.state}`}>{t(deliveryState[d.state] ?? "dPending")}</td>
              <td>{d.deliveredAt ? formatTime(d.deliveredAt, lang) : "–"}</td>
              <td>{d.reason ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {c.corrections.length > 0 && (
        <>
          <h3>{t("corrections")}</h3>
          <ul class="corrections">
            {c.corrections.map((r) => (
              <li key={r.revision} data-revision={r.revision}>
                <strong>{t("correctionNo", { n: r.revision })}</strong> – {r.author}, {formatTime(r.createdAt, lang)}: {t("summaryText", { delivered: r.summary.delivered, failed: r.summary.failed, pending: r.summary.pending })}
              </li>
            ))}
          </ul>
        </>
      )}
      {c.state === "sent" && (
        <form onSubmit={correct}>
          <h3>{t("sendCorrection")}</h3>
          <p class="hint">{t("correctionIntro")}</p>
          <div class="compose">
            <div>
              <label for="correction-text" class="block">
                {t("correctionText")}
              </label>
              <textarea id="correction-text" rows={8} maxLength={20000} value={correction} onInput={(e) => setCorrection(e.currentTarget.value)} />
            </div>
            <Preview text={correction} id="correction-preview" />
          </div>
          <button type="submit" disabled={busy}>
            {t("sendCorrection")}
          </button>
        </form>
      )}
    </Section>
  );
}

function Circulars() {
  const t = useT();
  const { lang } = useContext(I18n);
  const [choices, setChoices] = useState<Choice[]>([]);
  const [list, setList] = useState<Circular[] | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<Said | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const targetsText = useTargetsText(choices);

  const load = async (background = false) => {
    try {
      const r = await (background ? poll<{ circulars: Circular[] }>("/api/v1/circulars?limit=50") : api<{ circulars: Circular[] }>("GET", "/api/v1/circulars?limit=50"));
      setList(r.circulars);
      setLoadError(null);
    } catch (err) {
      setLoadError(`${t("failCirculars")} ${message(err, t)}`);
    }
  };
  const loadChoices = () =>
    api<{ organisations: Choice[] }>("GET", "/api/v1/console/organisations")
      .then((r) => setChoices(r.organisations.filter((o) => o.state === "active")))
      .catch((e) => setError(`${t("failOrganisations")} ${message(e, t)}`));
  useEffect(() => {
    void loadChoices();
    void load();
    const timer = setInterval(() => void load(true), 5000);
    return () => clearInterval(timer);
  }, []);

  const created = (c: Circular) => {
    setNotice({ key: c.state === "scheduled" && c.scheduledAt ? "circularScheduled" : "circularCreated", vars: { id: c.id, time: formatTime(c.scheduledAt, lang) } });
    setSelected(c.id);
    void load();
  };

  return (
    <>
      <h1>{t("circulars")}</h1>
      <ErrorText error={error} />
      <Compose choices={choices} onCreated={created} />
      <Notice text={notice && t(notice.key, notice.vars)} />
      {selected && <Detail key={selected} id={selected} choices={choices} onChanged={() => void load()} />}
      <Section title={t("circularList")} id="circular-list">
        <LoadError error={loadError} retry={() => void load()} />
        {list === null ? (
          !loadError && <Loading text={t("loadingCirculars")} />
        ) : list.length === 0 ? (
          <p>{t("noCirculars")}</p>
        ) : (
          <table class="circulars">
            <TableHead columns={[t("createdAt"), t("circularTitle"), t("targets"), t("state"), t("deliveries")]} hidden={t("actions")} />
            <tbody>
              {list.map((c) => (
                <tr key={c.id} data-circular={c.id} aria-selected={c.id === selected ? "true" : undefined}>
                  <td>{formatTime(c.createdAt, lang)}</td>
                  <td>{titleOf(c.text)}</td>
                  <td>{targetsText(c.targets)}</td>
                  <td class={`cstate cstate-${c.state}`}>{t(circularState[c.state])}</td>
                  <td>{t("summaryShort", { delivered: c.summary.delivered, total: c.summary.delivered + c.summary.failed + c.summary.pending, failed: c.summary.failed })}</td>
                  <td>
                    <button type="button" class="secondary small" aria-label={`${t("showCircular")}: ${titleOf(c.text)}`} onClick={() => setSelected(c.id)}>
                      {t("showCircular")}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
    </>
  );
}

export const circularsPage: Page = { path: "circulars", title: "circulars", scopes: ["admin", "staff"], component: Circulars };
