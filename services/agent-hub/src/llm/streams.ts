/**
 * Readers for the two streaming formats model servers use: newline-delimited JSON (Ollama) and
 * Server-Sent Events (OpenAI-compatible servers). Both yield as bytes arrive, so a caller sees
 * every piece the moment the server sends it; a dropped connection surfaces as the body's read
 * error, which the caller turns into a broken-stream failure.
 */

/** Yields each line of `body` (without its `\n`, `\r\n` tolerated), the last one even without a newline. */
export async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        yield line.endsWith("\r") ? line.slice(0, -1) : line;
      }
    }
    buf += decoder.decode();
    if (buf.length > 0) yield buf;
  } finally {
    // A consumer that stopped early (or a read that failed) leaves the body open: cancel it so the
    // connection is released rather than kept for a response nobody reads.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/**
 * Yields the `data` of each Server-Sent Event (several `data:` lines joined with `\n`); comments,
 * `event:`, `id:` and `retry:` lines are skipped.
 */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let data: string[] = [];
  for await (const line of lines(body)) {
    if (line === "") {
      if (data.length > 0) yield data.join("\n");
      data = [];
    } else if (line.startsWith("data:")) {
      data.push(line.slice(5).replace(/^ /, ""));
    }
  }
  if (data.length > 0) yield data.join("\n");
}
