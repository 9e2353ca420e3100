// The call link page for members (join.html?call=<id>): Element X shows no Jitsi widgets, so
// `!video` gives this link too. The member signs in with their Matrix account as staff sign in
// to the console (signin.ts: password, or single sign-on where the homeserver offers it); Kuvert
// checks the OpenID token and that the person is joined to the call's organisation room, and
// answers a join token. The page hands that to the call page (/call/#member) in this tab's
// session storage: the call page is the one allowed to frame Jitsi.
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, ApiError } from "./api.ts";
import type { GuestSession } from "../../../appservice/calls/service.ts";
import { I18n, initialLang, translator, useT, type Lang } from "./i18n.ts";
import { loadSettings, type Settings } from "./settings.ts";
import type { MatrixLogin } from "./signin.ts";
import { SignInForm } from "./signin-form.tsx";
import "./style.css";

const signin = () => import("./signin.ts");
const DEVICE = "Kuvert-Videoberatung";

const callId = new URLSearchParams(location.search).get("call") ?? "";

type Outcome = { kind: "refused"; title: string; text: string } | { kind: "checking" };

function handOver(session: GuestSession, lang: Lang): void {
  sessionStorage.setItem("kuvert.memberJoin", JSON.stringify(session));
  location.assign(`/call/?lang=${lang}#member`);
}

async function join(settings: Settings, login: MatrixLogin): Promise<GuestSession> {
  const { withOpenIdToken } = await signin();
  return withOpenIdToken(settings, login, (openid) => api<GuestSession>("POST", "/api/v1/member-link/session", { callId, ...openid }));
}

function Join(props: { settings: Settings; lang: Lang }) {
  const t = useT();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [sso, setSso] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);

  // Kuvert's answer: join, or a page that says why not.
  const finish = async (login: () => Promise<MatrixLogin>) => {
    let userId = "";
    try {
      const matrix = await login();
      userId = matrix.user_id;
      setOutcome({ kind: "checking" });
      handOver(await join(props.settings, matrix), props.lang);
    } catch (err) {
      const e = err as { errcode?: string; httpStatus?: number; message?: string };
      if (err instanceof ApiError) {
        if (err.errcode === "KUVERT_NOT_ROOM_MEMBER") setOutcome({ kind: "refused", title: t("joinNotMemberTitle"), text: t("joinNotMember", { user: userId }) });
        else if (err.errcode === "KUVERT_CALL_ENDED" || err.errcode === "KUVERT_NO_CALL") setOutcome({ kind: "refused", title: t("joinEndedTitle"), text: t("joinEnded") });
        else setOutcome({ kind: "refused", title: t("joinRefusedTitle"), text: err.message });
        return;
      }
      setOutcome(null);
      if (e.errcode === "M_FORBIDDEN" || e.httpStatus === 403) setError(t("wrongPassword"));
      else if (e.httpStatus === undefined) setError(t("homeserverDown"));
      else setError(e.message ?? String(err));
    }
  };

  useEffect(() => {
    void signin()
      .then((m) => m.ssoLink(props.settings, `${location.origin}${location.pathname}?call=${encodeURIComponent(callId)}`))
      .then(setSso);
    // Back from single sign-on: the homeserver added a login token to the address.
    const loginToken = new URLSearchParams(location.search).get("loginToken");
    if (loginToken) {
      history.replaceState(null, "", `${location.pathname}?call=${encodeURIComponent(callId)}`);
      void finish(async () => (await signin()).loginWithToken(props.settings, loginToken, DEVICE));
    }
  }, [props.settings]);

  const submit = async (user: string, password: string) => {
    setBusy(true);
    setError(null);
    await finish(async () => (await signin()).loginWithPassword(props.settings, user, password, DEVICE));
    setBusy(false);
  };

  if (!callId) {
    return (
      <main id="main" class="signin">
        <h1>{t("joinRefusedTitle")}</h1>
        <p role="alert" class="error">
          {t("joinNoCall")}
        </p>
      </main>
    );
  }
  if (outcome?.kind === "refused") {
    return (
      <main id="main" class="signin" data-state="refused">
        <h1>{outcome.title}</h1>
        <p role="alert" class="error">
          {outcome.text}
        </p>
        <button type="button" onClick={() => setOutcome(null)}>
          {t("joinOther")}
        </button>
      </main>
    );
  }
  return (
    <main id="main" class="signin">
      <h1>{t("joinTitle")}</h1>
      <p>{t("joinIntro")}</p>
      {outcome?.kind === "checking" && <p role="status">{t("joinChecking")}</p>}
      <SignInForm serverName={props.settings.serverName} submitLabel={t("joinButton")} busy={busy} error={error} sso={sso} onSubmit={(user, password) => void submit(user, password)} />
    </main>
  );
}

function App() {
  const [lang, setLang] = useState<Lang>(initialLang());
  const t = useMemo(() => translator(lang), [lang]);
  const [settings, setSettings] = useState<Settings | null>(null);
  const [fatal, setFatal] = useState<string | null>(null);
  useEffect(() => {
    loadSettings()
      .then((s) => {
        setSettings(s);
        setLang(initialLang(s.language));
      })
      .catch((err: unknown) => setFatal((err as Error).message));
  }, []);
  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = `${t("joinTitle")} – Kuvert`;
  }, [lang, t]);
  return (
    <I18n.Provider value={{ lang, t }}>
      <header class="top">
        <span class="brand">Kuvert</span>
        <div class="who">
          <label class="lang">
            {t("language")}{" "}
            <select value={lang} onChange={(e) => setLang((e.currentTarget as HTMLSelectElement).value as Lang)}>
              <option value="de">Deutsch</option>
              <option value="en">English</option>
            </select>
          </label>
        </div>
      </header>
      {fatal ? (
        <main id="main">
          <p role="alert" class="error">
            {t("error")}: {fatal}
          </p>
        </main>
      ) : settings ? (
        <Join settings={settings} lang={lang} />
      ) : (
        <main id="main">
          <p role="status">{t("loading")}</p>
        </main>
      )}
    </I18n.Provider>
  );
}

render(<App />, document.getElementById("app")!);
