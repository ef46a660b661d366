// The offline panel (tab mode, docs/offline.md): a "go offline" switch that cuts this tab off from
// every peer and from signaling, a guarded put into the durable outbox ("the key is as I read it
// now"), and the outbox's entries with each one's outcome as the drain settles it (any tab's
// drain: the outbox is the origin's).

import type { Outbox, OutboxRecord } from '../../../adapters/browser/outbox.ts';
import type { ClusterView, DemoCluster } from '../cluster.ts';
import { h, replaceChildren } from './dom.ts';
import type { EventKind } from './timeline.ts';

/** Entries listed, newest first. */
const entriesShownMax = 30;
const text = new TextDecoder();

export class OutboxPanel {
  readonly el: HTMLElement;
  private readonly toggle = h('input', { type: 'checkbox', 'data-testid': 'go-offline' });
  private readonly state = h('span', { class: 'chip', 'data-testid': 'connectivity' }, '–');
  private readonly keyInput = h('input', { name: 'outbox-key', value: 'todo/1', autocomplete: 'off', spellcheck: 'false' });
  private readonly valueInput = h('input', { name: 'outbox-value', value: 'buy milk', autocomplete: 'off', spellcheck: 'false' });
  private readonly list = h('ol', { class: 'watch-list', 'data-testid': 'outbox' });
  private outbox: Outbox | null = null;

  constructor(
    private readonly cluster: DemoCluster,
    private readonly log: (kind: EventKind, message: string) => void,
  ) {
    this.toggle.addEventListener('change', () => {
      this.cluster.setOffline!(this.toggle.checked);
      this.log('fault', this.toggle.checked ? 'this tab went offline: cut off from every peer and from signaling' : 'this tab is back online');
    });
    const form = h('form', { class: 'op' },
      h('div', { class: 'row' }, h('label', {}, 'Key', this.keyInput), h('label', {}, 'Value', this.valueInput)),
      h('div', { class: 'row buttons' }, h('button', { type: 'submit', 'data-op': 'outbox-put' }, 'Queue guarded put')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.queue();
    });
    this.el = h('section', { class: 'card outbox', 'aria-labelledby': 'outbox-title' },
      h('header', { class: 'section-head' },
        h('h2', { id: 'outbox-title' }, 'Offline outbox'),
        this.state,
        h('label', { class: 'check' }, this.toggle, ' go offline')),
      h('p', { class: 'hint' }, 'A queued put is guarded by the value read now: back online it commits, or comes back as a conflict with the current value.'),
      form,
      this.list);
    void this.cluster.openOutbox!().then((o) => {
      this.outbox = o;
      o.onChange(() => void this.renderEntries());
      o.onOutcome((r) => this.log('info', `outbox entry ${r.seq}: ${r.status}${r.revision ? ` at revision ${r.revision}` : ''}`));
      void this.renderEntries();
    }, (err: Error) => this.log('fault', `opening the outbox failed: ${err.message}`));
  }

  render(view: ClusterView): void {
    const o = view.offline;
    if (!o) return;
    this.toggle.checked = o.cutOff;
    this.state.textContent = o.connectivity;
    this.state.className = `chip ${o.connectivity === 'online' ? 'ok' : 'warn'}`;
  }

  private async queue(): Promise<void> {
    if (!this.outbox) return;
    try {
      const tx = this.outbox.begin();
      await tx.get(this.keyInput.value);
      const { seq } = await tx.put(this.keyInput.value, this.valueInput.value).commit();
      this.log('info', `outbox entry ${seq} queued: put ${this.keyInput.value}`);
    } catch (err) {
      this.log('fault', `queueing failed: ${(err as Error).message}`);
    }
  }

  private async renderEntries(): Promise<void> {
    if (!this.outbox) return;
    const entries = (await this.outbox.entries()).slice(-entriesShownMax).reverse();
    replaceChildren(this.list, ...entries.map((r) => h('li', { 'data-seq': r.seq, 'data-status': r.status }, describe(r))));
  }
}

function describe(r: OutboxRecord): string {
  const writes = r.writes.map((w) => `${w.value === null ? 'delete' : 'put'} ${text.decode(w.key)}${w.value === null ? '' : `=${text.decode(w.value)}`}`).join(', ');
  switch (r.status) {
    case 'pending':
      return `#${r.seq} ${writes}: pending`;
    case 'committed':
      return `#${r.seq} ${writes}: committed at revision ${r.revision}`;
    case 'conflict':
      return `#${r.seq} ${writes}: conflict at revision ${r.revision}; now ${r.current?.map((kv) => `${text.decode(kv.key)}=${text.decode(kv.value)}`).join(', ') || 'absent'}`;
    default:
      return `#${r.seq} ${writes}: ${r.status}${r.message ? ` (${r.message})` : ''}`;
  }
}
