/**
 * `--json` documents written piece by piece: the same text as `JSON.stringify(value, null, 2)`,
 * but never built as one string. A report of 100,000 tenants is ~20 MB of JSON; as one string (and
 * the pretty-printer's intermediate ones) it would double the client's peak memory at the very end
 * of the run. Here every array element and object member is serialised on its own, and the text
 * goes out in chunks of about 64 KB (stdout to a pipe or file is a blocking write on Linux and
 * macOS, so a chunk is gone before the next is made).
 */

const CHUNK = 64 * 1024;

/**
 * Writes `value` as JSON (2-space indentation, exactly as `JSON.stringify(value, null, 2)`)
 * followed by a newline, through `write` in chunks.
 *
 * @example
 *   writeJsonDocument((chunk) => process.stdout.write(chunk), { ok: true, tenants });
 */
export function writeJsonDocument(write: (chunk: string) => void, value: unknown): void {
  let buffer = '';
  const emit = (text: string) => {
    buffer += text;
    if (buffer.length >= CHUNK) {
      write(buffer);
      buffer = '';
    }
  };
  const written = serialise(value, '', emit);
  if (!written) emit('null'); // JSON.stringify(undefined) is undefined: print what a parser accepts
  emit('\n');
  if (buffer) write(buffer);
}

/** Small values (no nested array or object of more than this many entries) go through JSON.stringify at once. */
const SMALL = 50;

/** Writes one value at the given indentation; false when it is not representable (undefined, a function). */
function serialise(raw: unknown, indent: string, emit: (text: string) => void): boolean {
  const value = toJsonValue(raw);
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return false;
  if (value === null || typeof value !== 'object' || isSmall(value)) {
    const text = JSON.stringify(value, null, 2);
    if (text === undefined) return false;
    emit(indent ? text.replaceAll('\n', `\n${indent}`) : text);
    return true;
  }
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return emit('[]'), true;
    emit('[');
    value.forEach((item, i) => {
      emit(`${i === 0 ? '' : ','}\n${inner}`);
      if (!serialise(item, inner, emit)) emit('null');
    });
    emit(`\n${indent}]`);
    return true;
  }
  let first = true;
  emit('{');
  for (const [key, member] of Object.entries(value as Record<string, unknown>)) {
    const memberValue = toJsonValue(member);
    if (memberValue === undefined || typeof memberValue === 'function' || typeof memberValue === 'symbol') continue;
    emit(`${first ? '' : ','}\n${inner}${JSON.stringify(key)}: `);
    serialise(memberValue, inner, emit);
    first = false;
  }
  emit(first ? '}' : `\n${indent}}`);
  return true;
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
