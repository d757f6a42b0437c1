/**
 * What to do when pgvector is missing. PostgreSQL's own words ("type "vector" does not exist",
 * "extension "vector" is not available") do not say how to get it; this adds that.
 */

/** The Docker image with pgvector preinstalled that we recommend (and test against). */
export const PGVECTOR_IMAGE = 'pgvector/pgvector:pg17';

interface ErrorFields {
  message?: unknown;
  code?: unknown;
  detail?: unknown;
  hint?: unknown;
  cause?: unknown;
}

type Problem = 'not-installed' | 'not-created' | 'permission';

/**
 * When `error` (or an error in its `cause` chain) means pgvector is missing, a message saying what
 * is missing and how to get it; otherwise `undefined`.
 *
 * Recognised: the server has no pgvector files (`extension "vector" is not available`, 0A000; before
 * PostgreSQL 15 `could not open extension control file ".../vector.control"`, 58P01); the extension
 * is not created in this database or not on the search_path (`type "vector" does not exist`,
 * `access method "hnsw" does not exist`, `operator class "vector_cosine_ops" does not exist`,
 * 42704; `operator does not exist: vector <=> …`, 42883); not allowed to create it (42501).
 *
 * @example
 *   try { await migrate(); } catch (error) {
 *     const hint = explainMissingExtension(error);
 *     console.error(describe(error) + (hint ? ` — ${hint}` : ''));
 *   }
 */
export function explainMissingExtension(error: unknown): string | undefined {
  for (const fields of causeChain(error)) {
    const problem = classify(fields);
    if (problem) return explain(problem, serverMajorOf(fields));
  }
  return undefined;
}

function* causeChain(error: unknown): Generator<ErrorFields> {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current) && seen.size < 10) {
    seen.add(current);
    yield current as ErrorFields;
    current = (current as ErrorFields).cause;
  }
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

const VECTOR_TYPES = '(?:vector|halfvec|sparsevec)';
const TYPE_MISSING = new RegExp(`type "(?:[\\w$]+\\.)?${VECTOR_TYPES}(?:\\[\\])?" does not exist`, 'i');
const ACCESS_METHOD_MISSING = /access method "(?:hnsw|ivfflat)" does not exist/i;
const OPCLASS_MISSING = new RegExp(`operator class "${VECTOR_TYPES}_\\w+_ops" does not exist`, 'i');
const OPERATOR_MISSING = new RegExp(`operator does not exist: (?:${VECTOR_TYPES}\\b.*|.*<=>.*)`, 'i');
const FUNCTION_MISSING = /function (?:cosine_distance|l2_distance|l1_distance|inner_product|vector_dims|vector_norm|l2_normalize)\(/i;
const NOT_AVAILABLE = /extension "vector" is not available|could not open extension control file "[^"]*[\\/]vector\.control"/i;
const PERMISSION = /permission denied to create extension "vector"/i;

function classify(fields: ErrorFields): Problem | undefined {
  const code = text(fields.code);
  const message = text(fields.message);
  const both = `${message}\n${text(fields.detail)}`;
  if ((code === '' || code === '0A000' || code === '58P01') && NOT_AVAILABLE.test(both)) return 'not-installed';
  if ((code === '' || code === '42501') && PERMISSION.test(message)) return 'permission';
  if (code === '' || code === '42704') {
    if (TYPE_MISSING.test(message) || ACCESS_METHOD_MISSING.test(message) || OPCLASS_MISSING.test(message)) return 'not-created';
  }
  if ((code === '' || code === '42883') && (OPERATOR_MISSING.test(message) || FUNCTION_MISSING.test(message))) return 'not-created';
  return undefined;
}

/** The server's major version when the error shows it (the control file path: `/usr/share/postgresql/15/extension/…`). */
function serverMajorOf(fields: ErrorFields): string | undefined {
  const both = `${text(fields.message)}\n${text(fields.detail)}`;
  return /postgresql[/\\@-]?(\d{2})[/\\]/i.exec(both)?.[1] ?? /\/pgsql-?(\d{2})\//i.exec(both)?.[1];
}

function installOptions(major: string | undefined): string {
  const version = major ?? '<major>';
  return [
    `Debian/Ubuntu: apt install postgresql-${version}-pgvector (PGDG repository);`,
    `RHEL/Fedora: pgvector_${version};`,
    'macOS: brew install pgvector;',
    `Docker: use the image ${PGVECTOR_IMAGE} (or pg16, pg15… to match your server);`,
    'managed services: allow-list the "vector" extension (AWS RDS/Aurora and Google Cloud SQL ship it;',
    'Azure Database for PostgreSQL: add VECTOR to the azure.extensions server parameter).',
  ].join(' ');
}

function explain(problem: Problem, major: string | undefined): string {
  const tryLocally = 'To try tenant-migrate without a server, set DATABASE_URL=embedded (PGlite with pgvector).';
  switch (problem) {
    case 'not-installed':
      return [
        `pgvector is not installed on this PostgreSQL server${major ? ` (version ${major})` : ''}: the "vector" extension's files are missing.`,
        `Install it where the server runs — ${installOptions(major)}`,
        'Then run the master migrations (pnpm migrate:master), which CREATE EXTENSION vector in public.',
        tryLocally,
      ].join(' ');
    case 'permission':
      return [
        'pgvector is installed on the server, but this database user may not create the "vector" extension.',
        'Ask an administrator to run CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public once in this database',
        '(on AWS RDS a role with rds_superuser; on Azure allow-list VECTOR in azure.extensions first);',
        'the master migration then finds it and goes on.',
      ].join(' ');
    case 'not-created':
      return [
        "pgvector's \"vector\" type is missing here: the extension is not created in this database (or not in public, which every tenant's search_path ends with).",
        'Run the master migrations first (pnpm migrate:master): they CREATE EXTENSION vector WITH SCHEMA public.',
        'If it lives in another schema: ALTER EXTENSION vector SET SCHEMA public.',
        `If the server lacks pgvector altogether — ${installOptions(major)}`,
        tryLocally,
      ].join(' ');
  }
}
