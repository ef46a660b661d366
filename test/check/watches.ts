// The watch checker. For every watcher, across all its responses (reconnects included):
// - every event is for a key under the watched prefix, at or after the start revision;
// - events are in strictly increasing revision order, except that the events of one revision
//   (one transaction) are contiguous and delivered in one response (a transaction is never
//   split); the same (revision, key) never appears twice;
// - each event is a write that happened: the acknowledged write with that revision (same key,
//   type and value), or — for a revision no acknowledged write has — a write with unknown
//   outcome to that key and value that could have got that revision (a distinct one for each
//   such revision: an operation takes effect at most once). Seeing it proves it took effect;
// - no gaps: every write under the prefix from the start revision up to the last revision the
//   watcher received is delivered — acknowledged writes, and unknown-outcome writes some
//   watcher saw. A watcher cancelled by compaction (`compactedAt`) is excused the revisions
//   below that revision. What a watcher would have received after its last event is not
//   checked (a watcher may lag).

import type { CheckResult, HistoryOp, WatchEvent, WatchRecord } from './history.ts';
import { acknowledgedWrite, describeOp, possibleWrite, revisionFloor, validateHistory, type Write } from './ops.ts';

interface Delivered {
  event: WatchEvent;
  response: number;
}

interface Violation {
  anomaly: string;
  witness: unknown;
}

export function checkWatches(history: HistoryOp[], watches: WatchRecord[]): CheckResult {
  validateHistory(history);
  const checked = watches.reduce((n, w) => n + w.responses.reduce((m, r) => m + r.events.length, 0), 0);
  const violation = checkAllWatchers(history, watches);
  return violation === null ? { ok: true, checked } : { ok: false, checked, ...violation };
}

function checkAllWatchers(history: HistoryOp[], watches: WatchRecord[]): Violation | null {
  const known = new Map<number, Write & { revision: number }>();
  for (const op of history) {
    const write = acknowledgedWrite(op);
    if (write !== null) known.set(write.revision, write);
  }
  // Events at revisions no acknowledged write has, keyed by revision, with who saw them first.
  const unexplained = new Map<number, { event: WatchEvent; watcher: number }>();
  for (const [index, watch] of watches.entries()) {
    const delivered = watch.responses.flatMap((r, response) => r.events.map((event) => ({ event, response })));
    const v = checkOrder(watch, index, delivered);
    if (v !== null) return v;
    for (const { event } of delivered) {
      const write = known.get(event.modRevision);
      if (write !== undefined) {
        if (!sameEffect(event, write)) return wrongEvent(watch, index, event, `the acknowledged write at revision ${event.modRevision} was ${describeOp(write.op)}`);
        continue;
      }
      const first = unexplained.get(event.modRevision);
      if (first === undefined) unexplained.set(event.modRevision, { event, watcher: index });
      else if (first.event.key !== event.key || first.event.type !== event.type || first.event.value !== event.value) {
        return wrongEvent(watch, index, event, `watcher ${first.watcher} saw ${describeEvent(first.event)} at that revision (one revision is one single-key write in these histories)`);
      }
    }
  }
  const phantom = matchUnknownWrites(history, unexplained);
  if (phantom !== null) return phantom;
  for (const [index, watch] of watches.entries()) {
    const gap = findGap(watch, index, known, unexplained);
    if (gap !== null) return gap;
  }
  return null;
}

function checkOrder(watch: WatchRecord, index: number, delivered: Delivered[]): Violation | null {
  const seen = new Set<string>();
  let previous: Delivered | null = null;
  for (const d of delivered) {
    const { event } = d;
    const at = { watcher: index, client: watch.client, prefix: watch.prefix, startRevision: watch.startRevision, event: describeEvent(event), response: d.response };
    if (!event.key.startsWith(watch.prefix)) return { anomaly: 'watch-outside-prefix', witness: { ...at, explanation: `a watch on prefix ${JSON.stringify(watch.prefix)} delivered an event for ${JSON.stringify(event.key)}` } };
    if (event.modRevision < watch.startRevision) return { anomaly: 'watch-before-start', witness: { ...at, explanation: `a watch from revision ${watch.startRevision} delivered an event at revision ${event.modRevision}` } };
    const id = `${event.modRevision}/${event.key}`;
    if (seen.has(id)) return { anomaly: 'watch-duplicate', witness: { ...at, explanation: `the event at revision ${event.modRevision} on ${JSON.stringify(event.key)} was delivered twice` } };
    seen.add(id);
    if (previous !== null) {
      const before = previous.event.modRevision;
      if (event.modRevision < before) return { anomaly: 'watch-reorder', witness: { ...at, previous: describeEvent(previous.event), explanation: `revision ${event.modRevision} delivered after revision ${before}` } };
      if (event.modRevision === before && d.response !== previous.response) {
        return { anomaly: 'watch-split-revision', witness: { ...at, previous: describeEvent(previous.event), previousResponse: previous.response, explanation: `the events of revision ${before} came in two responses; a transaction's events must arrive together` } };
      }
    }
    previous = d;
  }
  return null;
}

function sameEffect(event: WatchEvent, write: Write): boolean {
  return event.key === write.key && event.type === (write.value === null ? 'delete' : 'put') && (event.type === 'delete' || event.value === write.value);
}

/**
 * Gives each revision only watchers explain a distinct unknown-outcome write that could have
 * made it (bipartite matching), or reports the revision nothing explains. A write can only get
 * a revision above every revision returned before it was called.
 */
function matchUnknownWrites(history: HistoryOp[], unexplained: Map<number, { event: WatchEvent; watcher: number }>): Violation | null {
  if (unexplained.size === 0) return null;
  const candidates = history.map(possibleWrite).filter((w): w is Write => w !== null);
  const floor = revisionFloor(history);
  const revisions = [...unexplained.keys()].sort((a, b) => a - b);
  const options = revisions.map((r) => candidates.filter((w) => sameEffect(unexplained.get(r)!.event, w) && floor(w.op.call) < r));
  const owner = new Map<Write, number>();
  const tryAssign = (i: number, visited: Set<Write>): boolean => {
    for (const w of options[i]) {
      if (visited.has(w)) continue;
      visited.add(w);
      const current = owner.get(w);
      if (current === undefined || tryAssign(current, visited)) {
        owner.set(w, i);
        return true;
      }
    }
    return false;
  };
  for (let i = 0; i < revisions.length; i++) {
    if (tryAssign(i, new Set())) continue;
    const { event, watcher } = unexplained.get(revisions[i])!;
    return {
      anomaly: 'watch-phantom-event',
      witness: {
        watcher,
        event: describeEvent(event),
        explanation: `no acknowledged write has revision ${event.modRevision}, and no write with unknown outcome to ${JSON.stringify(event.key)} could have made this event${options[i].length > 0 ? ' (the ones that could are already needed for other revisions)' : ''}`,
        candidates: options[i].map((w) => describeOp(w.op)),
      },
    };
  }
  return null;
}


function findGap(watch: WatchRecord, index: number, known: Map<number, Write & { revision: number }>, unexplained: Map<number, { event: WatchEvent }>): Violation | null {
  const delivered = watch.responses.flatMap((r) => r.events);
  if (delivered.length === 0) return null;
  const last = Math.max(...delivered.map((e) => e.modRevision));
  const got = new Set(delivered.map((e) => `${e.modRevision}/${e.key}`));
  const from = Math.max(watch.startRevision, watch.compactedAt ?? 0);
  const due: { revision: number; key: string; what: string }[] = [];
  for (const [revision, w] of known) due.push({ revision, key: w.key, what: describeOp(w.op) });
  for (const [revision, { event }] of unexplained) due.push({ revision, key: event.key, what: `${describeEvent(event)} (a write with unknown outcome another watcher saw)` });
  due.sort((a, b) => a.revision - b.revision);
  for (const d of due) {
    if (d.revision < from || d.revision > last || !d.key.startsWith(watch.prefix)) continue;
    if (got.has(`${d.revision}/${d.key}`)) continue;
    const before = delivered.filter((e) => e.modRevision < d.revision).pop();
    const after = delivered.find((e) => e.modRevision > d.revision);
    return {
      anomaly: 'watch-gap',
      witness: {
        watcher: index,
        client: watch.client,
        prefix: watch.prefix,
        startRevision: watch.startRevision,
        explanation: `the watcher received revisions up to ${last} but not revision ${d.revision}`,
        missing: d.what,
        deliveredBefore: before === undefined ? null : describeEvent(before),
        deliveredAfter: after === undefined ? null : describeEvent(after),
      },
    };
  }
  return null;
}

function wrongEvent(watch: WatchRecord, index: number, event: WatchEvent, why: string): Violation {
  return { anomaly: 'watch-wrong-event', witness: { watcher: index, client: watch.client, prefix: watch.prefix, event: describeEvent(event), explanation: `the watcher received ${describeEvent(event)}, but ${why}` } };
}

function describeEvent(e: WatchEvent): string {
  return e.type === 'put' ? `put ${JSON.stringify(e.key)} = ${JSON.stringify(e.value)} @rev ${e.modRevision}` : `delete ${JSON.stringify(e.key)} @rev ${e.modRevision}`;
}
