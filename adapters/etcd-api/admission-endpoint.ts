// GET /meshkv/admission: how a page this member serves learns what it needs to join the
// member's signaling (cluster name, admission secret, endpoint path). Only a same-origin
// request gets it. Browsers send Sec-Fetch-Site with every fetch, and a page cannot forge it:
// a request from another origin says cross-site or same-site and is refused; a request
// without it (not a browser) is refused too, since non-browser members are given the secret
// instead (flag, environment or file). The answer has no CORS headers, so even a refused
// origin's page could not read it, and is never cached.

import type { IncomingMessage, ServerResponse } from 'node:http';

export const admissionPath = '/meshkv/admission';

export interface AdmissionInfo {
  /** The cluster name signaling serves (--initial-cluster-token). */
  cluster: string;
  /** The secret signaling admits (never logged). */
  secret: string;
  /** The signaling endpoint's path on this port. */
  signalingPath: string;
}

/** Answers (and returns true) requests to admissionPath; anything else returns false. */
export function createAdmissionHandler(info: AdmissionInfo): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if ((req.url ?? '/').split('?')[0] !== admissionPath) return false;
    const headers = { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
    if (req.method !== 'GET') {
      res.writeHead(405, headers).end(JSON.stringify({ error: `use GET ${admissionPath}` }));
      return true;
    }
    const site = req.headers['sec-fetch-site'];
    const origin = req.headers.origin;
    const sameOrigin = site === 'same-origin' && (origin === undefined || originHost(origin) === req.headers.host);
    if (!sameOrigin) {
      res.writeHead(403, headers).end(JSON.stringify({ error: 'the admission secret is given only to pages this member serves (a same-origin request); other pages and members must be given it' }));
      return true;
    }
    res.writeHead(200, headers).end(JSON.stringify({ cluster: info.cluster, secret: info.secret, signalingPath: info.signalingPath }));
    return true;
  };
}

function originHost(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
}
