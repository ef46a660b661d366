// etcd's KV service over a KvMember: Range, Put, DeleteRange, Txn, Compact. Who may call them
// with which keys is decided in auth-gate.ts, before these run.

import type { KvMember } from '../../src/server/kv-member.ts';
import { deleteBody, deleteRangeRequest, int, putBody, putRequest, rangeBody, rangeRequest, txnBody, txnRequest, type Wire } from './server-wire.ts';

export class KvService {
  constructor(
    private readonly kv: KvMember,
    private readonly header: (revision?: number) => Wire,
  ) {}

  async range(w: Wire): Promise<Wire> {
    const r = await this.kv.range(rangeRequest(w));
    return { header: this.header(r.header.revision), ...rangeBody(r) };
  }

  async put(w: Wire): Promise<Wire> {
    const r = await this.kv.put(putRequest(w));
    return { header: this.header(r.header.revision), ...putBody(r) };
  }

  async deleteRange(w: Wire): Promise<Wire> {
    const r = await this.kv.deleteRange(deleteRangeRequest(w));
    return { header: this.header(r.header.revision), ...deleteBody(r) };
  }

  async txn(w: Wire): Promise<Wire> {
    const r = await this.kv.txn(txnRequest(w));
    return { header: this.header(r.header.revision), ...txnBody(r) };
  }

  async compact(w: Wire): Promise<Wire> {
    const r = await this.kv.compact({ revision: int(w.revision), physical: w.physical === true });
    return { header: this.header(r.header.revision) };
  }
}
