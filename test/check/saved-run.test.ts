import { describe, expect, it } from 'vitest';
import { get, lost, op, put, read } from './build.ts';
import { checkLinearizable, parseRun, serializeRun } from './index.ts';

describe('saved runs', () => {
  it('round-trip through JSON, unknown outcomes included, and check the same', () => {
    const history = [lost(1, 0, put('a', 'x')), op(2, 5, 10, get('a'), read('x', 2)), op(2, 11, 20, get('a'), read(null, 2))];
    const back = parseRun(serializeRun({ history }));
    expect(back.history).toEqual(history);
    expect(back.history[0].ret).toBe(Infinity);
    expect(checkLinearizable(back.history)).toEqual(checkLinearizable(history));
  });

  it('refuses a file without a history', () => {
    expect(() => parseRun('{"ops": []}')).toThrow(/needs a "history" array/);
  });
});
