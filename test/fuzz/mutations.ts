// Byte-level damage for fuzzing decoders: each mutation is plain data (so fast-check shrinks
// and prints it), applied to a copy of the input.

import fc from 'fast-check';
import { concat } from '../../src/client/bytes.ts';

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; bytes: Uint8Array }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'zero'; at: number; length: number }
  | { kind: 'remove'; at: number; length: number };

/** Positions are taken modulo the input's length, so one mutation fits any input. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.oneof(fc.constantFrom(0, 0x7f, 0x80, 0xff), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('zero' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('remove' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }),
);

/** A mutated copy of `input`, as a plain Uint8Array (Buffer's slice and fill behave differently). */
export function mutate(input: Uint8Array, m: Mutation): Uint8Array {
  const n = input.length;
  const pos = (at: number) => (n === 0 ? 0 : at % n);
  switch (m.kind) {
    case 'flip': {
      const out = new Uint8Array(input);
      if (n > 0) out[pos(m.at)] ^= 1 << m.bit;
      return out;
    }
    case 'set': {
      const out = new Uint8Array(input);
      if (n > 0) out[pos(m.at)] = m.byte;
      return out;
    }
    case 'truncate':
      return new Uint8Array(input.subarray(0, pos(m.at)));
    case 'extend':
      return concat([input, m.bytes]);
    case 'insert':
      return concat([input.subarray(0, pos(m.at)), m.bytes, input.subarray(pos(m.at))]);
    case 'zero': {
      const out = new Uint8Array(input);
      out.fill(0, pos(m.at), pos(m.at) + m.length);
      return out;
    }
    case 'remove':
      return concat([input.subarray(0, pos(m.at)), input.subarray(pos(m.at) + m.length)]);
  }
}

export function mutateAll(input: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  return ms.reduce((bytes, m) => mutate(bytes, m), input);
}

