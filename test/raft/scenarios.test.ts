import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runScenario } from './scenario.ts';

const dir = join(import.meta.dirname, 'scenarios');

describe('raft scenarios', () => {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
    it(file, () => {
      const path = join(dir, file);
      const text = readFileSync(path, 'utf8');
      const actual = runScenario(text);
      if (process.env.REWRITE) writeFileSync(path, actual.endsWith('\n') ? actual : actual + '\n');
      else expect(actual.trimEnd()).toBe(text.trimEnd());
    });
  }
});
