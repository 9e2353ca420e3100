// Small shared pieces of the pages.
import type { ComponentChildren } from "preact";
import { ApiError } from "./api.ts";
import { useT, type T } from "./i18n.ts";

export function ErrorText(props: { error: string | null }) {
  if (!props.error) return null;
  return (
    <p class="error" role="alert">
      {props.error}
    </p>
  );
}

export function Notice(props: { text: string | null }) {
  return (
    <p class="notice" role="status" hidden={!props.text}>
      {props.text}
    </p>
  );
}

export function Section(props: { title: string; children: ComponentChildren; id?: string }) {
  const id = props.id ?? props.title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return (
    <section aria-labelledby={id}>
      <h2 id={id}>{props.title}</h2>
      {props.children}
    </section>
  );
}

/**
 * What went wrong, for a person. Kuvert's refusals (4xx) say what to change in their own words;
 * an outage or an internal error is said in the console's language, with the code for support.
 */
export function message(err: unknown, t: T): string {
  if (err instanceof ApiError) {
    if (err.status === 0) return t("unreachable");
    if (err.status === 503 || err.errcode === "KUVERT_UNAVAILABLE") return `${t("unavailable")} (${err.errcode})`;
    if (err.status >= 500) return `${t("serverError", { status: err.status })} (${err.errcode})`;
    if (err.status === 429) return t("rateLimited");
  }
  return err instanceof Error ? err.message : String(err);
}

/** A page's data on its way: a status whose name says what is being loaded. */
export function Loading(props: { text: string }) {
  return (
    <p class="loading" role="status" aria-label={props.text}>
      {props.text}
    </p>
  );
}

/** A page's data could not be loaded: what and why, and a button to try again. */
export function LoadError(props: { error: string | null; retry: () => void }) {
  const t = useT();
  if (!props.error) return null;
  return (
    <div class="load-error">
      <p class="error" role="alert">
        {props.error}
      </p>
      <button type="button" class="secondary" onClick={props.retry}>
        {t("tryAgain")}
      </button>
    </div>
  );
}

/**
 * A table's column headings. `hidden` names a last column of buttons whose heading only screen
 * readers hear (it needs a name, but says nothing a sighted person needs).
 */
export function TableHead(props: { columns: string[]; hidden?: string }) {
  return (
    <thead>
      <tr>
        {props.columns.map((c) => (
          <th scope="col" key={c}>
            {c}
          </th>
        ))}
        {props.hidden !== undefined && (
          <th scope="col">
            <span class="visually-hidden">{props.hidden}</span>
          </th>
        )}
      </tr>
    </thead>
  );
}
