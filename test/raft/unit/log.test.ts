import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packEntriesMin, RaftLog } from '../../../src/raft/log.ts';
import { EntryType, emptyConfState, entrySize, type Entry, type Snapshot } from '../../../src/raft/types.ts';

function ent(index: number, term: number, bytes = 0): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array(bytes) };
}
/** Entries from `first` with the given terms: ents(1, 1, 1, 2) = [1t1, 2t1, 3t2]. */
function ents(first: number, ...terms: number[]): Entry[] {
  return terms.map((t, i) => ent(first + i, t));
}
function snap(index: number, term: number): Snapshot {
  return { metadata: { index, term, confState: { ...emptyConfState(), voters: [1] } }, data: new Uint8Array([1, 2, 3]) };
}
const pairs = (es: readonly Entry[]) => es.map((e) => [e.index, e.term]);

describe('RaftLog construction', () => {
  it('an empty log', () => {
    const log = new RaftLog(null, [], 0);
    expect(log.firstIndex()).toBe(1);
    expect(log.lastIndex()).toBe(0);
    expect(log.lastTerm()).toBe(0);
    expect(log.committed).toBe(0);
    expect(log.unstableEntries()).toEqual([]);
  });

  it('restored entries are stable; commit is clamped to the log', () => {
    const log = new RaftLog(null, ents(1, 1, 1, 2), 10);
    expect(log.lastIndex()).toBe(3);
    expect(log.committed).toBe(3);
    expect(log.stableIndex).toBe(3);
    expect(log.unstableEntries()).toEqual([]);
  });

  it('entries after a snapshot start at its index + 1', () => {
    const log = new RaftLog(snap(5, 2), ents(6, 2, 3), 6);
    expect(log.firstIndex()).toBe(6);
    expect(log.lastIndex()).toBe(7);
    expect(log.committed).toBe(6);
    expect(log.applied).toBe(5);
    expect(() => new RaftLog(snap(5, 2), ents(7, 2), 0)).toThrow(/expected 6/);
  });
});

describe('RaftLog.term', () => {
  const log = new RaftLog(snap(5, 2), ents(6, 2, 3, 3), 0);
  it.each([
    [4, undefined], // below the compaction point
    [5, 2], // at the compaction point: the snapshot's term
    [6, 2],
    [7, 3],
    [8, 3],
    [9, undefined], // past the end
  ])('term(%i) = %s', (i, want) => {
    expect(log.term(i)).toBe(want);
  });

  it('entryAt excludes the compaction point', () => {
    expect(log.entryAt(5)).toBeUndefined();
    expect(log.entryAt(6)?.term).toBe(2);
    expect(log.entryAt(9)).toBeUndefined();
  });
});

describe('RaftLog.isUpToDate', () => {
  const log = new RaftLog(null, ents(1, 1, 2, 3), 0); // last 3, term 3
  it.each([
    [2, 4, true], // higher term wins regardless of index
    [3, 4, true],
    [4, 4, true],
    [2, 2, false], // lower term loses regardless of index
    [3, 2, false],
    [4, 2, false],
    [2, 3, false], // same term: longer or equal wins
    [3, 3, true],
    [4, 3, true],
  ])('(%i, term %i) → %s', (i, t, want) => {
    expect(log.isUpToDate(i, t)).toBe(want);
  });
});

describe('RaftLog.append', () => {
  it('extends the log and returns the new last index', () => {
    const log = new RaftLog(null, ents(1, 1, 2), 0);
    expect(log.append([])).toBe(2);
    expect(log.append(ents(3, 2, 2))).toBe(4);
    expect(pairs(log.unstableEntries())).toEqual([[3, 2], [4, 2]]);
  });

  it('overwrites an uncommitted suffix and pulls back the stable index', () => {
    const log = new RaftLog(null, ents(1, 1, 2, 2), 1);
    expect(log.append(ents(2, 3))).toBe(2);
    expect(log.term(2)).toBe(3);
    expect(log.term(3)).toBeUndefined();
    expect(log.stableIndex).toBe(1);
    expect(pairs(log.unstableEntries())).toEqual([[2, 3]]);
  });

  it('refuses to overwrite committed entries or to leave a gap', () => {
    const log = new RaftLog(null, ents(1, 1, 2, 2), 2);
    expect(() => log.append(ents(2, 3))).toThrow(/overwrite committed/);
    expect(() => log.append(ents(5, 3))).toThrow(/gap/);
    expect(pairs(log.slice(1, 4, Infinity)!)).toEqual([[1, 1], [2, 2], [3, 2]]);
  });
});

describe('RaftLog.findConflict', () => {
  const log = new RaftLog(null, ents(1, 1, 2, 3), 0);
  it.each([
    [[], 0],
    [ents(1, 1, 2, 3), 0], // all match
    [ents(2, 2, 3), 0],
    [ents(3, 3), 0],
    [ents(1, 1, 2, 3, 4, 4), 4], // new entries
    [ents(2, 2, 3, 4, 4), 4],
    [ents(4, 4, 4), 4],
    [ents(1, 4, 4), 1], // conflicts
    [ents(2, 1, 3, 4), 2],
    [ents(3, 1, 2, 4, 4), 3],
  ] as [Entry[], number][])('%#: → %i', (es, want) => {
    expect(log.findConflict(es)).toBe(want);
  });
});

describe('RaftLog.findConflictByTerm', () => {
  // Terms of 1..8: 1 1 2 2 2 4 4 4.
  const log = new RaftLog(null, ents(1, 1, 1, 2, 2, 2, 4, 4, 4), 0);
  it.each([
    [8, 5, 8, 4], // our term at 8 (4) <= 5
    [8, 4, 8, 4],
    [8, 3, 5, 2], // skip the whole term-4 run
    [8, 2, 5, 2],
    [8, 1, 2, 1],
    [8, 0, 0, 0], // nothing at or below term 0 but the empty start
    [20, 3, 5, 2], // an index past our log is clamped to the last index
    [4, 1, 2, 1],
  ])('(%i, %i) → index %i term %i', (index, term, wantIndex, wantTerm) => {
    expect(log.findConflictByTerm(index, term)).toEqual({ index: wantIndex, term: wantTerm });
  });

  it('matches at the compaction point when its term is low enough', () => {
    const c = new RaftLog(snap(5, 3), ents(6, 4, 4), 0);
    expect(c.findConflictByTerm(7, 3)).toEqual({ index: 5, term: 3 });
  });

  it('below the compaction point the term is unknown (0) and the index is never past the one asked', () => {
    const c = new RaftLog(snap(5, 3), ents(6, 4, 4), 0);
    // Every term we hold is above 2: the answer lies below the compaction point.
    expect(c.findConflictByTerm(7, 2)).toEqual({ index: 4, term: 0 });
    // Asked below the compaction point: we cannot tell, so assume a possible match there.
    expect(c.findConflictByTerm(3, 1)).toEqual({ index: 3, term: 0 });
  });
});

describe('RaftLog.maybeAppend', () => {
  // Log 1t1 2t2 3t3, committed 1.
  const base = () => new RaftLog(null, ents(1, 1, 2, 3), 1);
  type Case = [string, number, number, number, Entry[], number, number, [number, number][]];
  // [name, index, logTerm, leaderCommit, entries, want lastNew, want committed, want log]
  const cases: Case[] = [
    ['mismatch: wrong term at index', 3, 2, 3, ents(4, 4), -1, 1, [[1, 1], [2, 2], [3, 3]]],
    ['mismatch: index past the end', 4, 3, 3, ents(5, 4), -1, 1, [[1, 1], [2, 2], [3, 3]]],
    ['match, no entries, commit to leader commit', 3, 3, 3, [], 3, 3, [[1, 1], [2, 2], [3, 3]]],
    ['match, commit never past lastNew', 2, 2, 3, [], 2, 2, [[1, 1], [2, 2], [3, 3]]],
    ['match, commit only forward', 1, 1, 0, [], 1, 1, [[1, 1], [2, 2], [3, 3]]],
    ['append new entries', 3, 3, 4, ents(4, 4), 4, 4, [[1, 1], [2, 2], [3, 3], [4, 4]]],
    ['append, commit capped at lastNew', 3, 3, 9, ents(4, 4, 4), 5, 5, [[1, 1], [2, 2], [3, 3], [4, 4], [5, 4]]],
    ['entries already present are not rewritten', 1, 1, 2, ents(2, 2, 3), 3, 2, [[1, 1], [2, 2], [3, 3]]],
    ['overwrite an uncommitted suffix', 1, 1, 1, ents(2, 4), 2, 1, [[1, 1], [2, 4]]],
    ['overwrite from the middle', 2, 2, 3, ents(3, 4, 4), 4, 3, [[1, 1], [2, 2], [3, 4], [4, 4]]],
  ];
  it.each(cases)('%s', (_name, index, logTerm, commit, es, wantLastNew, wantCommit, wantLog) => {
    const log = base();
    expect(log.maybeAppend(index, logTerm, commit, es)).toBe(wantLastNew);
    expect(log.committed).toBe(wantCommit);
    expect(pairs(log.slice(1, 100, Infinity)!)).toEqual(wantLog);
  });

  it('a prefix of our log does not truncate what follows it', () => {
    const log = base();
    expect(log.maybeAppend(0, 0, 1, ents(1, 1))).toBe(1);
    expect(log.lastIndex()).toBe(3);
    expect(log.committed).toBe(1);
  });

  it('refuses to rewrite a committed entry', () => {
    const log = new RaftLog(null, ents(1, 1, 2, 3), 3);
    expect(() => log.maybeAppend(1, 1, 3, ents(2, 4))).toThrow(/conflicts with committed/);
    expect(log.term(2)).toBe(2);
  });
});

describe('RaftLog.slice', () => {
  const size = entrySize(ent(1, 1, 100));
  const log = new RaftLog(snap(2, 1), [ent(3, 1, 100), ent(4, 1, 100), ent(5, 2, 100), ent(6, 2, 100)], 0);
  it('returns [lo, hi) without a limit', () => {
    expect(pairs(log.slice(3, 6, Infinity)!)).toEqual([[3, 1], [4, 1], [5, 2]]);
  });
  it('clamps hi to the end of the log', () => {
    expect(pairs(log.slice(5, 100, Infinity)!)).toEqual([[5, 2], [6, 2]]);
  });
  it('is empty for lo at or past hi', () => {
    expect(log.slice(4, 4, Infinity)).toEqual([]);
    expect(log.slice(7, 8, Infinity)).toEqual([]);
  });
  it('is undefined when lo was compacted', () => {
    expect(log.slice(2, 4, Infinity)).toBeUndefined();
    expect(log.slice(1, 4, Infinity)).toBeUndefined();
  });
  it.each([
    [0, 1], // always at least one entry
    [size - 1, 1],
    [size, 1],
    [2 * size - 1, 1],
    [2 * size, 2],
    [3 * size, 3],
    [10 * size, 4],
  ])('bytesMax %i → %i entries', (bytesMax, want) => {
    expect(log.slice(3, 7, bytesMax)!.length).toBe(want);
  });
});

describe('RaftLog.unstableEntries / stableTo', () => {
  it('marks handed-out entries stable', () => {
    const log = new RaftLog(null, [], 0);
    log.append(ents(1, 1, 1));
    const handed = log.unstableEntries();
    expect(pairs(handed)).toEqual([[1, 1], [2, 1]]);
    log.append(ents(3, 1)); // arrives while the first batch is being persisted
    log.stableTo(handed);
    expect(log.stableIndex).toBe(2);
    expect(pairs(log.unstableEntries())).toEqual([[3, 1]]);
  });

  it('handed-out entries overwritten before stableTo: only the surviving prefix becomes stable', () => {
    const log = new RaftLog(null, ents(1, 1), 0);
    log.append(ents(2, 1, 1, 1));
    const handed = log.unstableEntries(); // 2t1 3t1 4t1
    log.append(ents(3, 2)); // a new leader replaces 3.. with 3t2
    log.stableTo(handed);
    expect(log.stableIndex).toBe(2);
    expect(pairs(log.unstableEntries())).toEqual([[3, 2]]);
  });

  it('handed-out entries entirely overwritten: nothing becomes stable', () => {
    const log = new RaftLog(null, ents(1, 1), 0);
    log.append(ents(2, 1, 1));
    const handed = log.unstableEntries();
    log.append(ents(2, 2));
    log.stableTo(handed);
    expect(log.stableIndex).toBe(1);
    expect(pairs(log.unstableEntries())).toEqual([[2, 2]]);
  });

  it('an overwrite of already stable entries pulls the stable index back', () => {
    const log = new RaftLog(null, ents(1, 1, 1, 1), 0);
    log.append(ents(4, 1));
    const handed = log.unstableEntries(); // 4t1
    log.append(ents(2, 2)); // replaces stable 2, 3 and handed-out 4
    log.stableTo(handed);
    expect(log.stableIndex).toBe(1);
    expect(pairs(log.unstableEntries())).toEqual([[2, 2]]);
  });

  it('stableTo never moves the stable index back', () => {
    const log = new RaftLog(null, ents(1, 1, 1, 1), 0);
    log.stableTo(ents(1, 1));
    expect(log.stableIndex).toBe(3);
  });
});

describe('RaftLog commit and apply', () => {
  it('hands out committed entries once, bounded by bytes, and tracks applied', () => {
    const log = new RaftLog(null, [ent(1, 1, 100), ent(2, 1, 100), ent(3, 1, 100), ent(4, 1, 100)], 0);
    expect(log.hasNextCommittedEntries()).toBe(false);
    expect(log.nextCommittedEntries(Infinity)).toEqual([]);

    log.commitTo(3);
    expect(log.hasNextCommittedEntries()).toBe(true);
    const first = log.nextCommittedEntries(0); // at least one
    expect(pairs(first)).toEqual([[1, 1]]);
    log.acceptApplying(1);
    expect(pairs(log.nextCommittedEntries(Infinity))).toEqual([[2, 1], [3, 1]]);
    log.acceptApplying(3);
    expect(log.hasNextCommittedEntries()).toBe(false);
    expect(log.applied).toBe(0);

    log.appliedTo(3);
    expect(log.applied).toBe(3);
    expect(log.applying).toBe(3);
    expect(() => log.appliedTo(4)).toThrow(/past commit/);
    expect(() => log.acceptApplying(4)).toThrow(/past commit/);
  });

  it('appliedTo past applying also moves applying', () => {
    const log = new RaftLog(null, ents(1, 1, 1, 1), 3);
    log.appliedTo(2);
    expect(log.applying).toBe(2);
    expect(pairs(log.nextCommittedEntries(Infinity))).toEqual([[3, 1]]);
  });

  it('commitTo never moves back and never past the log', () => {
    const log = new RaftLog(null, ents(1, 1, 1), 2);
    log.commitTo(1);
    expect(log.committed).toBe(2);
    expect(() => log.commitTo(3)).toThrow(/past last index/);
  });

  it('maybeCommit commits only an entry of the given term (figure 8)', () => {
    const log = new RaftLog(null, ents(1, 1, 1, 2), 0);
    expect(log.maybeCommit(2, 2)).toBe(false);
    expect(log.committed).toBe(0);
    expect(log.maybeCommit(3, 2)).toBe(true);
    expect(log.committed).toBe(3);
    expect(log.maybeCommit(3, 2)).toBe(false);
  });
});

describe('RaftLog.restore', () => {
  it('replaces the log with a snapshot and holds it pending until applied', () => {
    const log = new RaftLog(null, ents(1, 1, 1, 1), 2);
    log.appliedTo(2);
    const s = snap(10, 3);
    log.restore(s);
    expect(log.firstIndex()).toBe(11);
    expect(log.lastIndex()).toBe(10);
    expect(log.lastTerm()).toBe(3);
    expect(log.term(10)).toBe(3);
    expect(log.term(3)).toBeUndefined();
    expect(log.committed).toBe(10);
    expect(log.pendingSnapshot).toBe(s);
    expect(log.snapshot).toBe(s);
    expect(log.unstableEntries()).toEqual([]);
    // No committed entries are handed out while the snapshot is pending.
    expect(log.hasNextCommittedEntries()).toBe(false);

    log.append(ents(11, 3));
    expect(pairs(log.unstableEntries())).toEqual([[11, 3]]);
    log.commitTo(11);
    expect(log.hasNextCommittedEntries()).toBe(false);

    log.snapshotApplied(s);
    expect(log.pendingSnapshot).toBeNull();
    expect(log.applied).toBe(10);
    expect(log.stableIndex).toBe(10);
    expect(pairs(log.nextCommittedEntries(Infinity))).toEqual([[11, 3]]);
  });

  it('refuses a snapshot at or below commit', () => {
    const log = new RaftLog(null, ents(1, 1, 1, 1), 2);
    expect(() => log.restore(snap(2, 1))).toThrow(/at or below commit/);
    expect(log.lastIndex()).toBe(3);
  });

  it('snapshotApplied ignores a snapshot that is no longer pending', () => {
    const log = new RaftLog(null, [], 0);
    const s1 = snap(5, 1);
    const s2 = snap(8, 2);
    log.restore(s1);
    log.restore(s2);
    log.snapshotApplied(s1);
    expect(log.pendingSnapshot).toBe(s2);
    expect(log.applied).toBe(0);
  });
});

describe('RaftLog.compact', () => {
  it('drops entries up to the index and keeps their term at the compaction point', () => {
    const log = new RaftLog(null, ents(1, 1, 1, 2, 2, 3), 5);
    log.appliedTo(4);
    log.compact(3);
    expect(log.firstIndex()).toBe(4);
    expect(log.lastIndex()).toBe(5);
    expect(log.term(3)).toBe(2);
    expect(log.term(2)).toBeUndefined();
    expect(log.slice(3, 6, Infinity)).toBeUndefined();
    expect(pairs(log.slice(4, 6, Infinity)!)).toEqual([[4, 2], [5, 3]]);
    expect(log.matchTerm(3, 2)).toBe(true);
    // Appending after compaction keeps indexes aligned.
    expect(log.maybeAppend(5, 3, 6, ents(6, 3))).toBe(6);
    expect(log.term(6)).toBe(3);
  });

  it('ignores an index at or below the compaction point', () => {
    const log = new RaftLog(snap(3, 1), ents(4, 1, 1), 5);
    log.appliedTo(5);
    log.compact(2);
    log.compact(3);
    expect(log.firstIndex()).toBe(4);
  });

  it('refuses to compact past applied', () => {
    const log = new RaftLog(null, ents(1, 1, 1, 1), 3);
    log.appliedTo(1);
    expect(() => log.compact(2)).toThrow(/past applied/);
    expect(log.firstIndex()).toBe(1);
  });

  it('compacting everything leaves an empty log at the compaction point', () => {
    const log = new RaftLog(null, ents(1, 1, 2), 2);
    log.appliedTo(2);
    log.compact(2);
    expect(log.lastIndex()).toBe(2);
    expect(log.lastTerm()).toBe(2);
    expect(log.isUpToDate(2, 2)).toBe(true);
    expect(log.isUpToDate(1, 2)).toBe(false);
  });
});

describe('RaftLog against a naive model', () => {
  type Op =
    | { kind: 'append'; back: number; logTermMatches: boolean; terms: number[]; commit: number }
    | { kind: 'handOut' }
    | { kind: 'persist' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant('append' as const),
      back: fc.nat(4), // append after the entry this far from the end
      logTermMatches: fc.boolean(),
      terms: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 4 }),
      commit: fc.oneof({ arbitrary: fc.constant(0), weight: 6 }, { arbitrary: fc.nat(30), weight: 1 }), // mostly uncommitted, so suffixes get overwritten
    }),
    fc.constant({ kind: 'handOut' as const }),
    fc.constant({ kind: 'persist' as const }),
  );

  it('maybeAppend, commit and stability match a plain array of terms', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const log = new RaftLog(null, [], 0);
        let terms: number[] = []; // terms[i - 1] is the term at index i
        let committed = 0;
        let stable = 0;
        let handed: Entry[] = [];
        const termAt = (i: number) => (i === 0 ? 0 : terms[i - 1]);
        for (const o of ops) {
          if (o.kind === 'append') {
            const index = Math.max(0, terms.length - o.back);
            const logTerm = o.logTermMatches && index <= terms.length ? termAt(index) : (termAt(index) ?? 0) + 1;
            // Terms along a log never decrease.
            const base = Math.max(logTerm, 1);
            const es = o.terms.map((t, i) => ent(index + 1 + i, base + t - 1)).map((e, i, a) => (i > 0 && e.term < a[i - 1].term ? { ...e, term: a[i - 1].term } : e));
            const matches = index <= terms.length && termAt(index) === logTerm;
            if (!matches) {
              expect(log.maybeAppend(index, logTerm, o.commit, es)).toBe(-1);
              continue;
            }
            const conflict = es.find((e) => e.index > terms.length || terms[e.index - 1] !== e.term);
            if (conflict && conflict.index <= committed) {
              expect(() => log.maybeAppend(index, logTerm, o.commit, es)).toThrow(/conflicts with committed/);
              continue;
            }
            expect(log.maybeAppend(index, logTerm, o.commit, es)).toBe(index + es.length);
            if (conflict) {
              terms = terms.slice(0, conflict.index - 1).concat(es.filter((e) => e.index >= conflict.index).map((e) => e.term));
              stable = Math.min(stable, conflict.index - 1);
            }
            committed = Math.max(committed, Math.min(o.commit, index + es.length));
          } else if (o.kind === 'handOut') {
            handed = log.unstableEntries();
            expect(handed.map((e) => e.index)).toEqual(terms.slice(stable).map((_, i) => stable + 1 + i));
          } else {
            log.stableTo(handed);
            const survivor = [...handed].reverse().find((e) => termAt(e.index) === e.term);
            if (survivor) stable = Math.max(stable, survivor.index);
            handed = [];
          }
          expect(log.lastIndex()).toBe(terms.length);
          expect(pairs(log.slice(1, terms.length + 1, Infinity) ?? [])).toEqual(terms.map((t, i) => [i + 1, t]));
          expect(log.committed).toBe(committed);
          expect(log.stableIndex).toBe(stable);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('RaftLog packing of stable, applied entries', () => {
  /** Entry i of term `term` with data that names it, `size` bytes (0 for a no-op). */
  function dataEnt(index: number, term: number, size: number, type = EntryType.Normal): Entry {
    const data = new Uint8Array(size);
    for (let b = 0; b < size; b++) data[b] = (index * 31 + b) & 0xff;
    return { index, term, type, data };
  }
  const plain = (e: Entry | undefined) => e && { index: e.index, term: e.term, type: e.type, data: Array.from(e.data) };

  it('reads back every packed entry, its term, type and data, across runs and the unpacked tail', () => {
    const log = new RaftLog(null, [], 0);
    const model: Entry[] = [];
    for (let i = 1; i <= 3 * packEntriesMin + 5; i++) {
      const e = dataEnt(i, 1 + Math.floor(i / 50), i % 7 === 0 ? 0 : 20 + (i % 13), i % 11 === 0 ? EntryType.ConfChange : EntryType.Normal);
      model.push(e);
      log.append([{ ...e, data: e.data.slice() }]);
      log.stableTo(log.unstableEntries());
      log.commitTo(i);
      log.appliedTo(i);
    }
    for (const e of model) {
      expect(plain(log.entryAt(e.index))).toEqual(plain(e));
      expect(log.term(e.index)).toBe(e.term);
    }
    expect(log.slice(1, model.length + 1, Infinity)!.map(plain)).toEqual(model.map(plain));
    expect(log.slice(packEntriesMin - 2, packEntriesMin + 3, Infinity)!.map(plain)).toEqual(model.slice(packEntriesMin - 3, packEntriesMin + 2).map(plain));
    expect(log.findConflictByTerm(model.length, 2)).toEqual({ index: 99, term: 2 });
  });

  it('applied entries not yet stable stay whole until stableTo, then read back the same', () => {
    const log = new RaftLog(null, [], 0);
    const n = 2 * packEntriesMin;
    const model: Entry[] = [];
    for (let i = 1; i <= n; i++) model.push(dataEnt(i, 1, 8));
    log.append(model);
    log.commitTo(n);
    log.appliedTo(n); // applied before the write finished (a single voter commits at once)
    const handed = log.unstableEntries();
    expect(handed.length).toBe(n);
    handed.forEach((e, i) => expect(e).toBe(model[i]));
    log.stableTo(handed);
    expect(log.unstableEntries()).toEqual([]);
    expect(log.slice(1, n + 1, Infinity)!.map(plain)).toEqual(model.map(plain));
  });

  it('compaction keeps the entries after its point readable and drops those at or before it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 * packEntriesMin }), fc.integer({ min: 0, max: 5 * packEntriesMin }), (applied, point) => {
        const last = 4 * packEntriesMin + 10;
        const log = new RaftLog(null, [], 0);
        const model: Entry[] = [];
        for (let i = 1; i <= last; i++) {
          model.push(dataEnt(i, 1 + (i >> 5), i % 5));
          log.append([model[i - 1]]);
        }
        log.stableTo(log.unstableEntries());
        log.commitTo(last);
        log.appliedTo(applied);
        const cut = Math.min(point, applied);
        log.compact(cut);
        expect(log.firstIndex()).toBe(cut + 1);
        expect(log.entryAt(cut)).toBeUndefined();
        expect(log.term(cut)).toBe(cut === 0 ? 0 : model[cut - 1].term);
        expect(log.slice(cut, last + 1, Infinity)).toBeUndefined();
        expect(log.slice(cut + 1, last + 1, Infinity)!.map(plain)).toEqual(model.slice(cut).map(plain));
        // Appending after the compaction and packing again still reads back in order.
        for (let i = last + 1; i <= last + packEntriesMin; i++) {
          model.push(dataEnt(i, 9, 3));
          log.append([model[i - 1]]);
        }
        log.stableTo(log.unstableEntries());
        log.commitTo(last + packEntriesMin);
        log.appliedTo(last + packEntriesMin);
        expect(log.slice(cut + 1, last + packEntriesMin + 1, Infinity)!.map(plain)).toEqual(model.slice(cut).map(plain));
      }),
      { numRuns: 200 },
    );
  });
});
