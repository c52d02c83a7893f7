import { z } from "zod";

/**
 * Seed 003's ticketing providers (`ticketing_provider`, `ORCH_TICKETING_PROVIDER`): which tracker
 * ticket intake reads. Seed 003's spelling `ticketing.linear` is accepted and normalised.
 */
export const TICKETING_PROVIDERS = ["linear", "shortcut"] as const;
export type TicketingProvider = (typeof TICKETING_PROVIDERS)[number];

/** Seed 003's local git providers (`vcs_provider`, `ORCH_VCS_PROVIDER`): only the git CLI. */
export const VCS_PROVIDERS = ["git_cli"] as const;
export type VcsProvider = (typeof VCS_PROVIDERS)[number];

/** A provider setting that also takes seed 003's `<family>.<name>` spelling. */
export const providerName = <const T extends readonly [string, ...string[]]>(family: string, names: T) =>
  z
    .string()
    .transform((v) => (v.startsWith(`${family}.`) ? v.slice(family.length + 1) : v))
    .pipe(z.enum(names, { message: `must be one of ${names.map((n) => `${family}.${n}`).join(", ")}` }));
