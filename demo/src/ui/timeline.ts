// The event timeline: what changed between two successive views of the cluster (elections,
// terms, leaders, faults, membership), plus what the KV panel reports (lease expiry).

import type { MemberId } from '../../../src/raft/types.ts';
import { clusterLeader, type ClusterView, type MemberView } from '../cluster.ts';
import { h } from './dom.ts';

export type EventKind = 'election' | 'leader' | 'term' | 'fault' | 'heal' | 'membership' | 'lease' | 'info';

/** Entries kept; older ones scroll away. */
const entriesMax = 200;

export class Timeline {
  readonly el = h('ol', { class: 'timeline', 'aria-live': 'polite' });
  private prev: ClusterView | null = null;
  private readonly startMs = performance.now();

  add(kind: EventKind, text: string): void {
    const seconds = (performance.now() - this.startMs) / 1000;
    const item = h('li', { class: `ev ev-${kind}`, 'data-kind': kind },
      h('time', {}, `${seconds.toFixed(1)}s`),
      h('span', { class: 'dot' }),
      h('span', { class: 'ev-text' }, text));
    this.el.prepend(item);
    while (this.el.children.length > entriesMax) this.el.lastElementChild!.remove();
  }

  /** Records what changed since the last view. */
  observe(view: ClusterView): void {
    const prev = this.prev;
    this.prev = view;
    if (prev === null) {
      this.add('info', `cluster of ${view.members.length}: ${view.members.map((m) => m.name).join(', ')}`);
      return;
    }
    const before = new Map(prev.members.map((m) => [m.id, m]));
    const names = new Map([...prev.members, ...view.members].map((m) => [m.id, m.name]));
    const name = (id: MemberId) => names.get(id) ?? String(id);
    for (const m of view.members) {
      const was = before.get(m.id);
      if (!was) {
        this.add('membership', `${m.name} joined as ${m.role === 'learner' ? 'a learner' : 'a voter'}`);
        continue;
      }
      this.memberChanges(was, m);
    }
    for (const m of prev.members) if (!view.members.some((x) => x.id === m.id)) this.add('membership', `${m.name} was removed from the cluster`);
    const cutBefore = new Set(prev.cutLinks.map(([a, b]) => `${a}-${b}`));
    const cutNow = new Set(view.cutLinks.map(([a, b]) => `${a}-${b}`));
    for (const k of cutNow) if (!cutBefore.has(k)) this.add('fault', `link ${linkName(k, name)} cut`);
    for (const k of cutBefore) if (!cutNow.has(k) && view.members.length === prev.members.length) this.add('heal', `link ${linkName(k, name)} healed`);
    const leaderBefore = clusterLeader(prev);
    const leaderNow = clusterLeader(view);
    if (leaderNow !== leaderBefore && leaderNow !== 0) {
      const term = view.members.find((m) => m.id === leaderNow)!.term;
      this.add('leader', `${name(leaderNow)} is leader of term ${term}`);
    } else if (leaderNow === 0 && leaderBefore !== 0) {
      this.add('election', 'no leader');
    }
  }

  private memberChanges(was: MemberView, m: MemberView): void {
    if (was.liveness !== m.liveness) {
      const what = { running: was.liveness === 'paused' ? 'resumed' : was.liveness === 'silent' ? 'is heard from again' : 'restarted', paused: 'paused', crashed: 'crashed', silent: 'went silent' }[m.liveness];
      this.add(m.liveness === 'running' ? 'heal' : 'fault', `${m.name} ${what}`);
    }
    if (m.liveness === 'crashed' || m.liveness === 'silent') return;
    if (was.role !== m.role) {
      if (m.role === 'pre-candidate') this.add('election', `${m.name} asks for pre-votes (term ${m.term + 1} if it wins)`);
      else if (m.role === 'candidate') this.add('election', `${m.name} starts an election for term ${m.term}`);
      else if (was.role === 'leader') this.add('term', `${m.name} steps down to ${m.role} (term ${m.term})`);
      else if (was.role === 'learner') this.add('membership', `${m.name} promoted to voter`);
    } else if (was.term !== m.term && m.role === 'follower') {
      this.add('term', `${m.name} moves to term ${m.term}`);
    }
  }
}

function linkName(key: string, name: (id: MemberId) => string): string {
  const [a, b] = key.split('-').map(Number);
  return `${name(a)}–${name(b)}`;
}
