import { useState } from "preact/hooks";
import { ApiError, api } from "../api.js";
import { useLoad } from "../hooks.js";
import { navigate } from "../router.js";
import type { Definition, Page, Project, Run } from "../types.js";
import { ErrorBox, Section } from "../ui.js";

/** Starts a run of a definition (`POST /api/v1/runs`): its project, title, labels and input. */
export function NewRunPage() {
  const defs = useLoad(() => api.get<Page<Definition>>("/definitions"), []);
  const projects = useLoad(() => api.get<Page<Project>>("/projects"), []);
  const [definition, setDefinition] = useState("speckit.specify");
  const [projectId, setProjectId] = useState("");
  const [title, setTitle] = useState("");
  const [input, setInput] = useState('{\n  "feature_description": ""\n}');
  const [labels, setLabels] = useState("");
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  const ids = [...new Set((defs.data?.items ?? []).map((d) => d.id))];

  return (
    <Section title="New run">
      <form
        class="stack-form"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(undefined);
          let parsed: Record<string, unknown>;
          try {
            parsed = input.trim() ? (JSON.parse(input) as Record<string, unknown>) : {};
          } catch (err) {
            setError(new ApiError(0, "BAD_INPUT", `Input is not JSON: ${(err as Error).message}`));
            return;
          }
          const lab: Record<string, string> = {};
          for (const part of labels
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean)) {
            const i = part.indexOf(":");
            if (i <= 0) {
              setError(new ApiError(0, "BAD_INPUT", `Label '${part}' is not key:value`));
              return;
            }
            lab[part.slice(0, i)] = part.slice(i + 1);
          }
          setBusy(true);
          try {
            const run = await api.post<Run & { accepted?: true }>("/runs", {
              definition,
              ...(projectId ? { projectId } : {}),
              ...(title ? { title } : {}),
              ...(Object.keys(lab).length ? { labels: lab } : {}),
              input: parsed,
            });
            navigate(`/runs/${run.id}${run.accepted ? "?accepted=1" : ""}`);
          } catch (err) {
            setError(err as ApiError);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label>
          Definition
          <select name="definition" value={definition} onChange={(e) => setDefinition((e.target as HTMLSelectElement).value)}>
            {(ids.length ? ids : [definition]).map((d) => (
              <option key={d} value={d}>
                {d}
              </option>
            ))}
          </select>
        </label>
        <label>
          Project
          <select name="projectId" value={projectId} onChange={(e) => setProjectId((e.target as HTMLSelectElement).value)}>
            <option value="">_default</option>
            {(projects.data?.items ?? []).map((p) => (
              <option key={p.id} value={p.id}>
                {p.name} ({p.id})
              </option>
            ))}
          </select>
        </label>
        <label>
          Title
          <input name="title" value={title} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Labels <span class="muted small">(key:value, comma separated)</span>
          <input name="labels" value={labels} onInput={(e) => setLabels((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Input <span class="muted small">(JSON)</span>
          <textarea name="input" rows={6} value={input} onInput={(e) => setInput((e.target as HTMLTextAreaElement).value)} />
        </label>
        <ErrorBox error={error} title="Not started" />
        <button type="submit" class="btn btn-primary" disabled={busy}>
          {busy ? "Starting…" : "Start run"}
        </button>
      </form>
    </Section>
  );
}
