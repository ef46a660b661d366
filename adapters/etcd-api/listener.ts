// One client port for gRPC and the JSON gateway, as etcd serves both on 2379: each accepted
// connection is sniffed, and an HTTP/2 connection preface goes to the gRPC server (grpc-h2.ts on
// node:http2) while anything else goes to the node:http gateway. With TLS, a tls.Server ends the session here and ALPN decides
// instead: gRPC clients offer only "h2", HTTP clients offer "http/1.1" (chosen whenever offered).
// gRPC connections reach it through routeHttp2 (authority-shim.ts), which lets etcdctl's
// `:authority: http://host:port` past nghttp2.

import * as net from 'node:net';
import * as tls from 'node:tls';
import * as http from 'node:http';
import { EtcdApi, type EtcdApiOptions } from './api.ts';
import { createGatewayHandler } from './gateway.ts';
import { createGrpcServer } from './grpc-server.ts';
import type { GrpcH2Server } from './grpc-h2.ts';
import { createFaultHandler, type FaultControls, type FaultGuard } from './fault-admin.ts';
import { checkAccess, openAccess, type AccessOptions } from './access.ts';
import { createAdmissionHandler, type AdmissionInfo } from './admission-endpoint.ts';
import { createStaticHandler } from './static-files.ts';
import { routeHttp2 } from './authority-shim.ts';
import { nodeHandshakeTimerOff, pauseAwareTimeout, TlsHandshakeDeadlines } from '../clock/pause-aware-timeout.ts';

/** Every HTTP/2 connection opens with this; HTTP/1.x requests never do. */
const http2Preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** Default of EtcdListenerOptions.handshakeTimeoutMs. */
const handshakeTimeoutMsDefault = 10_000;

/** meshkv: its own HTTP/2 server (h2/connection.ts); node: node:http2 behind the :authority shim. */
export type Http2ServerKind = 'meshkv' | 'node';
/**
 * meshkv's own server is the default: it passed the whole etcd-api suite and the landing's CI
 * (docs/benchmarks.md, "meshkv's own HTTP/2 server"); `--http2-server node` keeps node:http2.
 */
export const DEFAULT_HTTP2_SERVER: Http2ServerKind = 'meshkv';

export class ListenError extends Error {}

export interface EtcdListenerOptions extends EtcdApiOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** A directory (the built demo) served to GET and HEAD requests outside the gateway's paths. */
  staticRoot?: string;
  /** Serve the fault-injection admin endpoint (only with --experimental-fault-injection), behind its guard. */
  faults?: { controls: FaultControls; guard: FaultGuard };
  /** --cors and --host-whitelist (default: any origin, any host, as etcd's defaults). */
  access?: AccessOptions;
  /** etcd's --max-request-bytes: gRPC receives this plus some overhead (default etcd's 1.5 MiB). */
  requestBytesMax?: number;
  /** Serve /meshkv/admission to same-origin pages (when tabs may join through this member). */
  admission?: AdmissionInfo;
  /** PEM certificate and key; with `ca`, clients must present a certificate it signed. */
  tls?: { cert: Buffer | string; key: Buffer | string; ca?: Buffer | string };
  /** The HTTP/2 server gRPC runs on (default DEFAULT_HTTP2_SERVER). */
  http2Server?: Http2ServerKind;
  /**
   * A connection that has not finished its TLS handshake (with TLS) or sent enough to tell
   * HTTP/2 from HTTP/1.x (without) within this is closed; a pause of this process does not
   * count (default 10 s).
   */
  handshakeTimeoutMs?: number;
}

export class EtcdListener {
  private readonly sockets = new Set<net.Socket>();
  private closing: Promise<void> | null = null;
  /** The TLS handshake deadline of each connection still in its handshake. */
  private readonly tlsDeadlines: TlsHandshakeDeadlines;

  private constructor(
    readonly api: EtcdApi,
    readonly host: string,
    readonly port: number,
    private readonly tcp: net.Server,
    private readonly grpcServer: GrpcH2Server,
    /** The HTTP/1.1 side (gateway, WebSocket upgrades): other handlers may attach to it. */
    readonly gateway: http.Server,
    /** Ends TLS on accepted connections (it never listens itself); null for plain TCP. */
    private readonly tlsServer: tls.Server | null,
    private readonly handshakeTimeoutMs: number,
  ) {
    this.tlsDeadlines = new TlsHandshakeDeadlines(handshakeTimeoutMs, (socket) => socket.destroy());
    tlsServer?.on('secureConnection', (socket: tls.TLSSocket) => this.routeSecure(socket));
    // Failed handshakes (no or a bad client certificate, plain TCP) just close the connection.
    tlsServer?.on('tlsClientError', (_err, socket) => socket.destroy());
  }

  /** Serves etcd's API for `kv` on host:port; fails with a ListenError if the address is taken. */
  static async listen(opts: EtcdListenerOptions): Promise<EtcdListener> {
    const api = new EtcdApi(opts);
    const grpcServer = createGrpcServer(api, opts.requestBytesMax, (opts.http2Server ?? DEFAULT_HTTP2_SERVER) === 'meshkv');
    const serveGateway = createGatewayHandler(api);
    const serveStatic = opts.staticRoot === undefined ? null : createStaticHandler(opts.staticRoot);
    const serveFaults = opts.faults ? createFaultHandler(opts.faults.controls, opts.faults.guard) : null;
    const serveAdmission = opts.admission ? createAdmissionHandler(opts.admission) : null;
    const access = opts.access ?? openAccess;
    const secure = opts.tls !== undefined;
    const gateway = http.createServer((req, res) => {
      if (!checkAccess(access, req, res, secure)) return;
      if (serveFaults?.(req, res) || serveAdmission?.(req, res) || serveStatic?.(req, res)) return;
      serveGateway(req, res);
    });
    const tcp = net.createServer();
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', (err: NodeJS.ErrnoException) => {
        api.close();
        if (err.code === 'EADDRINUSE') reject(new ListenError(`address ${opts.host}:${opts.port} is in use`));
        else if (err.code === 'EADDRNOTAVAIL') reject(new ListenError(`address ${opts.host}:${opts.port} is not available on this machine`));
        else if (err.code === 'EACCES') reject(new ListenError(`permission denied listening on ${opts.host}:${opts.port}`));
        else reject(err);
      });
      tcp.listen(opts.port, opts.host, () => resolve());
    });
    const port = (tcp.address() as net.AddressInfo).port;
    const tlsServer = opts.tls
      ? tls.createServer({
          ...opts.tls,
          requestCert: opts.tls.ca !== undefined,
          rejectUnauthorized: opts.tls.ca !== undefined,
          handshakeTimeout: nodeHandshakeTimerOff,
          ALPNCallback: ({ protocols }) => (protocols.includes('http/1.1') ? 'http/1.1' : protocols.includes('h2') ? 'h2' : undefined),
        })
      : null;
    const listener = new EtcdListener(api, opts.host, port, tcp, grpcServer, gateway, tlsServer, opts.handshakeTimeoutMs ?? handshakeTimeoutMsDefault);
    tcp.on('connection', (socket) => listener.accept(socket));
    return listener;
  }

  /** Stops accepting, ends open streams and connections. The member is left running. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await new Promise<void>((resolve) => {
        this.tcp.close(() => resolve());
        this.grpcServer.close();
        this.gateway.closeAllConnections();
        for (const s of this.sockets) s.destroy();
      });
      this.api.close();
    })();
    return this.closing;
  }

  private accept(raw: net.Socket): void {
    // Without TCP_NODELAY a small response written while an earlier write is unacknowledged
    // waits for the client's delayed ACK (~40 ms): a writer sharing a connection with busy
    // watch streams fell to ~21 puts/s. etcd's Go listener sets it on every connection.
    raw.setNoDelay(true);
    this.sockets.add(raw);
    raw.on('close', () => this.sockets.delete(raw));
    raw.on('error', () => raw.destroy());
    if (!this.tlsServer) return this.route(raw);
    this.tlsDeadlines.arm(raw);
    this.tlsServer.emit('connection', raw);
  }

  private routeSecure(socket: tls.TLSSocket): void {
    this.tlsDeadlines.settle(socket);
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    if (socket.alpnProtocol === 'h2') {
      if (this.grpcServer.ownHttp2) this.grpcServer.inject(socket);
      else routeHttp2(socket, Buffer.alloc(0), (c) => this.grpcServer.inject(c));
    } else this.gateway.emit('connection', socket);
  }

  /** Hands a plain connection to the gRPC server or the gateway by its first bytes. */
  private route(socket: net.Socket): void {
    let seen = Buffer.alloc(0);
    const cancel = pauseAwareTimeout(this.handshakeTimeoutMs, () => socket.destroy());
    socket.once('close', cancel);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, http2Preface.length);
      const isHttp2 = seen.subarray(0, n).equals(http2Preface.subarray(0, n));
      if (isHttp2 && seen.length < http2Preface.length) return; // not sure yet
      cancel();
      socket.off('data', onData);
      socket.pause();
      if (isHttp2 && this.grpcServer.ownHttp2) {
        socket.unshift(seen);
        this.grpcServer.inject(socket);
        socket.resume();
      } else if (isHttp2) {
        routeHttp2(socket, seen, (c) => this.grpcServer.inject(c));
      } else {
        socket.unshift(seen);
        this.gateway.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  }
}
