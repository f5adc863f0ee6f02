/** HTML escaping for server-rendered pages: every interpolated value goes through `escapeHtml`. */
const ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
}

export const escapeHtml = (value: unknown): string =>
  String(value ?? "").replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c)

/** Tagged template that escapes interpolations unless they are already `Html`. */
export class Html {
  readonly value: string
  constructor(value: string) {
    this.value = value
  }
  toString(): string {
    return this.value
  }
}

export const html = (strings: TemplateStringsArray, ...values: ReadonlyArray<unknown>): Html =>
  new Html(
    strings.reduce((out, chunk, i) => {
      if (i === 0) return chunk
      const value = values[i - 1]
      const rendered = Array.isArray(value)
        ? value.map((v) => (v instanceof Html ? v.value : escapeHtml(v))).join("")
        : value instanceof Html
          ? value.value
          : escapeHtml(value)
      return out + rendered + chunk
    }, ""),
  )
