import { describe, expect, it } from 'vitest';
import { PlanError, planDown, planUp, stateAfter } from '../../src/migration/plan.ts';

const files = ['20260101000001_a.ts', '20260101000002_b.ts', '20260201000003_c.ts'];
const row = (name: string, batch: number) => ({ name, batch });

describe('planUp', () => {
  it('plans the pending files in order, as the next batch', () => {
    expect(planUp(files, [row(files[0]!, 1)])).toEqual({ direction: 'up', steps: files.slice(1), batch: 2 });
    expect(planUp(files, []).steps).toEqual(files);
    expect(planUp(files, files.map((name) => row(name, 1))).steps).toEqual([]);
  });

  it('refuses when an applied migration has no file, saying to restore it', () => {
    expect(() => planUp(files.slice(1), [row(files[0]!, 1)])).toThrow(PlanError);
    expect(() => planUp(files.slice(1), [row(files[0]!, 1)])).toThrow(/20260101000001_a\.ts has no file.*restore the file/);
  });

  it('refuses a pending file that sorts before the newest applied one', () => {
    expect(() => planUp(files, [row(files[0]!, 1), row(files[2]!, 2)])).toThrow(/20260101000002_b\.ts is pending but sorts before the already applied 20260201000003_c\.ts/);
  });
});

describe('planDown', () => {
  const applied = [row(files[0]!, 1), row(files[1]!, 2), row(files[2]!, 2)];
  it('undoes the newest batch, newest first, or everything with all', () => {
    expect(planDown(files, applied, { kind: 'newest-batch' })).toEqual({ direction: 'down', steps: [files[2], files[1]], batch: 2 });
    expect(planDown(files, applied, { kind: 'all' }).steps).toEqual([...files].reverse());
    expect(planDown(files, [], { kind: 'newest-batch' }).steps).toEqual([]);
  });

  it('refuses to undo a migration whose file is gone', () => {
    expect(() => planDown(files.slice(0, 2), applied, { kind: 'newest-batch' })).toThrow(/cannot roll back 20260201000003_c\.ts/);
  });
});

describe('stateAfter', () => {
  it('gives the newest applied migration and the count after the plan', () => {
    const applied = [row(files[0]!, 1)];
    expect(stateAfter(planUp(files, applied), applied)).toEqual({ version: files[2], count: 3 });
    const all = files.map((name) => row(name, 1));
    expect(stateAfter(planDown(files, all, { kind: 'all' }), all)).toEqual({ version: null, count: 0 });
  });
});
