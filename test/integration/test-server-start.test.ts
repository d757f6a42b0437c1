/**
 * The embedded test server (test/support/embedded-server.ts) starts where newcomers clone: as root
 * in a directory other users cannot enter (`mktemp -d` is 0700), where the `postgres` OS user the
 * server runs as cannot reach the installed binaries; and a start that cannot work says why and
 * what to do in one sentence.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { embeddedBinaries, runningAsRoot, startEmbeddedServer, type EmbeddedServer } from '../support/embedded-server.ts';

let parent: string | undefined;
let server: EmbeddedServer | undefined;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  if (parent) fs.rmSync(parent, { recursive: true, force: true });
  parent = undefined;
});

describe('the embedded test server', () => {
  it.skipIf(!runningAsRoot)(
    'starts as root from binaries under a 0700 directory (the server runs as the postgres OS user, who cannot enter it)',
    async () => {
      parent = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-0700-clone-'));
      expect(fs.statSync(parent).mode & 0o777).toBe(0o700);
      // The binaries as a clone under `mktemp -d` has them (hard links: instant, no disk).
      const nativeDir = path.join(parent, 'node_modules', 'native');
      fs.mkdirSync(path.dirname(nativeDir));
      execFileSync('cp', ['-al', embeddedBinaries(), nativeDir]);

      server = await startEmbeddedServer({ name: 'tm-0700-test', nativeDir });

      const client = new pg.Client({ connectionString: server.url('postgres') });
      await client.connect();
      try {
        const { rows } = await client.query<{ ok: number }>('select 1 as ok');
        expect(rows).toEqual([{ ok: 1 }]);
      } finally {
        await client.end();
      }
      // Nothing was loosened on the user's directory.
      expect(fs.statSync(parent).mode & 0o777).toBe(0o700);
    },
  );

  it('that cannot start rejects with one sentence saying why and what to do', async () => {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-no-binaries-'));
    const nativeDir = path.join(parent, 'native');
    fs.mkdirSync(path.join(nativeDir, 'bin'), { recursive: true }); // no initdb in it

    const start = startEmbeddedServer({ name: 'tm-no-binaries', nativeDir });

    await expect(start).rejects.toThrow(
      /^The embedded PostgreSQL could not start on port \d+: .*initdb could not be run \(ENOENT\); set TEST_DATABASE_URL to a PostgreSQL you can use/,
    );
  });
});
