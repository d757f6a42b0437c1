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
  const snippet = sql ? sqlNear(sql, Number(fields.position)) : undefined;
  if (snippet) parts.push(`SQL: ${snippet}`);
  const extension = explainMissingExtension(error);
  if (extension) parts.push(extension);
  return parts.join(' — ');
}

/** The statement around PostgreSQL's error position (1-based), or its start when there is none. */
function sqlNear(sql: string, position: number): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  if (!Number.isFinite(position) || position <= 0) return flat.length > 160 ? `${flat.slice(0, 160)}…` : flat;
  const at = Math.min(position - 1, sql.length);
  const before = sql.slice(Math.max(0, at - 60), at).replace(/\s+/g, ' ');
  const after = sql.slice(at, at + 60).replace(/\s+/g, ' ');
  return `…${before}⟶${after}…`;
}
