import { TICKETING_PROVIDER_IDS, type TicketingProviderId } from "@orch/contracts";
import { z } from "zod";

/**
 * Seed 003's ticketing providers (`ticketing_provider`, `ORCH_TICKETING_PROVIDER`): which tracker
 * ticket intake reads. Seed 003's spelling `ticketing.linear` is accepted and normalised.
 */
export type TicketingProvider = TicketingProviderId extends `ticketing.${infer N}` ? N : never;
/** The contracts' providers, without their family: `linear`, `shortcut`, `github_issues`, `gitlab_issues`. */
export const TICKETING_PROVIDERS = TICKETING_PROVIDER_IDS.map((id) => id.slice("ticketing.".length)) as unknown as readonly [
  TicketingProvider,
  ...TicketingProvider[],
];

/** Seed 003's local git providers (`vcs_provider`, `ORCH_VCS_PROVIDER`): only the git CLI. */
export const VCS_PROVIDERS = ["git_cli"] as const;
export type VcsProvider = (typeof VCS_PROVIDERS)[number];

/** A provider setting that also takes seed 003's `<family>.<name>` spelling. */
export const providerName = <const T extends readonly [string, ...string[]]>(family: string, names: T) =>
  z
    .string()
    .transform((v) => (v.startsWith(`${family}.`) ? v.slice(family.length + 1) : v))
    .pipe(z.enum(names, { message: `must be one of ${names.map((n) => `${family}.${n}`).join(", ")}` }));
