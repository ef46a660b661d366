// The cluster's member table: names and URLs by member id, as MemberList shows them and as
// the peer transport dials them. Raft tracks only ids; the addresses travel in the ConfChange
// `context` and in small internal log entries (attribute publishes, peer URL updates), and the
// whole table rides in front of the state machine's snapshot image, so a member that catches
// up from a snapshot learns every address. Applying is deterministic: every member derives the
// same table from the same entries.

import { Packr } from 'msgpackr';
import { ConfChangeType, type ConfChange } from '../raft/confchange.ts';
import type { ConfState, MemberId } from '../raft/types.ts';

export interface MemberRecord {
  id: MemberId;
  /** Empty until the member has started and published its name (etcd shows it "unstarted"). */
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** What a ConfChange adding a member carries in its context. */
export interface MemberContext {
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

/** Internal log entries that change the table without a Raft membership change. */
export type MemberUpdate =
  | { kind: 'attributes'; id: MemberId; name: string; clientURLs: string[] }
  | { kind: 'peerURLs'; id: MemberId; peerURLs: string[] }
  /** The cluster's tab vote policy (vote-policy.ts); not about one member, so no id. */
  | { kind: 'tabVotes'; tabsMayOutvote: boolean };

/**
 * First byte of an internal member-table entry. Client requests start with their format
 * version (1), so the two never collide.
 */
export const memberUpdateTag = 0x6d;
/**
 * A snapshot image that carries the table starts with these four bytes. An MVCC image starts
 * with a little-endian u32 frame length, which is never 0xffffffff for an image under 4 GiB,
 * so images written before the table existed still restore (with the table seeded from config).
 */
const tableImageMagic = [0xff, 0xff, 0xff, 0xff];
/**
 * Version 2 adds the cluster settings after the records, version 3 the auth store's image
 * (auth-store.ts) after them, version 4 the outbox sessions' image (outbox-sessions.ts); older
 * images restore with the defaults, an empty auth store and no outbox sessions.
 */
const tableImageVersion = 4;
/** Members in one table; etcd's clusters are a handful of members, this is a sanity limit. */
export const membersMax = 128;

const packr = new Packr({ useRecords: false });
const noBytes = new Uint8Array(0);

export class MemberTable {
  /** Invariant: every record's id is a positive safe integer, and at most membersMax records. */
  private readonly byId = new Map<MemberId, MemberRecord>();
  /** Tabs may hold the voting majority even when Node members vote (vote-policy.ts); off by default. */
  tabsMayOutvote = false;
  /**
   * The id fixed when the cluster was founded (uint64 as a decimal string), or null while this
   * member has not learned it: founders seed it, a joiner learns it with the leader's snapshot,
   * and every image carries it, so it stays the same across replacements and restarts.
   */
  clusterId: string | null = null;
  /**
   * Members this replica saw leave by an applied RemoveNode (and not added back since). Local,
   * not replicated, and not in images: a table missing a member does not say it was removed,
   * since a joiner's seed from --initial-cluster, a snapshot, or the early entries a joiner
   * replays all lack members added later. Peers refuse only these as removed (a refusal
   * makes a member stop), so that a member behind never turns away one that is still in the
   * cluster (the leader, even, whose appends would bring it up to date).
   */
  private readonly removedIds = new Set<MemberId>();

  get(id: MemberId): MemberRecord | undefined {
    return this.byId.get(id);
  }

  list(): MemberRecord[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }

  /** Replaces the whole table (a seed from configuration or a restored image). */
  reset(records: readonly MemberRecord[], settings: TableSettings = { tabsMayOutvote: false, clusterId: null }): void {
    this.byId.clear();
    this.tabsMayOutvote = settings.tabsMayOutvote;
    this.clusterId = settings.clusterId;
    for (const r of records) this.set({ ...r, peerURLs: [...r.peerURLs], clientURLs: [...r.clientURLs] });
  }

  /**
   * Follows an applied ConfChange: an added member takes the addresses in the context; members
   * that left `cs` are dropped; learner flags follow `cs`. A change Raft refused leaves `cs`
   * as it was, and so the table.
   */
  applyConfChange(cc: ConfChange, cs: ConfState): void {
    const ctx = cc.context ? decodeMemberContext(cc.context) : null;
    const inConfig = new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext]);
    for (const ch of cc.changes) {
      if (ch.type === ConfChangeType.RemoveNode) {
        // Refused once it leaves the table too (a joint change keeps it as an outgoing voter first).
        if (!inConfig.has(ch.memberId) || cs.votersOutgoing.includes(ch.memberId)) this.removedIds.add(ch.memberId);
        continue;
      }
      if (!inConfig.has(ch.memberId)) continue;
      this.removedIds.delete(ch.memberId);
      const existing = this.byId.get(ch.memberId);
      if (ctx && cc.changes.length === 1) {
        // An add sets the addresses in its context; a promotion re-adds a learner without one.
        this.set({
          id: ch.memberId,
          name: ctx.name || (existing?.name ?? ''),
          peerURLs: ctx.peerURLs,
          clientURLs: ctx.clientURLs.length > 0 ? ctx.clientURLs : (existing?.clientURLs ?? []),
          isLearner: false, // set from cs below
        });
      } else if (!existing) {
        this.set({ id: ch.memberId, name: '', peerURLs: [], clientURLs: [], isLearner: false });
      }
    }
    for (const id of [...this.byId.keys()]) if (!inConfig.has(id)) this.byId.delete(id);
    const learners = new Set(cs.learners);
    for (const r of this.byId.values()) r.isLearner = learners.has(r.id);
  }

  /** Members this replica saw removed (see removedIds) that are not in the table now. */
  removed(): MemberId[] {
    return [...this.removedIds].filter((id) => !this.byId.has(id));
  }

  /** Applies an internal update entry; updates for members not in the table are ignored alike everywhere. */
  applyUpdate(u: MemberUpdate): void {
    if (u.kind === 'tabVotes') {
      this.tabsMayOutvote = u.tabsMayOutvote;
      return;
    }
    const r = this.byId.get(u.id);
    if (!r) return;
    if (u.kind === 'attributes') {
      r.name = u.name;
      r.clientURLs = [...u.clientURLs];
    } else {
      r.peerURLs = [...u.peerURLs];
    }
  }

  /** Prefixes a state machine image with the table (and the auth store's and outbox sessions' images). */
  wrapImage(stateImage: Uint8Array, authImage: Uint8Array = noBytes, sessionsImage: Uint8Array = noBytes): Uint8Array {
    const header = this.imageHeader(authImage, sessionsImage);
    const out = new Uint8Array(header.length + stateImage.length);
    out.set(header, 0);
    out.set(stateImage, header.length);
    return out;
  }

  /** The bytes wrapImage puts before the state machine's image: magic, length, the table, the auth and outbox sessions' images. */
  imageHeader(authImage: Uint8Array = noBytes, sessionsImage: Uint8Array = noBytes): Uint8Array {
    const settings = this.clusterId === null ? { tabsMayOutvote: this.tabsMayOutvote } : { tabsMayOutvote: this.tabsMayOutvote, clusterId: this.clusterId };
    const table = packr.pack([tableImageVersion, this.list(), settings, authImage, sessionsImage]);
    const out = new Uint8Array(8 + table.length);
    out.set(tableImageMagic, 0);
    new DataView(out.buffer).setUint32(4, table.length, true);
    out.set(table, 8);
    return out;
  }

  /**
   * Splits an image made by wrapImage, restoring the table, and returns the state machine's
   * part. An image without the table (empty, or written before it existed) returns null for
   * the table so the caller can seed it.
   */
  static unwrapImage(image: Uint8Array): { records: MemberRecord[] | null; settings: TableSettings; authImage: Uint8Array; sessionsImage: Uint8Array; stateImage: Uint8Array } {
    const defaults: TableSettings = { tabsMayOutvote: false, clusterId: null };
    if (image.length < 8 || !tableImageMagic.every((b, i) => image[i] === b)) return { records: null, settings: defaults, authImage: noBytes, sessionsImage: noBytes, stateImage: image };
    const length = new DataView(image.buffer, image.byteOffset, image.byteLength).getUint32(4, true);
    if (8 + length > image.length) throw new Error(`member table image: ${length} table bytes overrun the ${image.length}-byte image`);
    const decoded = packr.unpack(image.subarray(8, 8 + length)) as unknown;
    if (!Array.isArray(decoded) || ![1, 2, 3, tableImageVersion].includes(decoded[0]) || !Array.isArray(decoded[1])) {
      throw new Error(`member table image: format ${JSON.stringify(Array.isArray(decoded) ? decoded[0] : decoded)}, expected 1 to ${tableImageVersion}`);
    }
    const settings = decoded[0] === 1 ? defaults : checkSettings(decoded[2]);
    const authImage = decoded[0] >= 3 ? decoded[3] : noBytes;
    if (!(authImage instanceof Uint8Array)) throw new Error('member table image: the auth image is not bytes');
    const sessionsImage = decoded[0] >= 4 ? decoded[4] : noBytes;
    if (!(sessionsImage instanceof Uint8Array)) throw new Error('member table image: the outbox sessions image is not bytes');
    return { records: (decoded[1] as unknown[]).map(checkRecord), settings, authImage, sessionsImage, stateImage: image.subarray(8 + length) };
  }

  /**
   * The header of `image` (made by wrapImage) with `sessionsImage` in place of its outbox
   * sessions: for a store image taken at a later index than the header (outbox-sessions.ts).
   */
  static headerWithSessions(image: Uint8Array, sessionsImage: Uint8Array): Uint8Array {
    // Checks the header first; an image without one has no sessions to replace.
    if (MemberTable.unwrapImage(image).records === null) throw new Error('member table image: no header to put outbox sessions in');
    const length = new DataView(image.buffer, image.byteOffset, image.byteLength).getUint32(4, true);
    const decoded = packr.unpack(image.subarray(8, 8 + length)) as unknown[];
    const table = packr.pack([tableImageVersion, decoded[1], decoded[0] === 1 ? { tabsMayOutvote: false } : decoded[2], (decoded[0] as number) >= 3 ? decoded[3] : noBytes, sessionsImage]);
    const out = new Uint8Array(8 + table.length);
    out.set(tableImageMagic, 0);
    new DataView(out.buffer).setUint32(4, table.length, true);
    out.set(table, 8);
    return out;
  }

  private set(r: MemberRecord): void {
    if (!Number.isSafeInteger(r.id) || r.id <= 0) throw new Error(`member table: id ${r.id} is not a positive safe integer`);
    if (!this.byId.has(r.id) && this.byId.size >= membersMax) throw new Error(`member table: more than ${membersMax} members`);
    this.byId.set(r.id, r);
  }
}

export function encodeMemberContext(ctx: MemberContext): Uint8Array {
  return new Uint8Array(packr.pack([ctx.name, ctx.peerURLs, ctx.clientURLs]));
}

/** Null for a context that does not decode: every member ignores it alike. */
export function decodeMemberContext(bytes: Uint8Array): MemberContext | null {
  try {
    const v = packr.unpack(bytes) as unknown;
    if (!Array.isArray(v) || typeof v[0] !== 'string' || !isStrings(v[1]) || !isStrings(v[2])) return null;
    return { name: v[0], peerURLs: v[1], clientURLs: v[2] };
  } catch {
    return null;
  }
}

/** Cluster-wide settings the table carries beside the records. */
export interface TableSettings {
  tabsMayOutvote: boolean;
  /** See MemberTable.clusterId; absent from images written before the table carried it. */
  clusterId: string | null;
}

export function encodeMemberUpdate(u: MemberUpdate): Uint8Array {
  const body = packr.pack(
    u.kind === 'attributes' ? [u.kind, u.id, u.name, u.clientURLs] : u.kind === 'peerURLs' ? [u.kind, u.id, u.peerURLs] : [u.kind, 0, u.tabsMayOutvote],
  );
  const out = new Uint8Array(body.length + 1);
  out[0] = memberUpdateTag;
  out.set(body, 1);
  return out;
}

/** Null for an entry that does not decode: every member skips it alike. */
export function decodeMemberUpdate(bytes: Uint8Array): MemberUpdate | null {
  if (bytes[0] !== memberUpdateTag) return null;
  try {
    const v = packr.unpack(bytes.subarray(1)) as unknown;
    if (!Array.isArray(v) || !Number.isSafeInteger(v[1])) return null;
    if (v[0] === 'attributes' && typeof v[2] === 'string' && isStrings(v[3])) return { kind: 'attributes', id: v[1], name: v[2], clientURLs: v[3] };
    if (v[0] === 'peerURLs' && isStrings(v[2])) return { kind: 'peerURLs', id: v[1], peerURLs: v[2] };
    if (v[0] === 'tabVotes' && typeof v[2] === 'boolean') return { kind: 'tabVotes', tabsMayOutvote: v[2] };
    return null;
  } catch {
    return null;
  }
}

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

function checkSettings(v: unknown): TableSettings {
  const s = v as { tabsMayOutvote?: unknown; clusterId?: unknown };
  if (!s || typeof s !== 'object' || typeof s.tabsMayOutvote !== 'boolean') throw new Error(`member table image: malformed settings ${JSON.stringify(v)}`);
  if (s.clusterId !== undefined && !isClusterId(s.clusterId)) throw new Error(`member table image: cluster id ${JSON.stringify(s.clusterId)} is not a uint64 in decimal`);
  return { tabsMayOutvote: s.tabsMayOutvote, clusterId: s.clusterId ?? null };
}

/** A uint64 in decimal, as etcd's response headers carry the cluster id. */
export function isClusterId(v: unknown): v is string {
  return typeof v === 'string' && /^(0|[1-9]\d{0,19})$/.test(v) && BigInt(v) < 2n ** 64n;
}

function checkRecord(v: unknown): MemberRecord {
  const r = v as MemberRecord;
  if (!r || typeof r !== 'object' || !Number.isSafeInteger(r.id) || typeof r.name !== 'string' || !isStrings(r.peerURLs) || !isStrings(r.clientURLs) || typeof r.isLearner !== 'boolean') {
    throw new Error(`member table image: malformed record ${JSON.stringify(v)}`);
  }
  return { id: r.id, name: r.name, peerURLs: r.peerURLs, clientURLs: r.clientURLs, isLearner: r.isLearner };
}
