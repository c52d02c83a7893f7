/**
 * Request headers as Node and fastify give them (`IncomingHttpHeaders`: lowercase names, a value or a
 * list of values), or any record of them with names in whatever case.
 */
export type HeaderValue = string | readonly string[] | undefined;
export type WebhookHeaders = Readonly<Record<string, HeaderValue>>;

/** Every value sent for a header, the name matched without regard to case. */
export function headerValues(headers: WebhookHeaders, name: string): readonly string[] {
  const want = name.toLowerCase();
  let v: HeaderValue = Object.hasOwn(headers, want) ? headers[want] : undefined;
  if (v === undefined) {
    for (const k of Object.keys(headers)) {
      if (k.toLowerCase() === want) {
        v = headers[k];
        break;
      }
    }
  }
  if (v === undefined) return [];
  return typeof v === "string" ? [v] : v.filter((x): x is string => typeof x === "string");
}

/** A header's first non-empty value (trimmed), or `undefined` when it was not sent or is blank. */
export function header(headers: WebhookHeaders, name: string): string | undefined {
  for (const v of headerValues(headers, name)) {
    const t = v.trim();
    if (t !== "") return t;
  }
  return undefined;
}
