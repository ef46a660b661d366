// Pending ReadIndex requests on the leader (Raft thesis §6.4). Each waits until a quorum
// answers a heartbeat that carried its context; that proves the leader was still leader
// when the read arrived, so its commit index at that moment is safe to read at.

import type { MemberId, Message } from './types.ts';

interface ReadIndexStatus {
  request: Message;
  index: number;
  acks: Map<MemberId, boolean>;
}

export function contextKey(ctx: Uint8Array): string {
  let s = '';
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]);
  return s;
}

export class ReadOnly {
  private pending = new Map<string, ReadIndexStatus>();
  /** Keys in arrival order. */
  private queue: string[] = [];

  constructor(readonly requestsMax: number) {}

  get size(): number {
    return this.queue.length;
  }

  /** Registers a read at commit index `index`. A duplicate context is ignored. */
  addRequest(index: number, request: Message): boolean {
    const key = contextKey(request.context!);
    if (this.pending.has(key)) return false;
    if (this.queue.length >= this.requestsMax) return false;
    this.pending.set(key, { request, index, acks: new Map() });
    this.queue.push(key);
    return true;
  }

  /** Records a heartbeat ack; returns the acks for that context, or undefined if unknown. */
  recvAck(from: MemberId, ctx: Uint8Array): Map<MemberId, boolean> | undefined {
    const rs = this.pending.get(contextKey(ctx));
    if (!rs) return undefined;
    rs.acks.set(from, true);
    return rs.acks;
  }

  /**
   * The request with `ctx` reached a quorum: it and every request queued before it are
   * released (a quorum ack for a later heartbeat also confirms the earlier reads).
   */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = contextKey(ctx);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const released = this.queue.splice(0, at + 1).map((k) => {
      const rs = this.pending.get(k)!;
      this.pending.delete(k);
      return rs;
    });
    return released;
  }

  lastPendingContext(): Uint8Array | null {
    if (this.queue.length === 0) return null;
    return this.pending.get(this.queue[this.queue.length - 1])!.request.context;
  }

  reset(): void {
    this.pending.clear();
    this.queue = [];
  }
}
