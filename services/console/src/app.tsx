import { useState } from "preact/hooks";
import { ApiError, api, token } from "./api.js";
import { Link, useLocation } from "./router.js";
import { ErrorBox } from "./ui.js";
import { ProjectsPage } from "./pages/projects.js";
import { RunsPage } from "./pages/runs.js";
import { RunPage } from "./pages/run.js";
import { ApprovalsPage } from "./pages/approvals.js";
import { QueuesPage } from "./pages/queues.js";
import { SchedulesPage } from "./pages/schedules.js";
import { EventsPage } from "./pages/events.js";
import { DeadLettersPage } from "./pages/dead-letters.js";
import { NewRunPage } from "./pages/new-run.js";

const NAV = [
  ["/runs", "Runs"],
  ["/approvals", "Approvals"],
  ["/projects", "Projects"],
  ["/queues", "Queues"],
  ["/schedules", "Schedules"],
  ["/events", "Events"],
  ["/dead-letters", "Dead letters"],
] as const;

export function App() {
  const loc = useLocation();
  const [, setTick] = useState(0);
  const [menu, setMenu] = useState(false);
  const signedIn = token.get() !== null;
  const page = signedIn ? route(loc.path, loc.query) : <TokenForm onDone={() => setTick((t) => t + 1)} />;
  return (
    <div class="shell">
      <header class="top">
        <Link href="/runs" class="brand">
          Orchestrator
        </Link>
        <button type="button" class="menu-toggle" aria-expanded={menu} onClick={() => setMenu(!menu)}>
          Menu
        </button>
        <nav class={menu ? "open" : ""} onClick={() => setMenu(false)}>
          {NAV.map(([href, label]) => (
            <Link key={href} href={href} class={loc.path.startsWith(href) ? "active" : ""}>
              {label}
            </Link>
          ))}
          {signedIn ? (
            <button
              type="button"
              class="linkish"
              onClick={() => {
                token.clear();
                setTick((t) => t + 1);
              }}
            >
              Forget token
            </button>
          ) : null}
        </nav>
      </header>
      <main>{page}</main>
    </div>
  );
}

function route(path: string, q: URLSearchParams) {
  const m = /^\/runs\/([A-Za-z0-9_-]{1,128})\/?$/.exec(path);
  if (path === "/runs/new") return <NewRunPage />;
  // Keyed by the run: another run's page starts afresh (its own history and streams).
  if (m) return <RunPage key={m[1]} id={m[1]!} />;
  if (path === "/" || path === "/runs") return <RunsPage query={q} />;
  if (path === "/approvals") return <ApprovalsPage />;
  if (path === "/projects") return <ProjectsPage />;
  if (path === "/queues") return <QueuesPage />;
  if (path === "/schedules") return <SchedulesPage />;
  if (path === "/events") return <EventsPage />;
  if (path === "/dead-letters") return <DeadLettersPage />;
  return (
    <div class="card">
      <h1>Not found</h1>
      <p>
        Nothing at <code>{path}</code>. <Link href="/runs">See the runs</Link>.
      </p>
    </div>
  );
}

/**
 * The API token, entered once: checked against the gateway, then kept in this browser's
 * localStorage. A gateway without a token (auth off) accepts an empty one.
 */
function TokenForm({ onDone }: { onDone: () => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="card token-form"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(undefined);
        token.set(value);
        try {
          await api.get("/projects");
          setValue("");
          onDone();
        } catch (err) {
          token.clear();
          setError(err as ApiError);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h1>Sign in</h1>
      <p>
        Enter the gateway's API token (<code>ORCH_API_TOKEN</code>). It is kept in this browser only and sent with every request; leave it empty when the
        gateway runs without one.
      </p>
      <label>
        API token
        <input type="password" name="token" autoComplete="current-password" value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
      </label>
      <ErrorBox error={error} title="The gateway refused it" />
      <button type="submit" class="btn btn-primary" disabled={busy}>
        {busy ? "Checking…" : "Save token"}
      </button>
    </form>
  );
}
