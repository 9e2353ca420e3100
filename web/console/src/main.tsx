// The staff console: sign-in, then the pages the session's roles allow.
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, ApiError, whenSessionEnds, type Session } from "./api.ts";
import { I18n, initialLang, translator, useT, type Lang } from "./i18n.ts";
import { pages } from "./pages.ts";
import { SignInForm } from "./signin-form.tsx";
import { loadSettings, type Settings } from "./settings.ts";

const signin = () => import("./signin.ts");
import "./style.css";

function useHashPath(): string {
  const [path, setPath] = useState(location.hash.replace(/^#\/?/, ""));
  useEffect(() => {
    const on = () => setPath(location.hash.replace(/^#\/?/, ""));
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return path;
}

function LanguageSwitch(props: { lang: Lang; setLang: (l: Lang) => void }) {
  const t = useT();
  return (
    <label class="lang">
      {t("language")}{" "}
      <select value={props.lang} onChange={(e) => props.setLang((e.currentTarget as HTMLSelectElement).value as Lang)}>
        <option value="de">Deutsch</option>
        <option value="en">English</option>
      </select>
    </label>
  );
}

function SignIn(props: { settings: Settings; notice: string | null; onSignedIn: (s: Session) => void; onRefused: (userId: string) => void }) {
  const t = useT();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [sso, setSso] = useState<string | null>(null);
  useEffect(() => {
    void signin()
      .then((m) => m.ssoLink(props.settings))
      .then(setSso);
  }, [props.settings]);

  const fail = (err: unknown) => {
    if (err instanceof Error && err.name === "NotStaff") return props.onRefused((err as Error & { userId: string }).userId);
    const e = err as { errcode?: string; httpStatus?: number; message?: string };
    if (e.errcode === "M_FORBIDDEN" || e.httpStatus === 403) setError(t("wrongPassword"));
    else if (err instanceof ApiError) setError(err.message);
    else if (e.httpStatus === undefined) setError(t("homeserverDown"));
    else setError(e.message ?? String(err));
  };

  const submit = async (user: string, password: string) => {
    setBusy(true);
    setError(null);
    try {
      const { signInWithPassword } = await signin();
      props.onSignedIn(await signInWithPassword(props.settings, user, password));
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="signin">
      <h1>{t("signInTitle")}</h1>
      <p>{t("signInIntro")}</p>
      {props.notice && (
        <p class="notice" role="status">
          {props.notice}
        </p>
      )}
      <SignInForm serverName={props.settings.serverName} submitLabel={t("signIn")} busy={busy} error={error} sso={sso} onSubmit={(user, password) => void submit(user, password)} />
    </main>
  );
}

function Refused(props: { userId: string; back: () => void }) {
  const t = useT();
  return (
    <main id="main" class="signin">
      <h1>{t("notStaffTitle")}</h1>
      <p role="alert" class="error">
        {t("notStaff", { user: props.userId })}
      </p>
      <button type="button" onClick={props.back}>
        {t("notStaffBack")}
      </button>
    </main>
  );
}

function Shell(props: { session: Session; signOut: () => void; lang: Lang; setLang: (l: Lang) => void }) {
  const t = useT();
  const path = useHashPath();
  const visible = pages.filter((p) => p.scopes.some((s) => props.session.scopes.includes(s)));
  const current = visible.find((p) => p.path === path) ?? visible[0];
  useEffect(() => {
    document.title = current ? `${t(current.title)} – ${t("appName")}` : t("appName");
  }, [current, t]);
  const Component = current?.component;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById("main")?.focus())}>
        {t("skip")}
      </a>
      <header class="top">
        <span class="brand">{t("appName")}</span>
        <nav aria-label={t("appName")}>
          <ul>
            {visible.map((p) => (
              <li key={p.path}>
                <a href={`#/${p.path}`} aria-current={p === current ? "page" : undefined}>
                  {t(p.title)}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span>
            {t("signedInAs")} <strong>{props.session.userId}</strong> ({props.session.roles.join(", ")})
          </span>
          <LanguageSwitch lang={props.lang} setLang={props.setLang} />
          <button type="button" class="secondary" onClick={props.signOut}>
            {t("signOut")}
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {Component ? <Component key={current!.path} /> : <p>{t("noPages")}</p>}
      </main>
    </>
  );
}

/** The configured fallback language, once settings.json has been read. */
let configuredLang: Lang | undefined;

function App() {
  const [lang, setLangState] = useState<Lang>(initialLang());
  const t = useMemo(() => translator(lang), [lang]);
  const setLang = (l: Lang) => {
    localStorage.setItem("kuvert.lang", l);
    setLangState(l);
  };
  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);
  const [settings, setSettings] = useState<Settings | null>(null);
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [notice, setNotice] = useState<string | null>(null);
  const [refused, setRefused] = useState<string | null>(null);
  const [fatal, setFatal] = useState<string | null>(null);

  useEffect(() => {
    whenSessionEnds(() => {
      setSession(null);
      setNotice(translator(initialLang(configuredLang))("sessionEnded"));
    });
    void (async () => {
      try {
        const s = await loadSettings();
        setSettings(s);
        configuredLang = s.language;
        setLangState(initialLang(s.language));
        // Back from single sign-on: the homeserver added a login token to the address.
        const params = new URLSearchParams(location.search);
        const loginToken = params.get("loginToken");
        if (loginToken) {
          history.replaceState(null, "", location.pathname + location.hash);
          try {
            const { signInWithLoginToken } = await signin();
            setSession(await signInWithLoginToken(s, loginToken));
            return;
          } catch (err) {
            if (err instanceof Error && err.name === "NotStaff") setRefused((err as Error & { userId: string }).userId);
            else setNotice((err as Error).message);
          }
        }
        const current = await api<{ signedIn: boolean; ended?: boolean; session?: Session }>("GET", "/api/v1/session");
        if (current.ended) setNotice(translator(initialLang(s.language))("sessionEnded"));
        setSession(current.signedIn ? current.session! : null);
      } catch (err) {
        setFatal((err as Error).message);
      }
    })();
  }, []);

  const signOut = async () => {
    await api("DELETE", "/api/v1/session").catch(() => undefined);
    setSession(null);
    setNotice(null);
  };

  let body;
  if (fatal)
    body = (
      <main id="main">
        <p role="alert" class="error">
          {t("error")}: {fatal}
        </p>
      </main>
    );
  else if (session === undefined || !settings)
    body = (
      <main id="main">
        <p role="status">{t("loading")}</p>
      </main>
    );
  else if (!session) {
    body = (
      <>
        <header class="top">
          <span class="brand">{t("appName")}</span>
          <div class="who">
            <LanguageSwitch lang={lang} setLang={setLang} />
          </div>
        </header>
        {refused ? <Refused userId={refused} back={() => setRefused(null)} /> : <SignIn settings={settings} notice={notice} onSignedIn={(s) => (setNotice(null), setSession(s))} onRefused={setRefused} />}
      </>
    );
  } else body = <Shell session={session} signOut={signOut} lang={lang} setLang={setLang} />;
  return (
    <I18n.Provider value={{ lang, t }}>
      {body}
      {settings && (
        <footer class="site" data-testid="version">
          Kuvert {settings.version}
        </footer>
      )}
    </I18n.Provider>
  );
}

render(<App />, document.getElementById("app")!);
