// One card per member: who it is, what Raft says about it, whom it can reach, and the fault
// controls that break it.

import type { MemberId } from '../../../src/raft/types.ts';
import { clusterLeader, type ClusterView, type DemoCluster, type FaultAction, type MemberView } from '../cluster.ts';
import { h, replaceChildren } from './dom.ts';

/** The fault buttons on a card, as pairs that toggle. */
const actionPairs: [FaultAction, FaultAction, string, string][] = [
  ['isolate', 'heal', 'Isolate', 'Heal links'],
  ['pause', 'resume', 'Pause', 'Resume'],
  ['crash', 'restart', 'Crash', 'Restart'],
];

export class MemberCards {
  readonly el = h('div', { class: 'cards' });
  private readonly rendered = new Map<MemberId, { card: HTMLElement; json: string }>();

  constructor(
    private readonly cluster: DemoCluster,
    private readonly onAction: (action: FaultAction, m: MemberView) => void,
  ) {}

  render(view: ClusterView): void {
    const leader = clusterLeader(view);
    const longest = Math.max(1, ...view.members.map((m) => m.lastIndex));
    const names = new Map(view.members.map((m) => [m.id, m.name]));
    const seen = new Set<MemberId>();
    view.members.forEach((m, i) => {
      seen.add(m.id);
      const json = JSON.stringify([m, leader === m.id, view.clientMember === m.id, view.members.length, longest]);
      let entry = this.rendered.get(m.id);
      if (!entry) {
        entry = { card: h('article', { class: 'card member' }), json: '' };
        this.rendered.set(m.id, entry);
      }
      if (entry.json !== json) {
        entry.json = json;
        this.fill(entry.card, m, leader === m.id, view, names, longest);
      }
      if (this.el.children[i] !== entry.card) this.el.insertBefore(entry.card, this.el.children[i] ?? null);
    });
    for (const [id, entry] of this.rendered) {
      if (seen.has(id)) continue;
      entry.card.remove();
      this.rendered.delete(id);
    }
  }

  private fill(card: HTMLElement, m: MemberView, isLeader: boolean, view: ClusterView, names: Map<MemberId, string>, longest: number): void {
    card.className = `card member role-${m.role} live-${m.liveness}${isLeader ? ' is-leader' : ''}`;
    card.dataset.member = String(m.id);
    card.dataset.role = m.role;
    card.dataset.liveness = m.liveness;
    const peers = view.members.filter((p) => p.id !== m.id);
    const badge = m.liveness === 'running' ? m.role : m.liveness;
    replaceChildren(card,
      h('header', { class: 'member-head' },
        h('span', { class: 'member-name' }, m.name),
        h('span', { class: `pill state-${badge}` }, badge === 'pre-candidate' ? 'pre-candidate' : badge),
        view.self === m.id
          ? h('span', { class: 'via', title: 'This tab’s own member; the KV panel’s requests go to it' }, 'this tab')
          : view.clientMember === m.id ? h('span', { class: 'via', title: 'The KV panel’s requests go to this member' }, 'client') : null,
        h('span', { class: 'member-kind' }, `${m.kind} · ${m.persistence}`)),
      h('dl', { class: 'stats' },
        stat('term', m.term),
        stat('commit', unknownIndexes(m) ? null : m.commit),
        stat('applied', unknownIndexes(m) ? null : m.applied),
        stat('revision', unknownIndexes(m) ? null : m.revision)),
      unknownIndexes(m) ? h('p', { class: 'inferred' }, 'does not report its own status: role and term as the tabs see it') : logBar(m, longest),
      h('div', { class: 'reach' },
        h('span', { class: 'reach-label' }, 'reaches'),
        ...(peers.length === 0
          ? [h('span', { class: 'muted' }, 'no peers')]
          : peers.map((p) => h('span', { class: `peer ${m.reachable.includes(p.id) ? 'up' : 'down'}` }, names.get(p.id) ?? String(p.id)))),
        m.leader !== 0 && m.liveness === 'running' && !isLeader ? h('span', { class: 'follows' }, `leader ${names.get(m.leader) ?? m.leader}`) : null),
      h('div', { class: 'actions' },
        ...actionPairs.map(([on, off, onLabel, offLabel]) => {
          // The undo shows once the fault is complete (a member with one link cut can still be isolated).
          const action = this.cluster.can(off, m.id) && !this.cluster.can(on, m.id) ? off : on;
          const label = action === off ? offLabel : onLabel;
          return h('button', {
            type: 'button',
            class: action === off ? 'undo' : '',
            'data-action': action,
            disabled: !this.cluster.can(action, m.id),
            onclick: () => this.onAction(action, m),
          }, label);
        }),
        h('button', { type: 'button', class: 'danger', 'data-action': 'remove', disabled: !this.cluster.can('remove', m.id), onclick: () => this.onAction('remove', m) }, 'Remove')));
  }
}

/**
 * The member's log on a scale shared by every card: committed entries solid, entries it holds
 * but the cluster has not committed (yet, or ever) hatched.
 */
function logBar(m: MemberView, longest: number): HTMLElement {
  const pct = (n: number) => `${(Math.min(n, longest) / longest) * 100}%`;
  const uncommitted = Math.max(0, m.lastIndex - m.commit);
  return h('div', { class: 'log', title: `log up to index ${m.lastIndex}, committed up to ${m.commit}, applied up to ${m.applied}` },
    h('div', { class: 'log-track' },
      h('div', { class: 'log-committed', style: `width: ${pct(m.commit)}` }),
      uncommitted > 0 ? h('div', { class: 'log-uncommitted', style: `left: ${pct(m.commit)}; width: ${pct(uncommitted)}` }) : null),
    h('span', { class: 'log-label' }, `log ${m.lastIndex}`, uncommitted > 0 ? h('b', {}, ` · ${uncommitted} uncommitted`) : null));
}

/** `null`: not known to this tab (shown as a dash). */
function stat(label: string, value: number | null): HTMLElement {
  return h('div', {}, h('dt', {}, label), h('dd', {}, value ?? '—'));
}

/** Neither the member itself nor its HTTP status told us its indexes. */
function unknownIndexes(m: MemberView): boolean {
  return m.inferred && m.indexesKnown !== true;
}
