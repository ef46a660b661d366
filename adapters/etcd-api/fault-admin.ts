// The fault-injection admin endpoint (/meshkv/faults on the client port), served only when the
// member was started with --experimental-fault-injection. It drives the peer transport's fault
// switch, the member's adjustable clock and the disk faults of its WAL and its backend (slow
// syncs or commits, a full disk), so
// a test harness can partition real processes, skew their time and fail their disk without
// root privileges, iptables or a real full file system. See docs/reliability.md.
//
// It can partition the member, so it is guarded on its own (createFaultHandler): every
// request must carry `Authorization: Bearer <secret>` (the member's fault-injection secret, in
// <data-dir>/fault-injection-secret unless given), comes from loopback unless the member was
// told otherwise, carries no CORS headers, and a browser request from another origin is
// refused outright, so a web page cannot drive it.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdjustableClock } from '../clock/adjustable.ts';
import { diskFaultTargets, type DiskFaults, type DiskFaultTarget } from '../storage/fs-wal/faulty-fs.ts';
import type { MemberId } from '../../src/raft/types.ts';
import type { FaultSwitch } from '../../src/seams.ts';

export interface FaultControls {
  faults: FaultSwitch;
  clock: AdjustableClock;
  /** The disk faults of the WAL and the backend; absent when the member has none (the endpoint then refuses /disk). */
  disk?: DiskFaults;
  /** The peers the member currently knows (for the state report). */
  peers(): MemberId[];
}

export interface FaultAnswer {
  status: number;
  body: unknown;
}

export const faultAdminPath = '/meshkv/faults';

type Body = Record<string, unknown>;

class BadRequest extends Error {}

function stateOf(c: FaultControls): Body {
  return {
    peers: c.peers().map((id) => ({ id: id.toString(16), blockedIn: c.faults.isBlocked(id, 'in'), blockedOut: c.faults.isBlocked(id, 'out') })),
    clock: { rate: c.clock.rate, jumpedMs: c.clock.jumped },
    ...(c.disk
      ? { disk: { ...c.disk.state, refusedWrites: c.disk.refusedWrites, delayedSyncs: c.disk.delayedSyncs, refusedCommits: c.disk.refusedCommits, delayedCommits: c.disk.delayedCommits } }
      : {}),
  };
}

function peerOf(body: Body): MemberId {
  const text = body.peer;
  if (typeof text !== 'string' || !/^[0-9a-f]{1,16}$/i.test(text)) throw new BadRequest(`"peer" must be a member id in hex (as etcdctl member list shows it), not ${JSON.stringify(text)}`);
  const id = parseInt(text, 16);
  if (!Number.isSafeInteger(id) || id === 0) throw new BadRequest(`"peer" ${text} is not a member id`);
  return id;
}

function directionOf(body: Body): 'in' | 'out' | 'both' {
  const d = body.direction ?? 'both';
  if (d !== 'in' && d !== 'out' && d !== 'both') throw new BadRequest(`"direction" must be "in", "out" or "both", not ${JSON.stringify(d)}`);
  return d;
}

function numberField(body: Body, name: string): number | undefined {
  const v = body[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new BadRequest(`"${name}" must be a number, not ${JSON.stringify(v)}`);
  return v;
}

function act(c: FaultControls, action: string, body: Body): void {
  switch (action) {
    case 'block':
      c.faults.block(peerOf(body), directionOf(body));
      return;
    case 'heal':
      c.faults.heal(body.peer === undefined ? undefined : peerOf(body));
      return;
    case 'clock': {
      const jumpMs = numberField(body, 'jumpMs');
      const rate = numberField(body, 'rate');
      if (jumpMs === undefined && rate === undefined) throw new BadRequest('give "jumpMs" (>= 0), "rate" (> 0) or both');
      if (jumpMs !== undefined && jumpMs < 0) throw new BadRequest(`"jumpMs" must be >= 0 (the clock never goes backwards), not ${jumpMs}`);
      if (rate !== undefined && rate <= 0) throw new BadRequest(`"rate" must be > 0, not ${rate}`);
      if (rate !== undefined) c.clock.setRate(rate);
      if (jumpMs !== undefined) c.clock.jump(jumpMs);
      return;
    }
    case 'disk': {
      if (!c.disk) throw new BadRequest('this member has no disk faults to set');
      const syncDelayMs = numberField(body, 'syncDelayMs');
      const full = body.full;
      if (full !== undefined && typeof full !== 'boolean') throw new BadRequest(`"full" must be true or false, not ${JSON.stringify(full)}`);
      const target = body.target;
      if (target !== undefined && !diskFaultTargets.includes(target as DiskFaultTarget)) throw new BadRequest(`"target" must be "wal", "backend" or "both", not ${JSON.stringify(target)}`);
      if (syncDelayMs === undefined && full === undefined) throw new BadRequest('give "syncDelayMs" (0 to 60000), "full" (true or false) or both, and optionally "target" ("wal", "backend" or "both")');
      try {
        c.disk.set({ ...(syncDelayMs !== undefined ? { syncDelayMs } : {}), ...(full !== undefined ? { full } : {}), ...(target !== undefined ? { target: target as DiskFaultTarget } : {}) });
      } catch (err) {
        throw new BadRequest((err as Error).message);
      }
      return;
    }
    default:
      throw new BadRequest(`unknown fault action ${JSON.stringify(action)}; POST ${faultAdminPath}/block, /heal, /clock or /disk`);
  }
}

/**
 * Answers one request to `path` (which starts with faultAdminPath). GET returns the state;
 * POST <path>/block {peer, direction?}, /heal {peer?}, /clock {jumpMs?, rate?} and /disk
 * {syncDelayMs?, full?, target?} act, then return the new state.
 */
export function answerFaultRequest(c: FaultControls, method: string, path: string, body: unknown): FaultAnswer {
  const action = path.slice(faultAdminPath.length).replace(/^\//, '');
  if (method === 'GET' && action === '') return { status: 200, body: stateOf(c) };
  if (method !== 'POST' || action === '') return { status: 405, body: { error: `use GET ${faultAdminPath} or POST ${faultAdminPath}/<action>` } };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { status: 400, body: { error: 'the body must be a JSON object' } };
  try {
    act(c, action, body as Body);
  } catch (err) {
    if (err instanceof BadRequest) return { status: 400, body: { error: err.message } };
    throw err;
  }
  return { status: 200, body: stateOf(c) };
}

export interface FaultGuard {
  /** The bearer secret every request must carry. */
  secret: string;
  /** Serve clients on other hosts too (default: loopback only). */
  remote: boolean;
}

/** Largest request body the endpoint reads. */
export const faultBodyBytesMax = 64 * 1024;

/** Answers (and returns true) requests to faultAdminPath, after the guard's checks; anything else returns false. */
export function createFaultHandler(c: FaultControls, guard: FaultGuard): (req: IncomingMessage, res: ServerResponse) => boolean {
  const secretDigest = sha256(guard.secret);
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== faultAdminPath && !path.startsWith(`${faultAdminPath}/`)) return false;
    const refusal = refusalOf(req, guard, secretDigest);
    if (refusal) {
      reply(res, refusal.status, { error: refusal.error });
      req.resume();
      return true;
    }
    readBody(req)
      .then((body) => {
        if (body === null) return reply(res, 413, { error: `request body larger than ${faultBodyBytesMax} bytes` });
        let parsed: unknown = {};
        if (req.method === 'POST') {
          try {
            parsed = JSON.parse(body || '{}');
          } catch (err) {
            return reply(res, 400, { error: `malformed JSON body: ${(err as Error).message}` });
          }
        }
        const answer = answerFaultRequest(c, req.method ?? 'GET', path, parsed);
        reply(res, answer.status, answer.body);
      })
      .catch(() => res.destroy());
    return true;
  };
}

function refusalOf(req: IncomingMessage, guard: FaultGuard, secretDigest: Buffer): { status: number; error: string } | null {
  if (!guard.remote && !isLoopback(req.socket.remoteAddress)) {
    return { status: 403, error: `${faultAdminPath} serves loopback clients only (start the member with --experimental-fault-injection-remote to allow others)` };
  }
  // Browsers say where a request comes from (Sec-Fetch-Site, Origin), and pages cannot forge either.
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  if ((site !== undefined && site !== 'same-origin' && site !== 'none') || (origin !== undefined && originHost(origin) !== req.headers.host)) {
    return { status: 403, error: `${faultAdminPath} does not serve other origins` };
  }
  const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  if (!auth || !timingSafeEqual(sha256(auth[1]), secretDigest)) {
    return { status: 401, error: `${faultAdminPath} needs "Authorization: Bearer <secret>" with the member's fault-injection secret` };
  }
  return null;
}

function originHost(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || /^(::ffff:)?127\./.test(address);
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The body as text, or null past faultBodyBytesMax. */
async function readBody(req: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > faultBodyBytesMax) {
      req.destroy();
      return null;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}
