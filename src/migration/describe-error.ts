/**
 * Turns a failure into one readable sentence: PostgreSQL's message, detail and hint, where in the
 * SQL it happened, and — for a missing pgvector — how to install it.
 */
import { explainMissingExtension } from '../db/extension-hints.ts';

interface PgErrorFields {
  message?: string;
  code?: string;
  detail?: string;
  hint?: string;
  position?: string;
  where?: string;
}

/** Knex prefixes PostgreSQL's message with the SQL ("<sql> - <message>"); split the two apart. */
function splitKnexMessage(message: string): { sql?: string; message: string } {
  const at = message.lastIndexOf(' - ');
  if (at < 0) return { message };
  return { sql: message.slice(0, at), message: message.slice(at + 3) };
}

/** One-line description of an error with everything PostgreSQL said about it. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const fields = error as PgErrorFields;
  if (!fields.code || !/^[0-9A-Z]{5}$/.test(fields.code)) return error.message;
  const { sql, message } = splitKnexMessage(error.message);
  const parts = [message];
  if (fields.detail) parts.push(`DETAIL: ${fields.detail}`);
  if (fields.hint) parts.push(`HINT: ${fields.hint}`);
  const snippet = sql ? sqlNear(sql, Number(fields.position), message) : undefined;
  if (snippet) parts.push(`SQL: ${snippet}`);
  const extension = explainMissingExtension(error);
  if (extension) parts.push(extension);
  return parts.join(' — ');
}

/**
 * The statement around PostgreSQL's error position (1-based). Without a position (e.g. a foreign
 * key to a missing table), the statement of a batch that mentions the name the message quotes,
 * else the start of the SQL.
 */
function sqlNear(sql: string, position: number, message: string): string {
  const flat = (text: string) => text.replace(/\s+/g, ' ').trim();
  const shorten = (text: string) => (text.length > 200 ? `${text.slice(0, 200)}…` : text);
  if (Number.isFinite(position) && position > 0) {
    const at = Math.min(position - 1, sql.length);
    return `…${sql.slice(Math.max(0, at - 60), at).replace(/\s+/g, ' ')}⟶${sql.slice(at, at + 60).replace(/\s+/g, ' ')}…`;
  }
  const quoted = /"([^"]+)"/.exec(message)?.[1];
  const statement = quoted ? sql.split(';\n').find((part) => part.includes(`"${quoted}"`) || part.includes(quoted)) : undefined;
  return shorten(flat(statement ?? sql));
}
