// Small shared pieces of the pages.
import type { ComponentChildren } from "preact";

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

export const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

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
