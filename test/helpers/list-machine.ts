import type { StateMachine } from '../../src/server/member.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A replicated list of strings for member tests; apply returns the list's length after the append. */
export class ListMachine implements StateMachine {
  items: string[] = [];
  /** Non-empty images restored: a snapshot from the leader, or one persisted earlier. */
  imagesRestored = 0;
  apply(payload: Uint8Array): unknown {
    this.items.push(dec.decode(payload));
    return this.items.length;
  }
  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify(this.items));
  }
  restore(image: Uint8Array): void {
    if (image.length > 0) this.imagesRestored++;
    this.items = image.length === 0 ? [] : JSON.parse(dec.decode(image));
  }
}
