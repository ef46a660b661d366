// A naive reference model of etcd 3.4's key-value semantics: every key's full history in a
// list, scanned linearly; compaction only moves the floor under which reads are refused.
// Written from etcd's documented behaviour, independently of src/mvcc's data structures.

import type {
  ApplyRequest,
  Compare,
  DeleteRangeRequest,
  KeyValue,
  PutRequest,
  RangeRequest,
  RequestOp,
  ResponseOp,
  TxnRequest,
} from '../../src/mvcc/index.ts';

export class ModelError extends Error {}

const MESSAGES = {
  compacted: 'etcdserver: mvcc: required revision has been compacted',
  future: 'etcdserver: mvcc: required revision is a future revision',
  leaseNotFound: 'etcdserver: requested lease not found',
  leaseExists: 'etcdserver: lease already exists',
  keyNotFound: 'etcdserver: key not found',
  duplicateKey: 'etcdserver: duplicate key given in txn request',
};

interface Entry {
  main: number;
  sub: number;
  /** null: tombstone. */
  value: Uint8Array | null;
  lease: bigint;
  createRevision: number;
  version: number;
}

/** Keys as arrays of numbers compared lexicographically: deliberately unlike the SUT. */
function cmpBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function hexKey(key: Uint8Array): string {
  return Array.from(key, (x) => x.toString(16).padStart(2, '0')).join('');
}

function inRange(key: Uint8Array, start: Uint8Array, end: Uint8Array | undefined): boolean {
  if (end === undefined || end.length === 0) return cmpBytes(key, start) === 0;
  if (end.length === 1 && end[0] === 0) return cmpBytes(key, start) >= 0;
  return cmpBytes(key, start) >= 0 && cmpBytes(key, end) < 0;
}

export class Model {
  private readonly keys = new Map<string, { key: Uint8Array; history: Entry[] }>();
  revision = 1;
  compacted = -1;
  readonly leases = new Set<bigint>();
  /** The txn being applied: main revision and writes so far. */
  private writing: { main: number; subs: number } | null = null;

  private visible(record: { history: Entry[] }, atRev: number): Entry | undefined {
    let found: Entry | undefined;
    for (const e of record.history) if (e.main <= atRev) found = e;
    return found?.value === null ? undefined : found;
  }

  private kv(key: Uint8Array, e: Entry, keysOnly = false): KeyValue {
    return {
      key: key.slice(),
      createRevision: e.createRevision,
      modRevision: e.main,
      version: e.version,
      value: keysOnly ? new Uint8Array(0) : e.value!,
      lease: e.lease,
    };
  }

  private readRevision(): number {
    return this.writing !== null && this.writing.subs > 0 ? this.writing.main : this.revision;
  }

  private sorted(): { key: Uint8Array; history: Entry[] }[] {
    return [...this.keys.values()].sort((x, y) => cmpBytes(x.key, y.key));
  }

  private live(key: Uint8Array): Entry | undefined {
    const record = this.keys.get(hexKey(key));
    return record === undefined ? undefined : this.visible(record, Infinity);
  }

  private write(key: Uint8Array, make: (prev: Entry | undefined, main: number, sub: number) => Entry): void {
    const w = this.writing!;
    let record = this.keys.get(hexKey(key));
    if (record === undefined) this.keys.set(hexKey(key), (record = { key: key.slice(), history: [] }));
    record.history.push(make(this.live(key), w.main, w.subs++));
  }

  range(r: RangeRequest) {
    const current = this.readRevision();
    const rev = r.revision ?? 0;
    if (rev > current) throw new ModelError(MESSAGES.future);
    const atRev = rev <= 0 ? current : rev;
    if (atRev < this.compacted) throw new ModelError(MESSAGES.compacted);
    let hits: { key: Uint8Array; e: Entry }[] = [];
    for (const record of this.sorted()) {
      if (!inRange(record.key, r.key, r.rangeEnd)) continue;
      const e = this.visible(record, atRev);
      if (e !== undefined) hits.push({ key: record.key, e });
    }
    const count = hits.length;
    if (r.countOnly) return { header: { revision: current }, kvs: [], more: false, count };
    // etcd reads only limit+1 keys (in key order) unless a sort order or a filter is given;
    // a sort target without a sort order then sorts just those.
    const limit = r.limit ?? 0;
    const filtered = r.maxModRevision || r.minModRevision || r.maxCreateRevision || r.minCreateRevision;
    if (limit > 0 && !r.sortOrder && !filtered) hits = hits.slice(0, limit + 1);
    if (r.maxModRevision) hits = hits.filter((h) => h.e.main <= r.maxModRevision!);
    if (r.minModRevision) hits = hits.filter((h) => h.e.main >= r.minModRevision!);
    if (r.maxCreateRevision) hits = hits.filter((h) => h.e.createRevision <= r.maxCreateRevision!);
    if (r.minCreateRevision) hits = hits.filter((h) => h.e.createRevision >= r.minCreateRevision!);
    const target = r.sortTarget ?? 0;
    let order = r.sortOrder ?? 0;
    if (target !== 0 && order === 0) order = 1;
    if (order !== 0) {
      const by = (h: { key: Uint8Array; e: Entry }): number | Uint8Array =>
        [h.key, h.e.version, h.e.createRevision, h.e.main, h.e.value!][target];
      const sign = order === 2 ? -1 : 1;
      hits = hits
        .map((h, i) => ({ h, i }))
        .sort((x, y) => {
          const a = by(x.h);
          const b = by(y.h);
          const c = typeof a === 'number' ? a - (b as number) : cmpBytes(a, b as Uint8Array);
          return sign * Math.sign(c) || x.i - y.i;
        })
        .map((x) => x.h);
    }
    const more = limit > 0 && hits.length > limit;
    if (more) hits = hits.slice(0, limit);
    return { header: { revision: current }, kvs: hits.map((h) => this.kv(h.key, h.e, r.keysOnly)), more, count };
  }

  private put(r: PutRequest) {
    const prev = this.live(r.key);
    if ((r.ignoreValue || r.ignoreLease) && prev === undefined) throw new ModelError(MESSAGES.keyNotFound);
    const lease = r.ignoreLease ? prev!.lease : (r.lease ?? 0n);
    const value = r.ignoreValue ? prev!.value! : (r.value ?? new Uint8Array(0));
    this.write(r.key, (p, main, sub) => ({
      main,
      sub,
      value,
      lease,
      createRevision: p ? p.createRevision : main,
      version: p ? p.version + 1 : 1,
    }));
    const response: { header: { revision: number }; prevKv?: KeyValue } = { header: { revision: this.writing!.main } };
    if (r.prevKv && prev !== undefined) response.prevKv = this.kv(r.key, prev);
    return response;
  }

  private deleteRange(r: DeleteRangeRequest) {
    const victims = this.sorted().filter((rec) => inRange(rec.key, r.key, r.rangeEnd) && this.live(rec.key));
    const prevKvs = victims.map((rec) => this.kv(rec.key, this.live(rec.key)!));
    for (const rec of victims) {
      this.write(rec.key, (_p, main, sub) => ({ main, sub, value: null, lease: 0n, createRevision: 0, version: 0 }));
    }
    return { header: { revision: this.readRevision() }, deleted: victims.length, prevKvs: r.prevKv ? prevKvs : [] };
  }

  private holds(c: Compare): boolean {
    const hits = this.range({ key: c.key, rangeEnd: c.rangeEnd }).kvs;
    if (hits.length === 0 && c.target === 3) return false;
    const zero: KeyValue = { key: c.key, createRevision: 0, modRevision: 0, version: 0, value: new Uint8Array(0), lease: 0n };
    return (hits.length === 0 ? [zero] : hits).every((kv) => {
      const diff = [
        kv.version - (c.version ?? 0),
        kv.createRevision - (c.createRevision ?? 0),
        kv.modRevision - (c.modRevision ?? 0),
        cmpBytes(kv.value, c.value ?? new Uint8Array(0)),
        Number(kv.lease - (c.lease ?? 0n)),
      ][c.target];
      return [diff === 0, diff > 0, diff < 0, diff !== 0][c.result];
    });
  }

  /** The branch each (nested) txn takes, decided before any write. */
  private decide(t: TxnRequest, out: Map<TxnRequest, boolean>): void {
    const ok = (t.compare ?? []).every((c) => this.holds(c));
    out.set(t, ok);
    for (const op of (ok ? t.success : t.failure) ?? []) if ('requestTxn' in op) this.decide(op.requestTxn, out);
  }

  private duplicateCheck(ops: RequestOp[]): { puts: Uint8Array[]; dels: { key: Uint8Array; end?: Uint8Array }[] } {
    // etcd's interval rule; a range_end of "\0" is taken literally there (an empty interval).
    const dels: { key: Uint8Array; end?: Uint8Array }[] = ops.flatMap((op) =>
      'requestDeleteRange' in op ? [{ key: op.requestDeleteRange.key, end: op.requestDeleteRange.rangeEnd }] : [],
    );
    const hitsDelete = (k: Uint8Array, ds: { key: Uint8Array; end?: Uint8Array }[]) =>
      ds.some((d) =>
        d.end === undefined || d.end.length === 0 ? cmpBytes(k, d.key) === 0 : cmpBytes(k, d.key) >= 0 && cmpBytes(k, d.end) < 0,
      );
    const has = (list: Uint8Array[], k: Uint8Array) => list.some((x) => cmpBytes(x, k) === 0);
    // A set of keys (etcd uses a map): adding a key twice keeps one.
    const puts: Uint8Array[] = [];
    const add = (k: Uint8Array) => {
      if (!has(puts, k)) puts.push(k);
    };
    for (const op of ops) {
      if (!('requestTxn' in op)) continue;
      const a = this.duplicateCheck(op.requestTxn.success ?? []);
      const b = this.duplicateCheck(op.requestTxn.failure ?? []);
      for (const k of a.puts) {
        if (has(puts, k) || hitsDelete(k, dels)) throw new ModelError(MESSAGES.duplicateKey);
        add(k);
      }
      for (const k of b.puts) {
        if ((has(puts, k) && !has(a.puts, k)) || hitsDelete(k, dels)) throw new ModelError(MESSAGES.duplicateKey);
        add(k);
      }
      dels.push(...a.dels, ...b.dels);
    }
    for (const op of ops) {
      if (!('requestPut' in op)) continue;
      const k = op.requestPut.key;
      if (has(puts, k) || hitsDelete(k, dels)) throw new ModelError(MESSAGES.duplicateKey);
      add(k);
    }
    return { puts, dels };
  }

  private pathOps(t: TxnRequest, branches: Map<TxnRequest, boolean>): RequestOp[] {
    return ((branches.get(t) ? t.success : t.failure) ?? []).flatMap((op) =>
      'requestTxn' in op ? this.pathOps(op.requestTxn, branches) : [op],
    );
  }

  private txn(t: TxnRequest) {
    this.duplicateCheck(t.success ?? []);
    this.duplicateCheck(t.failure ?? []);
    const branches = new Map<TxnRequest, boolean>();
    this.decide(t, branches);
    const ops = this.pathOps(t, branches);
    for (const op of ops) {
      if (!('requestPut' in op)) continue;
      const p = op.requestPut;
      if ((p.ignoreValue || p.ignoreLease) && !this.live(p.key)) throw new ModelError(MESSAGES.keyNotFound);
      if ((p.lease ?? 0n) !== 0n && !this.leases.has(p.lease!)) throw new ModelError(MESSAGES.leaseNotFound);
    }
    for (const op of ops) {
      if (!('requestRange' in op)) continue;
      const rev = op.requestRange.revision ?? 0;
      if (rev > this.revision) throw new ModelError(MESSAGES.future);
      if (rev !== 0 && rev < this.compacted) throw new ModelError(MESSAGES.compacted);
    }
    // Where etcd would panic (an ignore_* put of a key an earlier delete removed), refuse.
    const deleted: { key: Uint8Array; end?: Uint8Array }[] = [];
    for (const op of ops) {
      if ('requestDeleteRange' in op) deleted.push({ key: op.requestDeleteRange.key, end: op.requestDeleteRange.rangeEnd });
      const p = 'requestPut' in op ? op.requestPut : undefined;
      if (p && (p.ignoreValue || p.ignoreLease) && deleted.some((d) => inRange(p.key, d.key, d.end))) {
        throw new ModelError(MESSAGES.keyNotFound);
      }
    }
    const response = this.runWrite(() => this.txnBody(t, branches));
    response.header.revision = this.revision;
    return response;
  }

  private txnBody(t: TxnRequest, branches: Map<TxnRequest, boolean>): {
    header: { revision: number };
    succeeded: boolean;
    responses: ResponseOp[];
  } {
    const ok = branches.get(t)!;
    const responses: ResponseOp[] = ((ok ? t.success : t.failure) ?? []).map((op): ResponseOp => {
      if ('requestRange' in op) return { responseRange: this.range(op.requestRange) };
      if ('requestPut' in op) return { responsePut: this.put(op.requestPut) };
      if ('requestDeleteRange' in op) return { responseDeleteRange: this.deleteRange(op.requestDeleteRange) };
      return { responseTxn: this.txnBody(op.requestTxn, branches) };
    });
    return { header: { revision: 0 }, succeeded: ok, responses };
  }

  private runWrite<T>(body: () => T): T {
    this.writing = { main: this.revision + 1, subs: 0 };
    try {
      return body();
    } finally {
      if (this.writing.subs > 0) this.revision = this.writing.main;
      this.writing = null;
    }
  }

  /**
   * Every write so far, in revision order (what an all-keys watcher from revision 2 sees), with
   * the key's value at the revision before (a watcher's prev_kv).
   */
  allEvents(): { key: Uint8Array; main: number; sub: number; deleted: boolean; value: string; version: number; prev?: string }[] {
    const events = [...this.keys.values()].flatMap((rec) =>
      rec.history.map((e) => {
        // etcd attaches no prev_kv to a put that creates its key.
        const before = e.value !== null && e.createRevision === e.main ? undefined : this.visible(rec, e.main - 1);
        return {
          key: rec.key,
          main: e.main,
          sub: e.sub,
          deleted: e.value === null,
          value: e.value === null ? '' : hexKey(e.value),
          version: e.version,
          ...(before === undefined ? {} : { prev: hexKey(before.value!) }),
        };
      }),
    );
    return events.sort((a, b) => a.main - b.main || a.sub - b.sub);
  }

  apply(request: ApplyRequest): unknown {
    switch (request.kind) {
      case 'range':
        return this.range(request.request);
      case 'put': {
        const lease = request.request.lease ?? 0n;
        if (lease !== 0n && !this.leases.has(lease)) throw new ModelError(MESSAGES.leaseNotFound);
        return this.runWrite(() => this.put(request.request));
      }
      case 'deleteRange':
        return this.runWrite(() => this.deleteRange(request.request));
      case 'txn':
        return this.txn(request.request);
      case 'compaction': {
        const rev = request.request.revision;
        if (rev <= this.compacted) throw new ModelError(MESSAGES.compacted);
        if (rev > this.revision) throw new ModelError(MESSAGES.future);
        this.compacted = rev;
        return { header: { revision: this.revision } };
      }
      case 'leaseGrant': {
        const id = request.request.ID!;
        if (this.leases.has(id)) throw new ModelError(MESSAGES.leaseExists);
        this.leases.add(id);
        return { header: { revision: this.revision }, ID: id, TTL: Math.max(request.request.TTL, 2), error: '' };
      }
      case 'leaseRevoke': {
        const id = request.request.ID;
        if (!this.leases.has(id)) throw new ModelError(MESSAGES.leaseNotFound);
        const doomed = this.sorted().filter((rec) => this.live(rec.key)?.lease === id);
        this.runWrite(() => {
          for (const rec of doomed) this.deleteRange({ key: rec.key });
        });
        this.leases.delete(id);
        return { header: { revision: this.revision } };
      }
      default:
        throw new Error(`model: unsupported ${request.kind}`);
    }
  }
}
