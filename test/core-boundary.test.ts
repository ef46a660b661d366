// The core (src/) runs unchanged in a browser tab, a Node process and the simulator, and one
// seed replays a whole cluster only if the core reads no clock or randomness of its own. This
// reads every source file under src/ and fails on the first import or global that breaks that.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', 'src');

const forbidden: [RegExp, string][] = [
  [/from\s+['"]node:/, 'a node:* import'],
  [/from\s+['"](fs|path|os|net|tls|http2?|crypto|child_process|worker_threads)['"]/, 'a Node built-in import'],
  [/from\s+['"](?!\.)/, 'a package import (the core depends only on msgpackr)'],
  [/\bDate\.now\b|\bnew Date\b/, 'the wall clock'],
  [/\bperformance\.now\b/, 'a global clock'],
  [/\bset(Timeout|Interval|Immediate)\b/, 'a global timer'],
  [/\bMath\.random\b|\bcrypto\./, 'global randomness'],
  [/\b(process|window|document|navigator|indexedDB|localStorage)\./, 'a runtime global'],
];
const allowedPackages = new Set(['msgpackr']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Source text without comments, so prose about timers does not trip the check. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

describe('the core in src/', () => {
  const files = sourceFiles(root);

  it('has source files to check', () => {
    expect(files.length).toBeGreaterThan(20);
  });

  it('imports no runtime module and reads no global clock, timer or randomness', () => {
    const violations: string[] = [];
    for (const file of files) {
      const lines = code(readFileSync(file, 'utf8')).split('\n');
      lines.forEach((line, i) => {
        for (const [pattern, what] of forbidden) {
          if (!pattern.test(line)) continue;
          const pkg = /from\s+['"]([^'"]+)['"]/.exec(line)?.[1];
          if (what.startsWith('a package') && pkg && allowedPackages.has(pkg)) continue;
          violations.push(`${relative(root, file)}:${i + 1}: ${what}: ${line.trim()}`);
        }
      });
    }
    expect(violations).toEqual([]);
  });
});
