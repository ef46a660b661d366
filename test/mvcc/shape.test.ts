// Malformed requests (from a damaged entry or a buggy API layer) come back as etcd-style
// errors from apply, never as exceptions, and change nothing.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MvccError } from '../../src/mvcc/errors.ts';
import { MvccStateMachine } from '../../src/mvcc/state-machine.ts';
import type { ApplyRequest } from '../../src/mvcc/types.ts';

const enc = new TextEncoder();

function seeded(): MvccStateMachine {
  const sm = new MvccStateMachine();
  for (let i = 0; i < 5; i++) sm.apply({ kind: 'put', request: { key: enc.encode(`k${i}`), value: enc.encode(`v${i}`) } }, { nowMs: 0 });
  return sm;
}

const kinds = ['range', 'put', 'deleteRange', 'txn', 'compaction', 'leaseGrant', 'leaseRevoke', 'leaseCheckpoint', 'bogus'];

describe('malformed requests', () => {
  it('a compare with an unknown target is refused with a clear error', () => {
    const sm = seeded();
    const r = sm.apply(
      { kind: 'txn', request: { compare: [{ key: enc.encode('k1'), target: 'MOD', result: 0, modRevision: 1 }] } } as unknown as ApplyRequest,
      { nowMs: 0 },
    );
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.message).toBe('etcdserver: malformed request: txn.compare[0].target MOD is not a known value');
  });

  it('random structures never throw from apply and never change the store', () => {
    const anyRequest = fc.record({
      kind: fc.constantFrom(...kinds),
      request: fc.oneof(
        fc.anything(),
        fc.record({
          key: fc.oneof(fc.uint8Array({ maxLength: 4 }), fc.string(), fc.constant(undefined)),
          value: fc.oneof(fc.uint8Array({ maxLength: 4 }), fc.integer()),
          rangeEnd: fc.oneof(fc.uint8Array({ maxLength: 2 }), fc.constant(null)),
          compare: fc.array(fc.record({ key: fc.uint8Array({ maxLength: 2 }), target: fc.integer({ min: -1, max: 6 }), result: fc.anything() })),
          success: fc.array(fc.dictionary(fc.constantFrom('requestPut', 'requestRange', 'requestTxn', 'x'), fc.anything())),
          revision: fc.oneof(fc.integer(), fc.double(), fc.bigInt()),
          TTL: fc.oneof(fc.integer(), fc.string()),
          ID: fc.oneof(fc.bigInt(), fc.integer()),
          lease: fc.oneof(fc.bigInt(), fc.integer()),
          checkpoints: fc.anything(),
        }),
      ),
    });
    const sm = seeded();
    fc.assert(
      fc.property(anyRequest, (req) => {
        const before = sm.hash();
        const r = sm.apply(req as unknown as ApplyRequest, { nowMs: 0 });
        if (!r.ok) {
          expect(r.error).toBeInstanceOf(MvccError);
          expect(sm.hash()).toBe(before);
        }
      }),
      { numRuns: 2000, seed: 7 },
    );
  });
});
