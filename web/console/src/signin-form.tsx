// The Matrix sign-in form of the console and of the members' call link page: one form, each page
// says what signing in leads to (its button) and what happens with the account.
import { useState } from "preact/hooks";
import { useT } from "./i18n.ts";

export function SignInForm(props: { serverName: string; submitLabel: string; busy: boolean; error: string | null; sso: string | null; onSubmit: (user: string, password: string) => void }) {
  const t = useT();
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const submit = (ev: Event) => {
    ev.preventDefault();
    props.onSubmit(user, password);
  };
  return (
    <>
      <form onSubmit={submit}>
        <label for="user">{t("user")}</label>
        <input id="user" name="user" autocomplete="username" required value={user} onInput={(e) => setUser(e.currentTarget.value)} placeholder={`@name:${props.serverName}`} />
        <label for="password">{t("password")}</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        {props.error && (
          <p class="error" role="alert">
            {props.error}
          </p>
        )}
        <button type="submit" disabled={props.busy}>
          {props.busy ? t("signingIn") : props.submitLabel}
        </button>
      </form>
      {props.sso && (
        <p>
          <a href={props.sso}>{t("sso")}</a>
        </p>
      )}
    </>
  );
}
