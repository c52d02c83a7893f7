import { api } from "../api.js";
import { useLoad } from "../hooks.js";
import { Link } from "../router.js";
import type { Page, Project } from "../types.js";
import { Empty, ErrorBox, Section, When } from "../ui.js";

/** Projects: where their repositories are and where their pull requests go (tokens are never shown). */
export function ProjectsPage() {
  const projects = useLoad(() => api.get<Page<Project>>("/projects"), []);
  return (
    <Section title="Projects">
      <ErrorBox error={projects.error} />
      {projects.data?.items.length === 0 ? <Empty>No projects yet.</Empty> : null}
      <div class="grid">
        {(projects.data?.items ?? []).map((p) => (
          <article key={p.id} class="tile" data-project={p.id}>
            <h3>
              <Link href={`/runs?projectId=${p.id}`}>{p.name}</Link>
            </h3>
            <dl class="facts small">
              <dt>Id</dt>
              <dd>
                <code>{p.id}</code>
                {p.alias ? <span class="muted"> (#{p.alias})</span> : null}
              </dd>
              {p.gitUrl ? (
                <>
                  <dt>Git</dt>
                  <dd>
                    <code>{p.gitUrl}</code>
                  </dd>
                </>
              ) : null}
              {p.localPath ? (
                <>
                  <dt>Checkout</dt>
                  <dd>
                    <code>{p.localPath}</code>
                  </dd>
                </>
              ) : null}
              <dt>Base</dt>
              <dd>{p.baseBranch ?? "main"}</dd>
              {p.forge ? (
                <>
                  <dt>Forge</dt>
                  <dd>
                    {p.forge.provider} <code>{p.forge.repository}</code>
                  </dd>
                </>
              ) : null}
              <dt>Own token</dt>
              <dd>{p.hasToken ? "yes" : "no"}</dd>
              <dt>Created</dt>
              <dd>
                <When at={p.createdAt} />
              </dd>
            </dl>
          </article>
        ))}
      </div>
    </Section>
  );
}
