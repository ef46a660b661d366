// The key-value panel: put, get, delete, list a prefix, compare-and-swap; a live watch on every
// key; a lease with a TTL countdown whose keys vanish when it expires; the revision and the
// compaction point. Every value shown comes back from the cluster through the client.

import type { Client, Lease, Watcher } from '../../../src/client/index.ts';
import type { KeyValue } from '../../../src/mvcc/types.ts';
import { clusterLeader, type ClusterView, type DemoCluster } from '../cluster.ts';
import { h, replaceChildren } from './dom.ts';
import type { EventKind } from './timeline.ts';

/** Watch rows kept on screen. */
const watchRowsMax = 60;
/** How often the lease's TTL and keys are read back from the cluster. */
const leasePollMs = 500;
const text = new TextDecoder();

type Log = (kind: EventKind, message: string) => void;

export class KvPanel {
  readonly el: HTMLElement;
  private readonly output = h('output', { class: 'result', 'data-testid': 'kv-result' }, 'Results of your requests appear here.');
  private readonly watchList = h('ol', { class: 'watch-list', 'data-testid': 'watch' });
  private readonly watchState = h('span', { class: 'watch-state' }, 'connecting…');
  private readonly revisionEl = h('span', { class: 'num', 'data-testid': 'revision' }, '–');
  private readonly compactEl = h('span', { class: 'num', 'data-testid': 'compact-revision' }, '–');
  private readonly keyInput = input('key', 'greeting');
  private readonly valueInput = input('value', 'hello');
  private readonly withLease = h('input', { type: 'checkbox', name: 'with-lease', disabled: true });
  private readonly prefixInput = input('prefix', '');
  private readonly casKey = input('cas-key', 'greeting');
  private readonly casExpected = input('cas-expected', 'hello');
  private readonly casNew = input('cas-new', 'bonjour');
  private readonly ttlInput = h('input', { type: 'number', name: 'ttl', min: 3, max: 600, value: 8, inputmode: 'numeric' });
  private readonly leaseBox = h('div', { class: 'lease-box', 'data-testid': 'lease' });
  private lease: LeaseState | null = null;
  private revision = 0;
  private watcher: Watcher | null = null;
  private readonly via = h('select', { name: 'via', 'aria-label': 'Member that takes the requests' });
  private viaKey = '';

  constructor(
    private readonly cluster: DemoCluster,
    private readonly log: Log,
  ) {
    this.via.addEventListener('change', () => this.cluster.setClientMember?.(Number(this.via.value)));
    this.el = h('section', { class: 'card kv', 'aria-labelledby': 'kv-title' },
      h('header', { class: 'section-head' },
        h('h2', { id: 'kv-title' }, 'Key-value store'),
        cluster.setClientMember ? h('label', { class: 'via-select' }, 'via ', this.via) : null,
        h('div', { class: 'revs' },
          h('span', {}, 'revision ', this.revisionEl),
          h('span', {}, 'compacted at ', this.compactEl),
          h('button', { type: 'button', class: 'small', 'data-op': 'compact', onclick: () => this.run('compact', () => this.compact()) }, 'Compact'))),
      form(() => this.run('put', () => this.put()),
        h('div', { class: 'row' }, field('Key', this.keyInput), field('Value', this.valueInput)),
        h('div', { class: 'row buttons' },
          button('Put', 'put', null),
          button('Get', 'get', () => this.run('get', () => this.get())),
          button('Delete', 'delete', () => this.run('delete', () => this.del())),
          h('label', { class: 'check' }, this.withLease, ' attach to lease'))),
      form(() => this.run('list', () => this.list()),
        h('div', { class: 'row' }, field('Prefix', this.prefixInput), button('List', 'list', null))),
      form(() => this.run('cas', () => this.cas()),
        h('div', { class: 'row three' }, field('Key', this.casKey), field('If value is', this.casExpected), field('Set to', this.casNew)),
        h('div', { class: 'row buttons' }, button('Compare-and-swap', 'cas', null))),
      this.output,
      h('div', { class: 'sub' },
        h('h3', {}, 'Lease'),
        h('div', { class: 'row buttons' },
          h('label', { class: 'ttl' }, 'TTL ', this.ttlInput, ' s'),
          button('Grant lease', 'grant', () => this.run('grant', () => this.grant()))),
        this.leaseBox),
      h('div', { class: 'sub' },
        h('h3', {}, 'Watch ', h('span', { class: 'muted' }, 'every key, from now on'), this.watchState),
        this.watchList));
    this.renderLease();
  }

  /** Opens the watch stream; call once the cluster is up. */
  async start(): Promise<void> {
    this.watcher = await this.client.watch().all().withPreviousKV().create();
    this.watcher.on('connected', () => this.setWatchState('live', 'live'));
    this.watcher.on('disconnected', () => this.setWatchState('reconnecting…', 'down'));
    this.watcher.on('put', (kv) => this.addWatchRow('put', kv, undefined));
    this.watcher.on('delete', (kv, prev) => this.addWatchRow('delete', kv, prev));
    this.watcher.on('error', (err) => this.setWatchState(`ended: ${err.message}`, 'down'));
    this.setWatchState('live', 'live');
    setInterval(() => void this.pollLease(), leasePollMs);
    const tick = () => {
      this.renderCountdown();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  render(view: ClusterView): void {
    this.renderVia(view);
    // The leader's store, unless the leader does not report it (a Node member seen from a tab).
    const leader = view.members.find((m) => m.id === clusterLeader(view) && (!m.inferred || m.indexesKnown === true));
    const source = leader ?? view.members.find((m) => m.id === view.clientMember);
    if (!source) return;
    this.revision = source.revision;
    this.revisionEl.textContent = String(source.revision);
    // The store reports -1 until the first compaction.
    this.compactEl.textContent = source.compactRevision > 0 ? String(source.compactRevision) : 'never';
  }

  private renderVia(view: ClusterView): void {
    const key = view.members.map((m) => `${m.id}:${m.name}`).join(',');
    if (key !== this.viaKey) {
      this.viaKey = key;
      replaceChildren(this.via, ...view.members.map((m) => h('option', { value: m.id }, m.name)));
    }
    if (view.clientMember !== null) this.via.value = String(view.clientMember);
  }

  /** Requests go through the cluster's current client (the member chosen under "via"). */
  private get client(): Client {
    return this.cluster.client;
  }

  // ---- requests ----

  private async put(): Promise<string> {
    const key = required(this.keyInput, 'key');
    const value = this.valueInput.value;
    const lease = this.withLease.checked && this.lease?.state === 'alive' ? this.lease : null;
    const builder = lease ? lease.lease.put(key) : this.client.put(key);
    const res = await builder.value(value).exec();
    return `put ${key} = ${quote(value)}${lease ? ` on lease ${lease.idHex}` : ''} → revision ${res.header.revision}`;
  }

  private async get(): Promise<string> {
    const key = required(this.keyInput, 'key');
    const kv = await this.client.get(key).kv();
    if (kv === null) return `${key}: not found`;
    return `${key} = ${quote(text.decode(kv.value))} (version ${kv.version}, modified at revision ${kv.modRevision}${kv.lease !== 0n ? `, lease ${kv.lease.toString(16)}` : ''})`;
  }

  private async del(): Promise<string> {
    const key = required(this.keyInput, 'key');
    const res = await this.client.delete().key(key).exec();
    return res.deleted === 0 ? `${key}: nothing to delete (revision stays ${res.header.revision})` : `deleted ${key} → revision ${res.header.revision}`;
  }

  private async list(): Promise<string | HTMLElement> {
    const prefix = this.prefixInput.value;
    const kvs = await this.client.getAll().prefix(prefix).kvs();
    const head = `${kvs.length} key${kvs.length === 1 ? '' : 's'} under ${prefix === '' ? 'the root' : quote(prefix)}`;
    if (kvs.length === 0) return head;
    return h('div', {}, head, h('ul', { class: 'kv-list' }, ...kvs.map((kv) => h('li', {}, h('b', {}, text.decode(kv.key)), ' = ', quote(text.decode(kv.value)), h('span', { class: 'muted' }, ` rev ${kv.modRevision}`)))));
  }

  private async cas(): Promise<string> {
    const key = required(this.casKey, 'key');
    const expected = this.casExpected.value;
    const next = this.casNew.value;
    const res = await this.client.if(key, 'Value', '==', expected).then(this.client.put(key).value(next)).else(this.client.get(key)).commit();
    if (res.succeeded) return `${key} was ${quote(expected)}: swapped to ${quote(next)} → revision ${res.header.revision}`;
    const op = res.responses[0];
    const current = op && 'responseRange' in op ? op.responseRange.kvs[0] : undefined;
    return `${key} is ${current ? quote(text.decode(current.value)) : 'absent'}, not ${quote(expected)}: nothing changed (revision ${res.header.revision})`;
  }

  private async compact(): Promise<string> {
    const rev = this.revision;
    if (rev <= 0) throw new Error('no revision to compact to yet');
    await this.client.compact(rev);
    return `compacted history below revision ${rev}: older revisions can no longer be read or watched`;
  }

  // ---- lease ----

  private async grant(): Promise<string> {
    const ttl = Number(this.ttlInput.value);
    if (!(Number.isInteger(ttl) && ttl > 0)) throw new Error('TTL must be a whole number of seconds');
    if (this.lease?.state === 'alive') void this.lease.lease.revoke().catch(() => {});
    const sentMs = performance.now();
    const lease = this.client.lease(ttl, { autoKeepAlive: false });
    const id = await lease.grant();
    const granted = await lease.timeToLive();
    this.lease = { lease, id, idHex: id.toString(16), ttl: granted.grantedTTL, deadlineMs: sentMs + granted.grantedTTL * 1000, keys: [], state: 'alive' };
    this.withLease.disabled = false;
    this.withLease.checked = true;
    this.renderLease();
    return `granted lease ${this.lease.idHex} for ${granted.grantedTTL} s: keys put with “attach to lease” vanish when it expires`;
  }

  private async keepAlive(): Promise<string> {
    const l = this.lease;
    if (!l || l.state !== 'alive') throw new Error('no live lease');
    const sentMs = performance.now();
    const res = await l.lease.keepaliveOnce();
    l.deadlineMs = sentMs + res.TTL * 1000;
    return `lease ${l.idHex} renewed for ${res.TTL} s`;
  }

  private async revoke(): Promise<string> {
    const l = this.lease;
    if (!l || l.state !== 'alive') throw new Error('no live lease');
    await l.lease.revoke();
    this.endLease(l, 'revoked');
    return `revoked lease ${l.idHex}: its keys were deleted`;
  }

  private async pollLease(): Promise<void> {
    const l = this.lease;
    if (!l || l.state !== 'alive') return;
    let res;
    try {
      res = await l.lease.timeToLive(true);
    } catch {
      return; // no leader right now: the countdown goes on from what was last known
    }
    if (l.state !== 'alive') return;
    if (res.TTL < 0) {
      const keys = l.keys;
      this.endLease(l, 'expired');
      this.log('lease', `lease ${l.idHex} expired: ${keys.length === 0 ? 'it held no keys' : `${keys.join(', ')} deleted`}`);
      return;
    }
    // The server's TTL is floored to seconds; a new leader may also have extended the lease.
    const serverDeadline = performance.now() + res.TTL * 1000;
    if (serverDeadline > l.deadlineMs) l.deadlineMs = serverDeadline;
    // At TTL 0 the leader is about to revoke: keep showing the keys that are about to vanish.
    if (res.TTL > 0) l.keys = res.keys.map((k) => text.decode(k));
    this.renderLease();
  }

  private endLease(l: LeaseState, state: 'expired' | 'revoked'): void {
    l.state = state;
    l.keys = [];
    this.withLease.checked = false;
    this.withLease.disabled = true;
    this.renderLease();
  }

  private renderLease(): void {
    const l = this.lease;
    if (!l) {
      replaceChildren(this.leaseBox, h('p', { class: 'muted' }, 'No lease yet. Grant one, put keys “attached to lease”, and watch them vanish when its time runs out.'));
      return;
    }
    this.leaseBox.dataset.state = l.state;
    replaceChildren(this.leaseBox,
      h('div', { class: 'lease-head' },
        h('span', { class: 'lease-id' }, `lease ${l.idHex}`),
        h('span', { class: `pill lease-${l.state}` }, l.state),
        l.state === 'alive' ? h('span', { class: 'countdown num', 'data-testid': 'lease-countdown' }) : null),
      l.state === 'alive' ? h('div', { class: 'bar' }, h('div', { class: 'bar-fill' })) : null,
      h('div', { class: 'lease-keys' },
        l.state === 'alive' && l.keys.length === 0 ? h('span', { class: 'muted' }, 'no keys attached yet') : null,
        ...l.keys.map((k) => h('span', { class: 'chip' }, k))),
      l.state === 'alive'
        ? h('div', { class: 'row buttons' },
            button('Keep alive', 'keepalive', () => this.run('keep-alive', () => this.keepAlive())),
            button('Revoke', 'revoke', () => this.run('revoke', () => this.revoke())))
        : null);
    this.renderCountdown();
  }

  private renderCountdown(): void {
    const l = this.lease;
    if (!l || l.state !== 'alive') return;
    const leftMs = Math.max(0, l.deadlineMs - performance.now());
    const countdown = this.leaseBox.querySelector('.countdown');
    if (countdown) countdown.textContent = leftMs > 0 ? `${(leftMs / 1000).toFixed(1)} s left` : 'expiring…';
    const fill = this.leaseBox.querySelector<HTMLElement>('.bar-fill');
    if (fill) fill.style.width = `${Math.min(100, (leftMs / (l.ttl * 1000)) * 100)}%`;
  }

  // ---- watch ----

  private addWatchRow(type: 'put' | 'delete', kv: KeyValue, prev: KeyValue | undefined): void {
    const key = text.decode(kv.key);
    const row = h('li', { class: `w w-${type}`, 'data-key': key, 'data-revision': kv.modRevision },
      h('span', { class: 'w-rev num' }, kv.modRevision),
      h('span', { class: 'w-type' }, type === 'put' ? 'PUT' : 'DEL'),
      h('span', { class: 'w-key' }, key),
      type === 'put'
        ? h('span', { class: 'w-val' }, quote(text.decode(kv.value)), kv.lease !== 0n ? h('span', { class: 'muted' }, ` · lease ${kv.lease.toString(16)}`) : null)
        : h('span', { class: 'w-val muted' }, prev ? `was ${quote(text.decode(prev.value))}${prev.lease !== 0n ? ` · lease ${prev.lease.toString(16)}` : ''}` : ''));
    this.watchList.prepend(row);
    while (this.watchList.children.length > watchRowsMax) this.watchList.lastElementChild!.remove();
  }

  private setWatchState(label: string, state: 'live' | 'down'): void {
    this.watchState.textContent = label;
    this.watchState.dataset.state = state;
  }

  /** Runs a request, showing its result or its error (etcd's message) in the output line. */
  private run(what: string, fn: () => Promise<string | HTMLElement>): void {
    this.output.dataset.state = 'pending';
    replaceChildren(this.output, `${what}…`);
    const started = performance.now();
    fn().then(
      (result) => {
        this.output.dataset.state = 'ok';
        replaceChildren(this.output, result, h('span', { class: 'took' }, ` ${Math.round(performance.now() - started)} ms`));
      },
      (err: Error) => {
        this.output.dataset.state = 'error';
        replaceChildren(this.output, `${what} failed: ${err.message}`);
      },
    );
  }
}

interface LeaseState {
  lease: Lease;
  id: bigint;
  idHex: string;
  ttl: number;
  /** When the lease expires at the latest as far as this tab can tell (performance.now() time). */
  deadlineMs: number;
  keys: string[];
  state: 'alive' | 'expired' | 'revoked';
}

function input(name: string, value: string): HTMLInputElement {
  return h('input', { type: 'text', name, value, autocomplete: 'off', spellcheck: false, autocapitalize: 'off' });
}

function field(label: string, control: HTMLElement): HTMLElement {
  return h('label', { class: 'field' }, h('span', {}, label), control);
}

/** A button; without `onclick` it submits its form (so Enter in a field does the same). */
function button(label: string, name: string, onclick: (() => void) | null): HTMLButtonElement {
  if (onclick === null) return h('button', { type: 'submit', 'data-op': name }, label);
  return h('button', { type: 'button', 'data-op': name, onclick }, label);
}

function form(onSubmit: () => void, ...rows: HTMLElement[]): HTMLFormElement {
  const onsubmit = ((e: Event) => {
    e.preventDefault();
    onSubmit();
  }) as EventListener;
  return h('form', { class: 'kv-form', onsubmit }, ...rows);
}

function required(el: HTMLInputElement, what: string): string {
  if (el.value === '') throw new Error(`a ${what} is required`);
  return el.value;
}

function quote(s: string): string {
  return JSON.stringify(s);
}
