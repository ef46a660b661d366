// What a Node member adds to take browser tabs as peers (--browser-peers on): a WebRTC
// transport (node-datachannel) beside its TCP one, WebSocket signaling — hosted on its client
// port, or another member's endpoint joined with --signaling-url — and AutoMembership
// answering the tabs' join and leave requests over the signaling's control channel.
//
// Every Node member of a mixed cluster joins one signaling endpoint: tabs and Node members
// find each other by member id there, and signaling relays are not federated, so a member on
// another endpoint would never see them.

import { systemClock } from '../clock/system.ts';
import type { EtcdListener } from '../etcd-api/listener.ts';
import { ControlChannel, serveMembershipControl, type BootstrapMember } from '../signaling/control.ts';
import { SignalingError, type Signaling, type SignalingHandlers } from '../signaling/types.ts';
import { WebSocketSignaling } from '../signaling/ws-client.ts';
import { SignalingServer } from '../signaling/ws-server.ts';
import { WebRtcTransport } from '../transport/webrtc/index.ts';
import { nodeWrtc } from '../transport/webrtc/node-wrtc.ts';
import { AutoMembership } from '../../src/server/auto-membership.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import type { MemberId } from '../../src/raft/types.ts';
import { signalingPath, type BrowserPeersConfig } from './config.ts';
import type { LogFn } from './node-member.ts';

export interface BrowserPeers {
  transport: WebRtcTransport;
  /** Lets the hosted endpoint (if any) answer WebSocket upgrades on `listener`'s client port. */
  attach(listener: EtcdListener): void;
  /** Starts answering probes, joins and leaves for `kv`, started with `bootstrapMembers` as its initial member table. */
  serve(kv: KvMember, bootstrapMembers: readonly BootstrapMember[]): void;
  close(): Promise<void>;
}

export class BrowserPeersError extends Error {}

export interface BrowserPeersOptions {
  id: MemberId;
  /** --initial-cluster-token: the signaling cluster name. */
  clusterToken: string;
  /** What members must present to join signaling (the admission secret, or the tabs' own one). */
  secret: string;
  /** Whether a Raft message from `peer` may reach this member (a member of its table). */
  admits: (peer: MemberId) => boolean;
  config: BrowserPeersConfig;
  /** Whether a signaling upgrade naming this Host may proceed (--host-whitelist). */
  allowHost?: (host: string | undefined) => boolean;
  /** Where ICE candidates are gathered: the client listener's host, where tabs reach the member's pages. */
  bindAddress?: string;
  log: LogFn;
}

export async function openBrowserPeers(o: BrowserPeersOptions): Promise<BrowserPeers> {
  const signalingLog = (level: 'debug' | 'info' | 'warn', msg: string) => {
    if (level !== 'debug') o.log(level, msg);
  };
  // This member's cluster exists by its configuration (founded with --initial-cluster, or
  // joined with --initial-cluster-state existing): signaling names it the founder, so a tab
  // that hears no probe answer in time (this member busy, say) waits instead of founding another.
  const server =
    o.config.signalingUrl === null
      ? new SignalingServer({ cluster: o.clusterToken, secret: o.secret, path: signalingPath, allowOrigin: originCheck(o.config.allowedOrigins), ...(o.allowHost ? { allowHost: o.allowHost } : {}), founder: o.id, log: signalingLog })
      : null;
  let signaling: Signaling;
  if (server) {
    signaling = server.local(o.id);
  } else {
    // `ws`'s client is loaded only by a member that joins another's endpoint (ws-server.ts says why).
    const { WebSocket } = await import('ws');
    signaling = new UntilJoinedSignaling(
      () => new WebSocketSignaling({ url: o.config.signalingUrl!, cluster: o.clusterToken, secret: o.secret, id: o.id, WebSocket, log: signalingLog }),
      signalingLog,
    );
  }
  const channel = new ControlChannel(signaling, signalingLog);
  let transport: WebRtcTransport;
  try {
    transport = await WebRtcTransport.open({
      id: o.id,
      signaling: channel.transportSignaling,
      wrtc: nodeWrtc,
      admits: o.admits,
      rtcConfig: { iceServers: [], ...(o.bindAddress ? { bindAddress: o.bindAddress } : {}) },
      log: (level, msg) => {
        if (level !== 'debug') o.log(level, msg);
      },
    });
  } catch (err) {
    await server?.close();
    if (err instanceof SignalingError) throw new BrowserPeersError(`signaling: ${err.message}`);
    throw err;
  }
  let auto: AutoMembership | null = null;
  let unserve = () => {};
  return {
    transport,
    attach(listener) {
      server?.attach(listener.gateway);
    },
    serve(kv, bootstrapMembers) {
      auto = new AutoMembership(kv, {
        clock: systemClock,
        tabGraceMs: o.config.tabGraceMs,
        ...(o.config.tabsMayOutvote === null ? {} : { tabsMayOutvote: o.config.tabsMayOutvote }),
        log: (level, msg) => o.log(level, msg),
      });
      unserve = serveMembershipControl(channel, kv, auto, bootstrapMembers);
    },
    async close() {
      unserve();
      auto?.stop();
      await transport.close();
      await server?.close();
    },
  };
}

/** Bounds of the wait between attempts to reach a signaling endpoint that was not there. */
const joinRetryMsMin = 500;
const joinRetryMsMax = 10_000;

/**
 * Joins another member's signaling endpoint, and when it cannot be reached (that member is
 * down) starts anyway and keeps trying in the background: a Raft member must not stay down
 * because the rendezvous for tabs is. A refusal (wrong token or cluster) is a misconfiguration
 * and fails the join. Once joined, WebSocketSignaling reconnects by itself.
 */
class UntilJoinedSignaling implements Signaling {
  private current: Signaling | null = null;
  private closed = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private retryMs = joinRetryMsMin;

  constructor(
    private readonly open: () => Signaling,
    private readonly log: (level: 'debug' | 'info' | 'warn', msg: string) => void,
  ) {}

  get id(): MemberId {
    return (this.current ??= this.open()).id;
  }

  async join(handlers: SignalingHandlers): Promise<void> {
    const first = (this.current ??= this.open());
    try {
      await first.join(handlers);
    } catch (err) {
      if (!(err instanceof SignalingError) || err.code !== 'unreachable') throw err;
      this.log('warn', `${err.message}; starting without it and retrying`);
      this.retryLater(handlers);
    }
  }

  send(to: MemberId, data: unknown): void {
    this.current?.send(to, data);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.current?.close();
  }

  private retryLater(handlers: SignalingHandlers): void {
    this.timer = setTimeout(() => {
      if (this.closed) return;
      const attempt = (this.current = this.open());
      attempt.join(handlers).then(
        () => this.log('info', 'joined the signaling endpoint'),
        (err: Error) => {
          if (this.closed || this.current !== attempt) return;
          if (err instanceof SignalingError && err.code === 'refused') return handlers.onClosed?.(err.message);
          this.retryMs = Math.min(this.retryMs * 2, joinRetryMsMax);
          this.retryLater(handlers);
        },
      );
    }, this.retryMs);
  }
}

/**
 * Pages served from the endpoint's own origin (the Host they asked for) may join, and
 * non-browser clients, which send no Origin; other origins only when listed. A DNS name
 * rebound to this address passes the same-origin test: listen on loopback or a private
 * address, as etcd's client port should be anyway.
 */
function originCheck(allowed: string[] | '*'): (origin: string | undefined, host: string | undefined) => boolean {
  return (origin, host) => {
    if (origin === undefined || allowed === '*') return true;
    let parsed: URL;
    try {
      parsed = new URL(origin);
    } catch {
      return false;
    }
    return parsed.host === host || allowed.includes(parsed.origin);
  };
}
