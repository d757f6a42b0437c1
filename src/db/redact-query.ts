/**
 * A query as another session sent it, with every literal replaced and every comment dropped — what the tool may print about
 * somebody else's transaction (an application's `where email = '…'` is customer data).
 *
 * PostgreSQL's own parser (libpg-query) gives every constant's location (`A_Const.location`, a byte
 * offset); from there the literal's extent is read with the lexer's rules for strings ('…' with ''
 * doubled, E'…' with backslash escapes, B'…'/X'…'/U&'…', $tag$…$tag$) and numbers. Text it cannot
 * parse (pg_stat_activity cuts queries at track_activity_query_size) shows only its first keyword.
 */
import { loadSyncParser } from './parse-sql.ts';

let parse: ((sql: string) => unknown[]) | undefined;

/** Loads the parser once; {@link redactQuery} is synchronous after that. */
export async function loadRedaction(): Promise<void> {
  parse ??= await loadSyncParser();
}

const PLACEHOLDER = '?';

/**
 * @example
 *   await loadRedaction();
 *   redactQuery("select * from notes where body = 'secret' limit 5") // "select * from notes where body = ? limit ?"
 *   redactQuery('select * from notes where body = ')                // "select …"
 */
export function redactQuery(sql: string): string {
  if (!parse) throw new Error('redactQuery: call loadRedaction() first');
  let statements: unknown[];
  try {
    statements = parse(sql);
  } catch {
    return firstKeyword(sql);
  }
  const locations = new Set<number>();
  collectConstants(statements, locations);
  const bytes = Buffer.from(sql, 'utf8');
  const literals = [...locations]
    .sort((a, b) => a - b)
    .map((start) => ({ start, end: literalEnd(bytes, start), with: PLACEHOLDER }))
    .filter((range) => range.end < 0 || range.end > range.start);
  if (literals.some((range) => range.end < 0)) return firstKeyword(sql);
  // Comments carry data too (sqlcommenter tags, "-- user=…"): dropped whole.
  const comments = commentRanges(bytes, literals);
  if (comments === undefined) return firstKeyword(sql);
  const ranges = [...literals, ...comments].sort((a, b) => a.start - b.start);
  const parts: Buffer[] = [];
  let at = 0;
  for (const { start, end, with: replacement } of ranges) {
    if (start < at) continue;
    parts.push(bytes.subarray(at, start), Buffer.from(replacement));
    at = end;
  }
  parts.push(bytes.subarray(at));
  return Buffer.concat(parts).toString('utf8').replace(/\s+/g, ' ').trim();
}

/**
 * The comments of a statement the parser accepted (`-- …` to the end of the line, `/* … *\/`
 * nested), found by walking the text outside its literals and quoted identifiers; undefined when
 * the walk cannot finish (then only the first keyword is shown).
 */
function commentRanges(bytes: Buffer, literals: readonly { start: number; end: number }[]): { start: number; end: number; with: string }[] | undefined {
  const ranges: { start: number; end: number; with: string }[] = [];
  const literalAt = new Map(literals.map((range) => [range.start, range.end]));
  for (let i = 0; i < bytes.length; i++) {
    const literal = literalAt.get(i);
    if (literal !== undefined) {
      i = literal - 1;
    } else if (bytes[i] === DOUBLE_QUOTE) {
      // A quoted identifier ("" doubles a quote inside it).
      let j = i + 1;
      for (; j < bytes.length; j++) if (bytes[j] === DOUBLE_QUOTE && bytes[++j] !== DOUBLE_QUOTE) break;
      if (j > bytes.length) return undefined;
      i = j - 1;
    } else if (bytes[i] === DASH && bytes[i + 1] === DASH) {
      const newline = bytes.indexOf(NEWLINE, i);
      const end = newline < 0 ? bytes.length : newline;
      ranges.push({ start: i, end, with: ' ' });
      i = end;
    } else if (bytes[i] === SLASH && bytes[i + 1] === STAR) {
      let depth = 0;
      let j = i;
      for (; j < bytes.length; j++) {
        if (bytes[j] === SLASH && bytes[j + 1] === STAR) (depth++, j++);
        else if (bytes[j] === STAR && bytes[j + 1] === SLASH && (j++, --depth === 0)) break;
      }
      if (depth !== 0) return undefined;
      ranges.push({ start: i, end: j + 1, with: ' ' });
      i = j;
    }
  }
  return ranges;
}

/** The first word of a statement, for text the parser refused: never a literal. */
export function firstKeyword(sql: string): string {
  const word = /^\s*(?:--[^\n]*\n\s*|\/\*[\s\S]*?\*\/\s*)*([A-Za-z]+)/.exec(sql)?.[1];
  return word ? `${word.toLowerCase()} …` : '…';
}

function collectConstants(node: unknown, into: Set<number>): void {
  if (Array.isArray(node)) {
    for (const item of node) collectConstants(item, into);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'A_Const') {
      const constant = value as { location?: number; isnull?: boolean; boolval?: unknown };
      // NULL, true and false are keywords, not data.
      if (typeof constant.location === 'number' && constant.location >= 0 && !constant.isnull && constant.boolval === undefined) into.add(constant.location);
    } else {
      collectConstants(value, into);
    }
  }
}

const QUOTE = 0x27; // '
const BACKSLASH = 0x5c;
const DOLLAR = 0x24;
const DOUBLE_QUOTE = 0x22;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const NEWLINE = 0x0a;

/** Where the literal starting at byte `start` ends (exclusive); -1 when it cannot be read. */
function literalEnd(bytes: Buffer, start: number): number {
  let at = start;
  const char = (i: number) => String.fromCharCode(bytes[i] ?? 0);
  // A sign belongs to the constant ("-3").
  if (char(at) === '-' || char(at) === '+') at++;
  if (/[0-9.]/.test(char(at))) {
    const match = /^(?:0[xob][0-9a-f_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:e[+-]?\d+)?)/i.exec(bytes.subarray(at, at + 200).toString('latin1'));
    return match ? at + match[0].length : -1;
  }
  let backslashes = false;
  if (/[eE]/.test(char(at)) && bytes[at + 1] === QUOTE) {
    backslashes = true;
    at++;
  } else if (/[bBxXnN]/.test(char(at)) && bytes[at + 1] === QUOTE) at++;
  else if (/[uU]/.test(char(at)) && char(at + 1) === '&' && bytes[at + 2] === QUOTE) at += 2;
  if (bytes[at] === QUOTE) {
    for (let i = at + 1; i < bytes.length; i++) {
      if (backslashes && bytes[i] === BACKSLASH) i++;
      else if (bytes[i] === QUOTE) {
        if (bytes[i + 1] === QUOTE) i++;
        else return i + 1;
      }
    }
    return -1;
  }
  if (bytes[at] === DOLLAR) {
    const tag = /^\$[A-Za-z_0-9]*\$/.exec(bytes.subarray(at, at + 100).toString('latin1'))?.[0];
    if (!tag) return -1;
    const close = bytes.indexOf(tag, at + tag.length);
    return close < 0 ? -1 : close + tag.length;
  }
  return -1;
}
