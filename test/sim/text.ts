// Text helpers for the simulator's keys and values.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export function encodeText(text: string): Uint8Array {
  return textEncoder.encode(text);
}

export function decodeText(data: Uint8Array): string {
  return textDecoder.decode(data);
}
