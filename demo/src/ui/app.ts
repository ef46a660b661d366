// The page: cluster picture, member cards, key-value panel and timeline, all fed by one
// DemoCluster.

import type { DemoCluster, FaultAction, MemberView, MessageKind } from '../cluster.ts';
import { clusterLeader } from '../cluster.ts';
import { h, replaceChildren } from './dom.ts';
import { KvPanel } from './kv-panel.ts';
import { MemberCards } from './members.ts';
import { OutboxPanel } from './outbox-panel.ts';
import { ClusterPicture } from './picture.ts';
import { Timeline } from './timeline.ts';

const legend: [MessageKind | 'resp' | 'reject', string][] = [
  ['heartbeat', 'heartbeat'],
  ['append', 'append'],
  ['prevote', 'pre-vote'],
  ['vote', 'vote'],
  ['snapshot', 'snapshot'],
  ['read-index', 'read index'],
  ['resp', 'answer'],
  ['reject', 'refused'],
];

export function mountApp(root: HTMLElement, cluster: DemoCluster): { kv: KvPanel } {
  const timeline = new Timeline();
  const picture = new ClusterPicture((a, b) => {
    const cut = cluster.view().cutLinks.some(([x, y]) => (x === Math.min(a, b) && y === Math.max(a, b)));
    if (cluster.canCut(a, b)) cluster.setLink(a, b, !cut);
  });
  const onAction = (action: FaultAction, m: MemberView) => {
    cluster.act(action, m.id).catch((err: Error) => timeline.add('fault', `${action} ${m.name} failed: ${err.message}`));
  };
  const cards = new MemberCards(cluster, onAction);
  const kv = new KvPanel(cluster, (kind, text) => timeline.add(kind, text));
  const outbox = cluster.setOffline && cluster.openOutbox ? new OutboxPanel(cluster, (kind, text) => timeline.add(kind, text)) : null;
  const summary = h('div', { class: 'summary', 'data-testid': 'summary' });
  const policy = h('div', { class: 'policy' });
  let policyKey = '';

  const addButton = cluster.addMember
    ? h('button', { type: 'button', class: 'small', 'data-action': 'add', onclick: () => {
        cluster.addMember!().catch((err: Error) => timeline.add('membership', `adding a member failed: ${err.message}`));
      } }, '+ Add member')
    : null;
  const healAll = h('button', { type: 'button', class: 'small', 'data-action': 'heal-all', onclick: () => {
    for (const [a, b] of cluster.view().cutLinks) cluster.setLink(a, b, false);
  } }, 'Heal all links');

  root.className = '';
  replaceChildren(root,
    h('header', { class: 'top' },
      h('div', { class: 'brand' },
        h('span', { class: 'logo', 'aria-hidden': 'true' }, logo()),
        h('div', {}, h('h1', {}, 'meshkv'), h('p', { class: 'tagline' }, 'etcd, rebuilt in TypeScript — a live Raft cluster you can break'))),
      h('p', { class: 'mode', 'data-testid': 'mode' },
        h('span', { class: 'pill mode-pill' }, cluster.mode === 'in-page' ? 'in-page cluster' : 'tab member'),
        ' ', cluster.description)),
    policy,
    h('main', { class: 'grid' },
      h('section', { class: 'card stage', 'aria-labelledby': 'stage-title' },
        h('header', { class: 'section-head' },
          h('h2', { id: 'stage-title' }, 'Cluster'),
          summary,
          h('div', { class: 'stage-actions' }, healAll, addButton)),
        picture.el,
        h('ul', { class: 'legend' },
          ...legend.map(([kind, label]) => h('li', {}, h('span', { class: `key key-${kind}` }), label)),
          h('li', { class: 'hint' }, 'click a link to cut or heal it')),
        h('div', { class: 'events' },
          h('h3', { id: 'events-title' }, 'Timeline'),
          timeline.el)),
      h('div', { class: 'members-wrap' }, cards.el),
      kv.el,
      outbox?.el));

  const render = () => {
    const view = cluster.view();
    picture.render(view);
    cards.render(view);
    kv.render(view);
    outbox?.render(view);
    timeline.observe(view);
    const key = JSON.stringify([view.tabVotes, view.quorumLoss]);
    if (key !== policyKey) {
      policyKey = key;
      replaceChildren(policy, ...policyControls(cluster, view.tabVotes, view.quorumLoss ?? null, (text) => timeline.add('membership', text)));
    }
    const leader = view.members.find((m) => m.id === clusterLeader(view));
    const up = view.members.filter((m) => m.liveness === 'running').length;
    replaceChildren(summary,
      h('span', { class: `chip ${leader ? 'ok' : 'warn'}`, 'data-testid': 'leader' }, leader ? `leader ${leader.name}` : 'no leader'),
      h('span', { class: 'chip' }, `term ${Math.max(0, ...view.members.map((m) => m.term))}`),
      h('span', { class: 'chip' }, `${up}/${view.members.length} running`));
  };
  cluster.onChange(render);
  cluster.onMessage((m) => picture.addMessage(m));
  render();
  return { kv };
}

/**
 * The quorum banner, and where Node members vote beside tabs, the switch that lets tabs outvote
 * them, with what it costs next to it.
 */
function policyControls(cluster: DemoCluster, tabVotes: { tabsMayOutvote: boolean } | undefined, quorumLoss: string | null, note: (text: string) => void): HTMLElement[] {
  const out: HTMLElement[] = [];
  if (quorumLoss) out.push(h('div', { class: 'banner danger', role: 'alert', 'data-testid': 'quorum-banner' }, h('strong', {}, 'This member has no quorum. '), quorumLoss));
  if (!tabVotes || !cluster.setTabsMayOutvote) return out;
  const on = tabVotes.tabsMayOutvote;
  const toggle = h('input', {
    type: 'checkbox',
    'data-testid': 'tabs-may-outvote',
    checked: on,
    onchange: (e: Event) => {
      const want = (e.target as HTMLInputElement).checked;
      note(want ? 'letting tabs outvote the Node members…' : 'making tabs learners again…');
      cluster.setTabsMayOutvote!(want).catch((err: Error) => note(`changing the tab vote policy failed: ${err.message}`));
    },
  });
  out.push(
    h('div', { class: `banner ${on ? 'warn' : 'info'}`, 'data-testid': 'tab-votes' },
      h('label', {}, toggle, ' Tabs may outvote the Node members'),
      h('p', { 'data-testid': on ? 'outvote-warning' : 'learner-note' },
        on
          ? 'Warning: tabs now vote and hold the majority. Closing this browser, or a crash, can leave the Node members without a quorum: nothing commits until the tabs come back, or an operator restarts a Node member with --force-new-cluster (writes only the tabs held are then lost).'
          : 'Tabs are learners: they replicate, persist and serve reads and writes, but do not vote, so closing them never costs the Node members their quorum.')),
  );
  return out;
}

function logo(): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 32 32');
  svg.innerHTML = '<g fill="none" stroke="currentColor" stroke-width="2"><path d="M16 6 L6 24 L26 24 Z" opacity=".45"/></g><circle cx="16" cy="6" r="4.5" fill="currentColor"/><circle cx="6" cy="24" r="4.5" fill="currentColor" opacity=".75"/><circle cx="26" cy="24" r="4.5" fill="currentColor" opacity=".75"/>';
  return svg;
}
