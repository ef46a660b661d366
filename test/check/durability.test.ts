import { describe, expect, it } from 'vitest';
import { del, deleted, lost, op, put, wrote } from './build.ts';
import { checkDurability } from './index.ts';
import type { CheckResult, FinalState } from './history.ts';

function anomaly(result: CheckResult): string | null {
  return result.ok === false ? result.anomaly : null;
}

const final = (member: string, revision: number, kvs: Record<string, string>): FinalState => ({ member, revision, kvs });

const history = [
  op(1, 0, 10, put('a', '1'), wrote(2)),
  op(1, 11, 20, put('a', '2'), wrote(3)), // overwrites a=1
  op(2, 21, 30, put('b', '1'), wrote(4)),
  op(2, 31, 40, del('b'), deleted(1, 5)),
  op(2, 41, 50, put('c', '1'), wrote(6)),
];

describe('checkDurability', () => {
  it('accepts the latest acknowledged write of every key on every member', () => {
    const kvs = { a: '2', c: '1' };
    expect(checkDurability(history, [final('m1', 6, kvs), final('m2', 6, kvs)])).toEqual({ ok: true, checked: 5 });
  });

  it('accepts a later unknown-outcome write in place of the last acknowledged one', () => {
    const withLost = [...history, lost(3, 60, put('c', '9'))];
    expect(checkDurability(withLost, [final('m1', 7, { a: '2', c: '9' })]).ok).toBe(true);
    // ...but not when the final revision leaves no room for it.
    expect(anomaly(checkDurability(withLost, [final('m1', 6, { a: '2', c: '9' })]))).toBe('lost-write');
  });

  it('lost write: an acknowledged write is missing at the end', () => {
    const result = checkDurability(history, [final('m1', 6, { a: '1', c: '1' })]);
    expect(anomaly(result)).toBe('lost-write');
    expect(JSON.stringify(result)).toContain('put(\\"a\\", \\"2\\") -> ok @rev 3');
    expect(anomaly(checkDurability(history, [final('m1', 6, { a: '2' })]))).toBe('lost-write');
    expect(anomaly(checkDurability(history, [final('m1', 6, { a: '2', b: '1', c: '1' })]))).toBe('lost-write'); // a delete undone
    expect(anomaly(checkDurability(history, [final('m1', 5, { a: '2', c: '1' })]))).toBe('lost-write'); // revision went back
  });

  it('a key nothing wrote', () => {
    expect(anomaly(checkDurability(history, [final('m1', 6, { a: '2', c: '1', z: '1' })]))).toBe('unexplained-final-value');
  });

  it('diverged member: names the member and the keys that differ', () => {
    const result = checkDurability(history, [final('m1', 6, { a: '2', c: '1' }), final('m2', 6, { a: '2', c: '1' }), final('m3', 6, { a: '2' })]);
    expect(anomaly(result)).toBe('diverged-member');
    expect((result as { witness: unknown }).witness).toMatchObject({ member: 'm3', comparedWith: 'm1', differingKeys: [{ key: 'c', m1: '1', m3: null }] });
  });

  it('refuses to check without a final state', () => {
    expect(() => checkDurability(history, [])).toThrow(/no final state/);
  });
});
