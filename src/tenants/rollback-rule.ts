/**
 * The rule of `rollback:tenants`, in one sentence, as `--help` and the README show it. A module of
 * its own so the CLI can show it without loading the rollback code.
 */
export const ROLLBACK_RULE =
  'undo the newest release that a tenant still holds — the migrations one migrate:tenants (or provision:tenant) run added to the tree — in every tenant that has them (run it twice, two releases are undone); ' +
  "a tenant's tables from provisioning are never undone this way (--to <migration> or --all for that)";
