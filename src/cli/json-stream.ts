/**
 * `--json` documents written piece by piece: the same text as `JSON.stringify(value, null, 2)`,
 * but never built as one string. A report of 100,000 tenants is ~20 MB of JSON; as one string (and
 * the pretty-printer's intermediate ones) it would double the client's peak memory at the very end
 * of the run. Here every array element and object member is serialised on its own, and the text
 * goes out in chunks of about 64 KB. To a file a chunk is written before the next is made; to a
 * pipe Node queues what the reader has not taken, so the CLI waits for the pipe to drain
 * ({@link writeJsonDocumentTo}) rather than queue the whole report in memory.
 */

import { once } from 'node:events';

const CHUNK = 64 * 1024;

/**
 * Writes `value` as JSON (2-space indentation, exactly as `JSON.stringify(value, null, 2)`)
 * followed by a newline, through `write` in chunks.
 *
 * @example
 *   writeJsonDocument((chunk) => process.stdout.write(chunk), { ok: true, tenants });
 */
export function writeJsonDocument(write: (chunk: string) => void, value: unknown): void {
  for (const chunk of jsonDocumentChunks(value)) write(chunk);
}

/**
 * The same document written to a stream, waiting for it to drain whenever it is full: a reader
 * slower than the CLI (a pipe) never makes the whole report queue in memory. At 100,000 tenants
 * (15 MB of JSON) the queued chunks doubled the client's peak memory (127 MB to a file, 230 MB to
 * a pipe) and took longer than the writing.
 *
 * @example
 *   await writeJsonDocumentTo(process.stdout, { ok: true, tenants });
 */
export async function writeJsonDocumentTo(stream: NodeJS.WritableStream, value: unknown): Promise<void> {
  for (const chunk of jsonDocumentChunks(value)) {
    if (!stream.write(chunk)) await once(stream, 'drain');
  }
}

/** The document's text in chunks of about {@link CHUNK} characters. */
export function* jsonDocumentChunks(value: unknown): Generator<string, void, undefined> {
  const out = { text: '' };
  const written = yield* serialise(value, '', out);
  if (!written) out.text += 'null'; // JSON.stringify(undefined) is undefined: print what a parser accepts
  out.text += '\n';
  yield out.text;
}

/** Small values (no nested array or object of more than this many entries) go through JSON.stringify at once. */
const SMALL = 50;

/**
 * Appends one value at the given indentation to `out.text`, handing the text over (yield) each time
 * it reaches a chunk; false when the value is not representable (undefined, a function).
 */
function* serialise(raw: unknown, indent: string, out: { text: string }): Generator<string, boolean, undefined> {
  const value = toJsonValue(raw);
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return false;
  if (value === null || typeof value !== 'object' || isSmall(value)) {
    const text = JSON.stringify(value, null, 2);
    if (text === undefined) return false;
    out.text += indent ? text.replaceAll('\n', `\n${indent}`) : text;
    if (out.text.length >= CHUNK) yield take(out);
    return true;
  }
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) {
      out.text += '[]';
      return true;
    }
    out.text += '[';
    for (let i = 0; i < value.length; i++) {
      out.text += `${i === 0 ? '' : ','}\n${inner}`;
      if (!(yield* serialise(value[i], inner, out))) out.text += 'null';
    }
    out.text += `\n${indent}]`;
    if (out.text.length >= CHUNK) yield take(out);
    return true;
  }
  let first = true;
  out.text += '{';
  for (const [key, member] of Object.entries(value as Record<string, unknown>)) {
    const memberValue = toJsonValue(member);
    if (memberValue === undefined || typeof memberValue === 'function' || typeof memberValue === 'symbol') continue;
    out.text += `${first ? '' : ','}\n${inner}${JSON.stringify(key)}: `;
    yield* serialise(memberValue, inner, out);
    first = false;
  }
  out.text += first ? '}' : `\n${indent}}`;
  if (out.text.length >= CHUNK) yield take(out);
  return true;
}

function take(out: { text: string }): string {
  const text = out.text;
  out.text = '';
  return text;
}

/** What JSON.stringify would serialise in place of `value` (its toJSON(), e.g. a Date's string). */
function toJsonValue(value: unknown): unknown {
  const withToJson = value as { toJSON?: () => unknown } | null;
  return withToJson !== null && typeof withToJson === 'object' && typeof withToJson.toJSON === 'function' ? withToJson.toJSON() : value;
}

/** True for an object or array whose every nested collection is small: cheap to stringify at once. */
function isSmall(value: object): boolean {
  let budget = SMALL;
  const visit = (node: unknown): boolean => {
    if (node === null || typeof node !== 'object') return true;
    const entries = Array.isArray(node) ? node : Object.values(node);
    budget -= entries.length;
    if (budget < 0) return false;
    return entries.every(visit);
  };
  return visit(value);
}

/**
 * A document whose one big array is written as its items arrive: `{ "<key>": [ item, item, … ],
 * <the members of end()> }`. Items are written one per line (compact), members as
 * `JSON.stringify(…, null, 2)` would indent them.
 *
 * @example
 *   const doc = streamingArrayDocument((chunk) => process.stdout.write(chunk), 'rows');
 *   doc.item({ org_id: 'org_a', users: 3 });
 *   doc.end({ failed: [], ok: true });
 */
export function streamingArrayDocument(write: (chunk: string) => void, key: string) {
  let buffer = `{\n  ${JSON.stringify(key)}: [`;
  let count = 0;
  const flush = () => {
    if (buffer) write(buffer);
    buffer = '';
  };
  return {
    item(value: unknown) {
      buffer += `${count++ === 0 ? '' : ','}\n    ${JSON.stringify(value) ?? 'null'}`;
      if (buffer.length >= CHUNK) flush();
    },
    end(members: Record<string, unknown>) {
      buffer += count === 0 ? ']' : '\n  ]';
      for (const [name, value] of Object.entries(members)) {
        if (value === undefined) continue;
        let text = '';
        writeJsonDocument((chunk) => (text += chunk), value);
        buffer += `,\n  ${JSON.stringify(name)}: ${text.replace(/\n$/, '').replaceAll('\n', '\n  ')}`;
        flush();
      }
      buffer += '\n}\n';
      flush();
    },
  };
}
