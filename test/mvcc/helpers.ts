import {
  MvccStateMachine,
  type ApplyRequest,
  type ApplyResponseByKind,
  type KeyValue,
  type MvccError,
  type StateMachineOptions,
} from '../../src/mvcc/index.ts';

export const b = (text: string): Uint8Array => new TextEncoder().encode(text);
export const str = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** A state machine with throwing shorthands for tests. */
export class Harness {
  readonly sm: MvccStateMachine;
  nowMs = 0;

  constructor(options: StateMachineOptions = {}) {
    this.sm = new MvccStateMachine(options);
  }

  ok<R extends ApplyRequest>(request: R): ApplyResponseByKind[R['kind']] {
    const result = this.sm.apply(request, { nowMs: this.nowMs });
    if (!result.ok) throw new Error(`unexpected error: ${result.error.message}`);
    return result.response;
  }

  err(request: ApplyRequest): MvccError {
    const result = this.sm.apply(request, { nowMs: this.nowMs });
    if (result.ok) throw new Error(`expected an error for ${request.kind}`);
    return result.error;
  }

  put(key: string, value: string, extra: Partial<{ lease: bigint; prevKv: boolean }> = {}) {
    return this.ok({ kind: 'put', request: { key: b(key), value: b(value), ...extra } });
  }

  del(key: string, rangeEnd?: string) {
    return this.ok({ kind: 'deleteRange', request: { key: b(key), rangeEnd: rangeEnd === undefined ? undefined : b(rangeEnd) } });
  }

  get(key: string, revision = 0) {
    return this.ok({ kind: 'range', request: { key: b(key), revision } });
  }
}

/** A KeyValue in a form that reads well in assertions. */
export function kv(k: KeyValue): { key: string; value: string; create: number; mod: number; version: number; lease: bigint } {
  return {
    key: str(k.key),
    value: str(k.value),
    create: k.createRevision,
    mod: k.modRevision,
    version: k.version,
    lease: k.lease,
  };
}
