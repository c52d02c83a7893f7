import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { buildSchema, graphql, GraphQLError } from "graphql";
import { FakeTrackerServer, type RecordedTrackerRequest } from "./http.js";

/**
 * A local Linear: its GraphQL endpoint, executing each request with graphql-js against the part of
 * Linear's published schema the clients use (types, fields, arguments and input types as Linear
 * names them), so a query with a field or argument Linear does not have fails here as it would
 * there. Auth as Linear's personal API keys: `Authorization: <key>`. State in memory: one team with
 * its workflow states, issues with labels, comments and attachments (one per issue and URL).
 */

export const LINEAR_SCHEMA_SUBSET = /* GraphQL */ `
  scalar DateTime
  enum PaginationOrderBy {
    createdAt
    updatedAt
  }
  input BooleanComparator {
    eq: Boolean
    neq: Boolean
  }
  input IDComparator {
    eq: ID
    neq: ID
    in: [ID!]
    nin: [ID!]
  }
  input StringComparator {
    eq: String
    neq: String
    in: [String!]
    nin: [String!]
    eqIgnoreCase: String
    contains: String
  }
  input NullableUserFilter {
    id: IDComparator
    isMe: BooleanComparator
    null: Boolean
  }
  input WorkflowStateFilter {
    id: IDComparator
    name: StringComparator
    type: StringComparator
  }
  input IssueLabelFilter {
    name: StringComparator
  }
  input IssueLabelCollectionFilter {
    some: IssueLabelFilter
  }
  input IssueFilter {
    assignee: NullableUserFilter
    state: WorkflowStateFilter
    labels: IssueLabelCollectionFilter
    and: [IssueFilter!]
    or: [IssueFilter!]
  }
  type User {
    id: ID!
    name: String!
    displayName: String!
  }
  type WorkflowState {
    id: ID!
    name: String!
    type: String!
  }
  type WorkflowStateConnection {
    nodes: [WorkflowState!]!
  }
  type Team {
    id: ID!
    key: String!
    name: String!
    states(first: Int): WorkflowStateConnection!
  }
  type IssueLabel {
    id: ID!
    name: String!
  }
  type IssueLabelConnection {
    nodes: [IssueLabel!]!
  }
  type Comment {
    id: ID!
    body: String!
    createdAt: DateTime!
  }
  type CommentConnection {
    nodes: [Comment!]!
  }
  type Attachment {
    id: ID!
    url: String!
    title: String!
  }
  type AttachmentConnection {
    nodes: [Attachment!]!
  }
  type Issue {
    id: ID!
    identifier: String!
    title: String!
    description: String
    url: String!
    updatedAt: DateTime!
    state: WorkflowState!
    labels(first: Int): IssueLabelConnection!
    assignee: User
    team: Team!
    comments(first: Int): CommentConnection!
    attachments(first: Int): AttachmentConnection!
  }
  type IssueConnection {
    nodes: [Issue!]!
  }
  input IssueUpdateInput {
    stateId: String
    title: String
    description: String
  }
  input CommentCreateInput {
    id: String
    issueId: String
    body: String
  }
  input AttachmentCreateInput {
    id: String
    title: String!
    subtitle: String
    url: String!
    issueId: String!
  }
  type IssuePayload {
    success: Boolean!
    issue: Issue
    lastSyncId: Float!
  }
  type CommentPayload {
    success: Boolean!
    comment: Comment!
    lastSyncId: Float!
  }
  type AttachmentPayload {
    success: Boolean!
    attachment: Attachment!
    lastSyncId: Float!
  }
  type Query {
    issues(first: Int, filter: IssueFilter, orderBy: PaginationOrderBy): IssueConnection!
    issue(id: String!): Issue!
    viewer: User!
  }
  type Mutation {
    issueUpdate(id: String!, input: IssueUpdateInput!): IssuePayload!
    commentCreate(input: CommentCreateInput!): CommentPayload!
    attachmentCreate(input: AttachmentCreateInput!): AttachmentPayload!
  }
`;

export interface FakeLinearState {
  id: string;
  name: string;
  type: "triage" | "backlog" | "unstarted" | "started" | "completed" | "canceled";
}

export interface FakeLinearIssue {
  id: string;
  identifier: string;
  title: string;
  description?: string;
  stateId: string;
  labels: string[];
  /** A user id; the key's user is `FakeLinear.viewer.id`. */
  assigneeId?: string;
  updatedAt: string;
  comments: { id: string; body: string; createdAt: string }[];
  attachments: { id: string; url: string; title: string }[];
}

export const FAKE_LINEAR_STATES: readonly FakeLinearState[] = [
  { id: "st-backlog", name: "Backlog", type: "backlog" },
  { id: "st-todo", name: "Todo", type: "unstarted" },
  { id: "st-progress", name: "In Progress", type: "started" },
  { id: "st-review", name: "In Review", type: "started" },
  { id: "st-done", name: "Done", type: "completed" },
  { id: "st-canceled", name: "Canceled", type: "canceled" },
];

type StringCmp = { eq?: string; neq?: string; in?: string[]; nin?: string[]; eqIgnoreCase?: string; contains?: string };
const matchString = (v: string, c: StringCmp | undefined) =>
  !c ||
  ((c.eq === undefined || v === c.eq) &&
    (c.neq === undefined || v !== c.neq) &&
    (c.in === undefined || c.in.includes(v)) &&
    (c.nin === undefined || !c.nin.includes(v)) &&
    (c.eqIgnoreCase === undefined || v.toLowerCase() === c.eqIgnoreCase.toLowerCase()) &&
    (c.contains === undefined || v.includes(c.contains)));

export class FakeLinear extends FakeTrackerServer {
  readonly viewer = { id: "user-me", name: "Orchestrator Bot", displayName: "orch" };
  readonly others = { id: "user-other", name: "Someone Else", displayName: "someone" };
  readonly team = { id: "team-eng", key: "ENG", name: "Engineering" };
  readonly states: FakeLinearState[] = [...FAKE_LINEAR_STATES];
  readonly issues = new Map<string, FakeLinearIssue>();
  #n = 0;
  #syncId = 1;
  readonly #schema = buildSchema(LINEAR_SCHEMA_SUBSET);

  constructor(readonly apiKey: string) {
    super();
  }

  /** The GraphQL endpoint (what `[linear] api_url` is set to). */
  get apiUrl(): string {
    return `${this.url}/graphql`;
  }

  addIssue(i: { title: string; description?: string; state?: string; labels?: string[]; assignedToMe?: boolean; id?: string }): FakeLinearIssue {
    const n = ++this.#n;
    const state = this.states.find((s) => s.name === (i.state ?? "Todo"))!;
    const issue: FakeLinearIssue = {
      id: i.id ?? randomUUID(),
      identifier: `${this.team.key}-${n}`,
      title: i.title,
      ...(i.description !== undefined ? { description: i.description } : {}),
      stateId: state.id,
      labels: i.labels ?? [],
      ...(i.assignedToMe === false ? { assigneeId: this.others.id } : { assigneeId: this.viewer.id }),
      updatedAt: new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString(),
      comments: [],
      attachments: [],
    };
    this.issues.set(issue.id, issue);
    return issue;
  }

  stateOf(issueId: string): string | undefined {
    const i = this.issues.get(issueId);
    return this.states.find((s) => s.id === i?.stateId)?.name;
  }

  /** A person moves the issue on Linear. */
  move(issueId: string, state: string): void {
    const i = this.issues.get(issueId)!;
    i.stateId = this.states.find((s) => s.name === state)!.id;
    i.updatedAt = new Date().toISOString();
  }

  protected async handle(req: IncomingMessage, body: unknown, _rec: RecordedTrackerRequest) {
    if (req.method !== "POST" || !req.url?.startsWith("/graphql")) return { status: 404, body: { message: "not found" } };
    if (req.headers.authorization !== this.apiKey) {
      return {
        status: 401,
        body: {
          errors: [{ message: "Authentication required, not authenticated", extensions: { type: "authentication error", code: "AUTHENTICATION_ERROR" } }],
        },
      };
    }
    const b = body as { query?: string; variables?: Record<string, unknown> };
    const r = await graphql({ schema: this.#schema, source: b.query ?? "", rootValue: this.#root(), variableValues: b.variables ?? {} });
    const status = r.errors?.some((e) => !e.path) ? 400 : 200;
    return {
      status,
      body: {
        ...(r.data !== undefined ? { data: r.data } : {}),
        ...(r.errors
          ? {
              errors: r.errors.map((e) => ({
                message: e.message,
                ...(e.path ? { path: e.path } : {}),
                extensions: { type: "invalid input", code: "INVALID_INPUT" },
              })),
            }
          : {}),
      },
    };
  }

  #view(i: FakeLinearIssue) {
    const state = this.states.find((s) => s.id === i.stateId)!;
    const user = i.assigneeId === this.viewer.id ? this.viewer : i.assigneeId ? this.others : null;
    return {
      id: i.id,
      identifier: i.identifier,
      title: i.title,
      description: i.description ?? null,
      url: `https://linear.app/acme/issue/${i.identifier}`,
      updatedAt: i.updatedAt,
      state,
      labels: () => ({ nodes: i.labels.map((name) => ({ id: `lbl-${name}`, name })) }),
      assignee: user,
      team: { ...this.team, states: () => ({ nodes: this.states }) },
      comments: () => ({ nodes: i.comments }),
      attachments: () => ({ nodes: i.attachments }),
    };
  }

  #matches(i: FakeLinearIssue, f: Record<string, unknown> | undefined): boolean {
    if (!f) return true;
    const a = f.assignee as { isMe?: { eq?: boolean }; null?: boolean } | undefined;
    if (a?.isMe?.eq !== undefined && (i.assigneeId === this.viewer.id) !== a.isMe.eq) return false;
    if (a?.null !== undefined && (i.assigneeId === undefined) !== a.null) return false;
    const s = f.state as { name?: StringCmp; type?: StringCmp } | undefined;
    const state = this.states.find((x) => x.id === i.stateId)!;
    if (s && (!matchString(state.name, s.name) || !matchString(state.type, s.type))) return false;
    const l = f.labels as { some?: { name?: StringCmp } } | undefined;
    if (l?.some && !i.labels.some((name) => matchString(name, l.some!.name))) return false;
    if (Array.isArray(f.and) && !f.and.every((g) => this.#matches(i, g as Record<string, unknown>))) return false;
    if (Array.isArray(f.or) && !f.or.some((g) => this.#matches(i, g as Record<string, unknown>))) return false;
    return true;
  }

  #issue(id: string): FakeLinearIssue {
    const i = this.issues.get(id) ?? [...this.issues.values()].find((x) => x.identifier === id);
    if (!i) throw new GraphQLError("Entity not found: Issue");
    return i;
  }

  #root() {
    return {
      viewer: () => this.viewer,
      issue: ({ id }: { id: string }) => this.#view(this.#issue(id)),
      issues: ({ first, filter }: { first?: number; filter?: Record<string, unknown> }) => ({
        nodes: [...this.issues.values()]
          .filter((i) => this.#matches(i, filter))
          .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))
          .slice(0, first ?? 50)
          .map((i) => this.#view(i)),
      }),
      issueUpdate: ({ id, input }: { id: string; input: { stateId?: string; title?: string } }) => {
        const i = this.#issue(id);
        if (input.stateId !== undefined) {
          if (!this.states.some((s) => s.id === input.stateId)) throw new GraphQLError("Entity not found: WorkflowState");
          i.stateId = input.stateId;
        }
        if (input.title !== undefined) i.title = input.title;
        i.updatedAt = new Date().toISOString();
        return { success: true, issue: this.#view(i), lastSyncId: this.#syncId++ };
      },
      commentCreate: ({ input }: { input: { id?: string; issueId?: string; body?: string } }) => {
        const i = this.#issue(input.issueId ?? "");
        const id = input.id ?? randomUUID();
        if ([...this.issues.values()].some((x) => x.comments.some((c) => c.id === id))) throw new GraphQLError("Entity with this id already exists");
        const c = { id, body: input.body ?? "", createdAt: new Date().toISOString() };
        i.comments.push(c);
        return { success: true, comment: c, lastSyncId: this.#syncId++ };
      },
      attachmentCreate: ({ input }: { input: { issueId: string; url: string; title: string } }) => {
        const i = this.#issue(input.issueId);
        // Linear keeps one attachment per issue and URL: creating it again updates it.
        let a = i.attachments.find((x) => x.url === input.url);
        if (a) a.title = input.title;
        else i.attachments.push((a = { id: randomUUID(), url: input.url, title: input.title }));
        return { success: true, attachment: a, lastSyncId: this.#syncId++ };
      },
    };
  }
}
