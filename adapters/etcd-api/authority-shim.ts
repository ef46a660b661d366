// Lets gRPC clients that send `:authority: http://host:port` reach the gRPC server (grpc-h2.ts).
// etcdctl 3.4 does so for every per-endpoint command (endpoint status/hashkv/health, defrag,
// move-leader, --cluster) when its endpoints carry a scheme; Go's HTTP/2 server accepts that,
// but nghttp2 (under Node's http2) resets the stream with PROTOCOL_ERROR before any of our code
// runs, and Node offers no option to relax the check.
//
// Wrapping a connection costs: Node's http2 then reads it through JS (JSStreamSocket) instead of
// natively, which measurably slows small requests (docs/benchmarks.md). So routeHttp2 first looks
// at the connection's first request and hands the socket itself to nghttp2 when its authority
// is well formed; only connections whose first authority carries a scheme go through the shim.
// Go clients send no request before the server's SETTINGS frame, so routeHttp2 sends an empty
// one (all defaults, which nghttp2 assumes of the client until its own SETTINGS are acknowledged
// anyway) and removes the client's acknowledgement of it, which nghttp2 would find unexpected.
//
// A shimmed connection's client half passes through an AuthorityRewriter. It splits the byte
// stream into frames, decodes every header block with a decoder that mirrors
// the client's HPACK state, and forwards the bytes untouched while authorities are well formed
// (the common case: a chunk made only of complete, unchanged frames goes through as the same
// Buffer). The first authority carrying a scheme is rewritten without it (`host:port`, what Go
// hands its handlers too), and from then on every header block of that connection is re-encoded
// as literals that never touch nghttp2's dynamic table: the client's table, which its later
// blocks refer to, no longer matches nghttp2's once one block differs.

import { Duplex } from 'node:stream';
import type * as net from 'node:net';
import { encodeLiterals, HpackDecoder, HpackError, type HeaderField } from './hpack.ts';

const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const frameHeaderBytes = 9;
const typeHeaders = 0x1;
const typeSettings = 0x4;
const typeWindowUpdate = 0x8;
const flagAck = 0x1;
const typePushPromise = 0x5;
const typeContinuation = 0x9;
const flagEndStream = 0x1;
const flagEndHeaders = 0x4;
const flagPadded = 0x8;
const flagPriority = 0x20;
/** Every HTTP/2 peer accepts frames this large (RFC 9113 §4.2), so re-encoded blocks are cut to it. */
const framePayloadBytesSafe = 16_384;
/** A header block (HEADERS plus CONTINUATIONs) larger than this is not decoded (see giveUp). */
const headerBlockBytesMax = 1 << 20;
/** `scheme://` at the start of an authority, as etcd's clients put it there. */
const schemePrefix = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

export class AuthorityRewriter {
  private prefaceLeft = preface.length;
  /** Bytes of an incomplete frame carried over to the next chunk. */
  private carry: Buffer | null = null;
  /** The HEADERS frame (and CONTINUATIONs) of a block not yet ended, kept whole until it is. */
  private blockFrames: Buffer[] = [];
  private blockBytes = 0;
  private readonly decoder = new HpackDecoder();
  /** Set once a block was rewritten: every later block is re-encoded (see the header). */
  private reencoding = false;
  /** Set when decoding failed before any rewrite: bytes pass untouched and nghttp2 reports the error. */
  private passthrough = false;
  /** Authorities rewritten so far (tests read it). */
  rewrites = 0;

  /** `settingsAckToDrop`: remove the client's first SETTINGS acknowledgement (see routeHttp2). */
  constructor(private settingsAckToDrop = false) {}

  /**
   * Returns the bytes to forward for `chunk`, in order, or throws an HpackError when the
   * connection cannot continue (a block nghttp2 would need us to re-encode but we cannot decode).
   */
  push(chunk: Buffer): Buffer[] {
    if (this.passthrough) return [chunk];
    const out: Buffer[] = [];
    let buf = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = null;
    let pos = 0;
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, buf.length);
      this.prefaceLeft -= n;
      pos = n;
    }
    let flushedTo = 0; // bytes of buf before this are in `out` already
    while (this.prefaceLeft === 0 && buf.length - pos >= frameHeaderBytes) {
      const length = buf.readUIntBE(pos, 3);
      const type = buf[pos + 3]!;
      const end = pos + frameHeaderBytes + length;
      if (end > buf.length) break;
      if (type === typeHeaders || type === typeContinuation || this.blockFrames.length > 0) {
        if (pos > flushedTo) out.push(buf.subarray(flushedTo, pos));
        const frame = buf.subarray(pos, end);
        pos = flushedTo = end;
        for (const b of this.headerFrame(frame)) out.push(b);
        if (this.passthrough) {
          if (pos < buf.length) out.push(buf.subarray(pos));
          return out;
        }
      } else if (this.settingsAckToDrop && type === typeSettings && (buf[pos + 4]! & flagAck) !== 0) {
        if (pos > flushedTo) out.push(buf.subarray(flushedTo, pos));
        this.settingsAckToDrop = false;
        pos = flushedTo = end;
      } else {
        if (type === typePushPromise) this.giveUp(); // a client never sends one: nghttp2 ends the connection
        pos = end;
      }
    }
    if (flushedTo === 0 && pos === buf.length && buf === chunk) return [chunk];
    if (pos > flushedTo) out.push(buf.subarray(flushedTo, pos));
    if (pos < buf.length) this.carry = Buffer.from(buf.subarray(pos));
    return out;
  }

  /** Collects a header block's frames; returns what to forward once the block ends. */
  private headerFrame(frame: Buffer): Buffer[] {
    this.blockFrames.push(frame);
    this.blockBytes += frame.length;
    const type = frame[3]!;
    const flags = frame[4]!;
    if (this.blockFrames.length > 1 && type !== typeContinuation) this.giveUp(); // nghttp2 reports the protocol error
    else if (this.blockBytes > headerBlockBytesMax) this.giveUp();
    if (this.passthrough) return this.takeBlock();
    if ((flags & flagEndHeaders) === 0) return [];
    const first = this.blockFrames[0]!;
    const firstFlags = first[4]!;
    const fragments: Buffer[] = [];
    let priority: Buffer | null = null;
    for (const f of this.blockFrames) {
      let start = frameHeaderBytes;
      let end = f.length;
      if (f === first) {
        if (firstFlags & flagPadded) {
          const pad = f[start]!;
          start += 1;
          end -= pad;
        }
        if (firstFlags & flagPriority) {
          priority = f.subarray(start, start + 5);
          start += 5;
        }
        if (end < start) {
          this.giveUp();
          return this.takeBlock();
        }
      }
      fragments.push(f.subarray(start, end));
    }
    let fields: HeaderField[];
    try {
      fields = this.decoder.decode(Buffer.concat(fragments));
    } catch (err) {
      if (!(err instanceof HpackError)) throw err;
      this.giveUp();
      return this.takeBlock();
    }
    let changed = false;
    for (const f of fields) {
      if (f.name === ':authority' && schemePrefix.test(f.value)) {
        f.value = f.value.replace(schemePrefix, '');
        changed = true;
        this.rewrites++;
      }
    }
    if (!changed && !this.reencoding) return this.takeBlock();
    this.reencoding = true;
    const streamId = first.readUInt32BE(5) & 0x7fffffff;
    this.blockFrames = [];
    this.blockBytes = 0;
    return headerFrames(streamId, firstFlags & flagEndStream, priority, encodeLiterals(fields));
  }

  private takeBlock(): Buffer[] {
    const frames = this.blockFrames;
    this.blockFrames = [];
    this.blockBytes = 0;
    return frames;
  }

  /**
   * Stops decoding. Before any rewrite nghttp2's state still matches the client's, so the rest
   * passes untouched and nghttp2 answers whatever is wrong as HTTP/2 says; after one, forwarding
   * blocks we cannot re-encode would corrupt nghttp2's table, so the connection must end.
   */
  private giveUp(): void {
    if (this.reencoding) throw new HpackError('header block that cannot be decoded on a connection whose authorities were rewritten');
    this.passthrough = true;
  }
}

/** A HEADERS frame and as many CONTINUATIONs as `block` needs. */
function headerFrames(streamId: number, endStream: number, priority: Buffer | null, block: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  let at = 0;
  do {
    const first = at === 0;
    const prefix = first && priority ? priority : Buffer.alloc(0);
    const take = Math.min(block.length - at, framePayloadBytesSafe - prefix.length);
    const last = at + take === block.length;
    const header = Buffer.alloc(frameHeaderBytes);
    header.writeUIntBE(prefix.length + take, 0, 3);
    header[3] = first ? typeHeaders : typeContinuation;
    header[4] = (first ? endStream | (priority ? flagPriority : 0) : 0) | (last ? flagEndHeaders : 0);
    header.writeUInt32BE(streamId, 5);
    frames.push(header, prefix, block.subarray(at, at + take));
    at += take;
  } while (at < block.length);
  return frames;
}

/**
 * Wraps an accepted connection so its incoming bytes pass through an AuthorityRewriter; the
 * result is handed to the HTTP/2 server in place of the socket. Outgoing bytes go straight on.
 */
export function shimAuthority(socket: net.Socket, received: Buffer = Buffer.alloc(0), settingsAckToDrop = false): Duplex {
  const rewriter = new AuthorityRewriter(settingsAckToDrop);
  // Node's http2 turns Nagle off on the sockets it owns, but only through their handle, which
  // this wrapper hides: without this, small responses wait for the client's delayed ACK (~40 ms).
  socket.setNoDelay(true);
  const shim = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (socket.write(chunk)) callback();
      else socket.once('drain', () => callback());
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  const onData = (chunk: Buffer) => {
    let out: Buffer[];
    try {
      out = rewriter.push(chunk);
    } catch {
      socket.destroy();
      return;
    }
    let more = true;
    for (const b of out) if (b.length > 0) more = shim.push(b) && more;
    if (!more) socket.pause();
  };
  socket.pause();
  if (received.length > 0) onData(received);
  socket.on('data', onData);
  socket.on('end', () => shim.push(null));
  socket.on('close', () => shim.destroy());
  // Node's http2 session exposes the socket's addresses (session.socket); keep them the peer's.
  Object.defineProperties(shim, {
    remoteAddress: { get: () => socket.remoteAddress },
    remotePort: { get: () => socket.remotePort },
    remoteFamily: { get: () => socket.remoteFamily },
    localAddress: { get: () => socket.localAddress },
    localPort: { get: () => socket.localPort },
  });
  return shim;
}

/** An empty SETTINGS frame: the server preface with every setting at its default. */
const emptySettings = Buffer.from([0, 0, 0, typeSettings, 0, 0, 0, 0, 0]);
/** How long routeHttp2 waits for the first request and the acknowledgement before shimming. */
const sniffMs = 1000;

/**
 * Hands a new HTTP/2 connection (its first bytes already read: `received`, the preface or part of
 * it) to `inject`: the socket itself when the first request's authority is well formed, else
 * the authority shim. See the header for why, and for the SETTINGS frame it sends.
 */
export function routeHttp2(socket: net.Socket, received: Buffer, inject: (connection: Duplex) => void): void {
  let buf = received;
  let decided = false;
  const decide = (native: boolean, ackAt: number) => {
    decided = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.pause();
    if (native) {
      // Without the acknowledgement of our SETTINGS, nghttp2 sees a normal connection start.
      socket.unshift(Buffer.concat([buf.subarray(0, ackAt), buf.subarray(ackAt + frameHeaderBytes)]));
      inject(socket);
    } else {
      inject(shimAuthority(socket, buf, true));
    }
  };
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    // A first request this large (or frames that never include one) is left to the shim's bounds.
    if (buf.length > headerBlockBytesMax) return decide(false, -1);
    if (buf.length < preface.length) return;
    if (!buf.subarray(0, preface.length).equals(preface)) return decide(false, -1);
    let pos = preface.length;
    let ackAt = -1;
    let authorityOk: boolean | null = null;
    const block: Buffer[] = [];
    while (buf.length - pos >= frameHeaderBytes) {
      const length = buf.readUIntBE(pos, 3);
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      const end = pos + frameHeaderBytes + length;
      if (end > buf.length) break;
      if (type === typeSettings && (flags & flagAck) !== 0 && ackAt < 0) {
        ackAt = pos;
      } else if ((type === typeHeaders && block.length === 0) || (type === typeContinuation && block.length > 0 && authorityOk === null)) {
        let start = pos + frameHeaderBytes;
        let stop = end;
        if (type === typeHeaders && flags & flagPadded) {
          stop -= buf[start]!;
          start += 1;
        }
        if (type === typeHeaders && flags & flagPriority) start += 5;
        if (stop < start) return decide(false, -1);
        block.push(buf.subarray(start, stop));
        if (flags & flagEndHeaders) {
          try {
            const fields = new HpackDecoder().decode(Buffer.concat(block));
            authorityOk = !fields.some((f) => f.name === ':authority' && schemePrefix.test(f.value));
          } catch {
            return decide(false, -1);
          }
        }
      } else if (type !== typeSettings && type !== typeWindowUpdate && !(type === typeHeaders || type === typeContinuation)) {
        // Anything else (a PING, say) wants nghttp2's answer now: the shim forwards it.
        return decide(false, -1);
      }
      pos = end;
      if (authorityOk !== null && ackAt >= 0) return decide(authorityOk, ackAt);
    }
    if (authorityOk === false) decide(false, -1);
  };
  const timer = setTimeout(() => {
    if (!decided) decide(false, -1);
  }, sniffMs);
  socket.on('data', onData);
  socket.on('close', () => clearTimeout(timer));
  socket.write(emptySettings);
  socket.resume();
}
