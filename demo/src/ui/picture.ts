// The live cluster picture: members as nodes, links as edges, every Raft message drawn in flight
// from sender to receiver. Click an edge to cut or heal that link.

import type { MemberId } from '../../../src/raft/types.ts';
import { clusterLeader, type ClusterView, type MemberView, type WireMessage } from '../cluster.ts';
import { s, setAttrs } from './dom.ts';

interface Geometry {
  width: number;
  height: number;
  /** The ellipse members sit on: wide, so labels under the nodes never touch. */
  orbitX: number;
  orbitY: number;
  nodeRadius: number;
}

const wide: Geometry = { width: 640, height: 420, orbitX: 200, orbitY: 140, nodeRadius: 42 };
/** For phones: drawn at about its own size, so text stays as large as on a desktop. */
const narrow: Geometry = { width: 360, height: 320, orbitX: 118, orbitY: 98, nodeRadius: 36 };
/** Below this rendered width (CSS px) the narrow geometry is used. */
const narrowBelowPx = 520;

/** Requests and answers travel on either side of an edge so both stay visible. */
const laneOffset = 6;
/** Messages drawn at once at most; the oldest make way (heartbeats are many). */
const flightsMax = 400;
/** A dropped message is drawn this far along its edge, then fades. */
const droppedFraction = 0.42;

interface Flight {
  el: SVGElement;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  startMs: number;
  durationMs: number;
  dropped: boolean;
}

interface NodeEls {
  g: SVGGElement;
  term: number;
  name: SVGTextElement;
  detail: SVGTextElement;
  role: SVGTextElement;
  roleBg: SVGRectElement;
}

interface EdgeEls {
  g: SVGGElement;
  line: SVGLineElement;
  hit: SVGLineElement;
  mark: SVGGElement;
}

export class ClusterPicture {
  readonly el: SVGSVGElement;
  private readonly edgeLayer = s('g', { class: 'edges' });
  private readonly flightLayer = s('g', { class: 'flights' });
  private readonly nodeLayer = s('g', { class: 'nodes' });
  private readonly positions = new Map<MemberId, { x: number; y: number }>();
  private readonly nodes = new Map<MemberId, NodeEls>();
  private readonly edges = new Map<string, EdgeEls>();
  private flights: Flight[] = [];
  private layoutKey = '';
  private animating = false;
  private geo: Geometry = wide;
  private lastView: ClusterView | null = null;

  constructor(private readonly onToggleLink: (a: MemberId, b: MemberId) => void) {
    this.el = s('svg', { class: 'picture', role: 'img', 'aria-label': 'Cluster members and the messages between them' },
      this.edgeLayer, this.flightLayer, this.nodeLayer);
    new ResizeObserver(() => {
      const geo = this.el.clientWidth > 0 && this.el.clientWidth < narrowBelowPx ? narrow : wide;
      if (geo === this.geo) return;
      this.geo = geo;
      this.layoutKey = '';
      if (this.lastView) this.render(this.lastView);
    }).observe(this.el);
  }

  render(view: ClusterView): void {
    this.lastView = view;
    const ids = view.members.map((m) => m.id);
    const key = `${this.geo === wide ? 'w' : 'n'}:${ids.join(',')}`;
    if (key !== this.layoutKey) this.layout(ids, key);
    const leader = clusterLeader(view);
    const cut = new Set(view.cutLinks.map(([a, b]) => `${a}-${b}`));
    const byId = new Map(view.members.map((m) => [m.id, m]));
    for (const [k, e] of this.edges) {
      const [a, b] = k.split('-').map(Number);
      const down = isDown(byId.get(a)) || isDown(byId.get(b));
      const isCut = cut.has(k);
      const leaderEdge = !isCut && !down && (a === leader || b === leader);
      setAttrs(e.g, { class: `edge${isCut ? ' cut' : ''}${down ? ' down' : ''}${leaderEdge ? ' lead' : ''}` });
      setAttrs(e.hit, { 'aria-label': `${isCut ? 'Heal' : 'Cut'} the link ${nameOf(byId, a)}–${nameOf(byId, b)}` });
      e.hit.querySelector('title')!.textContent = `${isCut ? 'Heal' : 'Cut'} the link ${nameOf(byId, a)}–${nameOf(byId, b)}`;
    }
    for (const m of view.members) this.renderNode(m, m.id === leader);
  }

  /** Starts drawing one message; it reaches its target after `flightMs`. */
  addMessage(m: WireMessage): void {
    const from = this.positions.get(m.from);
    const to = this.positions.get(m.to);
    if (!from || !to) return;
    const dx = to.x - from.x;
    const dy = to.y - from.y;
    const len = Math.hypot(dx, dy);
    const ux = dx / len;
    const uy = dy / len;
    // A fixed side per direction: a→b and b→a never overlap.
    const side = m.from < m.to ? 1 : -1;
    const ox = -uy * laneOffset * side;
    const oy = ux * laneOffset * side;
    const nodeRadius = this.geo.nodeRadius;
    const el = messageShape(m);
    this.flightLayer.append(el);
    this.flights.push({
      el,
      x0: from.x + ux * nodeRadius + ox,
      y0: from.y + uy * nodeRadius + oy,
      x1: to.x - ux * nodeRadius + ox,
      y1: to.y - uy * nodeRadius + oy,
      startMs: performance.now(),
      durationMs: Math.max(m.flightMs, 60),
      dropped: m.dropped,
    });
    if (this.flights.length > flightsMax) this.flights.shift()!.el.remove();
    if (!this.animating) {
      this.animating = true;
      requestAnimationFrame((t) => this.frame(t));
    }
  }

  private frame(now: number): void {
    this.flights = this.flights.filter((f) => {
      const p = (now - f.startMs) / f.durationMs;
      const end = f.dropped ? droppedFraction : 1;
      if (p >= end + (f.dropped ? 0.35 : 0)) {
        f.el.remove();
        return false;
      }
      const t = Math.min(p, end);
      f.el.setAttribute('transform', `translate(${f.x0 + (f.x1 - f.x0) * t} ${f.y0 + (f.y1 - f.y0) * t})`);
      if (f.dropped && p > end) f.el.setAttribute('opacity', String(Math.max(0, 1 - (p - end) / 0.35)));
      return true;
    });
    if (this.flights.length > 0) requestAnimationFrame((t) => this.frame(t));
    else this.animating = false;
  }

  /** Places members on an ellipse (the first at the top) and rebuilds nodes and edges. */
  private layout(ids: MemberId[], key: string): void {
    this.layoutKey = key;
    const { width, height, orbitX, orbitY } = this.geo;
    setAttrs(this.el, { viewBox: `0 0 ${width} ${height}`, 'data-geometry': this.geo === wide ? 'wide' : 'narrow' });
    this.positions.clear();
    ids.forEach((id, i) => {
      const angle = -Math.PI / 2 + (2 * Math.PI * i) / ids.length;
      this.positions.set(id, { x: width / 2 + orbitX * Math.cos(angle), y: height / 2 - 4 + orbitY * Math.sin(angle) });
    });
    for (const f of this.flights) f.el.remove();
    this.flights = [];
    this.edgeLayer.replaceChildren();
    this.nodeLayer.replaceChildren();
    this.edges.clear();
    this.nodes.clear();
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) this.addEdge(ids[i], ids[j]);
    }
    for (const id of ids) this.addNode(id);
  }

  private addEdge(a: MemberId, b: MemberId): void {
    const p = this.positions.get(a)!;
    const q = this.positions.get(b)!;
    const line = s('line', { x1: p.x, y1: p.y, x2: q.x, y2: q.y, class: 'edge-line' });
    const hit = s('line', {
      x1: p.x, y1: p.y, x2: q.x, y2: q.y, class: 'edge-hit', tabindex: 0, role: 'button',
      'data-link': `${a}-${b}`,
      onclick: () => this.onToggleLink(a, b),
      onkeydown: ((e: KeyboardEvent) => {
        if (e.key === 'Enter' || e.key === ' ') this.onToggleLink(a, b);
      }) as EventListener,
    }, s('title'));
    const mx = (p.x + q.x) / 2;
    const my = (p.y + q.y) / 2;
    const mark = s('g', { class: 'cut-mark', transform: `translate(${mx} ${my})` },
      s('circle', { r: 13 }),
      s('path', { d: 'M -5 -5 L 5 5 M 5 -5 L -5 5' }));
    const g = s('g', { class: 'edge' }, line, mark, hit);
    this.edgeLayer.append(g);
    this.edges.set(`${a}-${b}`, { g, line, hit, mark });
  }

  private addNode(id: MemberId): void {
    const { x, y } = this.positions.get(id)!;
    const nodeRadius = this.geo.nodeRadius;
    const name = s('text', { class: 'node-name', y: -4 });
    const detail = s('text', { class: 'node-detail', y: 16 });
    const roleBg = s('rect', { class: 'role-bg', y: nodeRadius + 8, height: 20, rx: 10 });
    const role = s('text', { class: 'role-text', y: nodeRadius + 22 });
    const g = s('g', { class: 'node', transform: `translate(${x} ${y})`, 'data-member': id },
      s('circle', { class: 'halo', r: nodeRadius + 12 }),
      s('circle', { class: 'body', r: nodeRadius }),
      s('circle', { class: 'ring', r: nodeRadius }),
      name, detail, roleBg, role);
    this.nodeLayer.append(g);
    this.nodes.set(id, { g, term: -1, name, detail, role, roleBg });
  }

  /** A ring that spreads from a node once: its term changed (or it became leader). */
  private ripple(g: SVGGElement, kind: 'term' | 'leader'): void {
    const ring = s('circle', { class: `ripple ripple-${kind}`, r: this.geo.nodeRadius });
    ring.addEventListener('animationend', () => ring.remove());
    g.insertBefore(ring, g.firstChild);
  }

  private renderNode(m: MemberView, isLeader: boolean): void {
    const n = this.nodes.get(m.id);
    if (!n) return;
    const state = m.liveness === 'running' ? m.role : m.liveness;
    setAttrs(n.g, { class: `node role-${m.role} live-${m.liveness}${isLeader ? ' is-leader' : ''}` });
    if (n.term >= 0 && m.term > n.term) this.ripple(n.g, m.role === 'leader' ? 'leader' : 'term');
    n.term = m.term;
    n.name.textContent = m.name;
    n.detail.textContent = `term ${m.term}`;
    // A paused member still believes in its role; a crashed one has none.
    const label = m.liveness === 'running' ? m.role : m.liveness === 'paused' ? `paused · ${m.role}` : m.liveness;
    n.role.textContent = label;
    const w = label.length * 7.4 + 22;
    setAttrs(n.roleBg, { x: -w / 2, width: w, 'data-state': state });
  }
}

/** A member whose links are drawn as down: stopped, or not heard from. */
function isDown(m: MemberView | undefined): boolean {
  return m?.liveness === 'crashed' || m?.liveness === 'silent';
}

function nameOf(byId: Map<MemberId, MemberView>, id: MemberId): string {
  return byId.get(id)?.name ?? String(id);
}

/** Requests are filled, answers hollow; a refusal has a red outline; size grows with weight. */
function messageShape(m: WireMessage): SVGElement {
  const cls = `msg msg-${m.kind}${m.response ? ' resp' : ''}${m.reject ? ' reject' : ''}${m.dropped ? ' dropped' : ''}`;
  if (m.kind === 'snapshot') return s('rect', { class: cls, x: -7, y: -7, width: 14, height: 14, rx: 3 });
  const r = m.kind === 'heartbeat' ? 3.5 : m.kind === 'append' && m.entries > 0 ? 6 : m.kind === 'vote' || m.kind === 'prevote' ? 5.5 : 4.5;
  return s('circle', { class: cls, r });
}
