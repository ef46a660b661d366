// Who may use the client port's HTTP side, as etcd 3.4 decides it (embed/serve.go): a plain-HTTP
// request must name a whitelisted host (--host-whitelist, against DNS rebinding; HTTPS requests
// are exempt, as in etcd), and the JSON gateway answers cross-origin pages with CORS headers
// only for the origins --cors allows ('*' sends `Access-Control-Allow-Origin: *`, as etcd's
// default does). meshkv's own endpoints (/meshkv/...) never carry CORS headers: the admission
// secret and the fault endpoint are not for other origins.

import type { IncomingMessage, ServerResponse } from 'node:http';

export interface AccessOptions {
  /** Origins that get CORS headers; '*' for any. */
  cors: string[] | '*';
  /** Host names (without port) a plain-HTTP request may name; '*' for any. */
  hostWhitelist: string[] | '*';
}

export const openAccess: AccessOptions = { cors: '*', hostWhitelist: '*' };

/** etcd's answer to a Host it does not know (its CVE-2018-5702 text, as a client sees it). */
export function unknownHostMessage(host: string): string {
  return [
    '',
    'etcd received your request, but the Host header was unrecognized.',
    '',
    'To fix this, choose one of the following options:',
    '- Enable TLS, then any HTTPS request will be allowed.',
    '- Add the hostname you want to use to the whitelist in settings.',
    `  - e.g. etcd --host-whitelist ${JSON.stringify(host)}`,
    '',
    'This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).',
    '',
  ].join('\n');
}

/** The host name of a Host header, without port or IPv6 brackets. */
export function hostnameOf(hostHeader: string | undefined): string {
  const h = hostHeader ?? '';
  const v6 = /^\[([^\]]*)\](?::\d*)?$/.exec(h);
  if (v6) return v6[1];
  const colon = h.lastIndexOf(':');
  return colon >= 0 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
}

export function hostAllowed(o: AccessOptions, hostHeader: string | undefined, secure: boolean): boolean {
  return secure || o.hostWhitelist === '*' || o.hostWhitelist.includes(hostnameOf(hostHeader));
}

/**
 * Applies the checks to one HTTP request before any handler sees it: answers 421 (and returns
 * false) for a host that is not whitelisted; sets CORS headers on gateway paths for allowed
 * origins; answers OPTIONS preflights itself (200, as etcd) and returns false.
 */
export function checkAccess(o: AccessOptions, req: IncomingMessage, res: ServerResponse, secure: boolean): boolean {
  if (!hostAllowed(o, req.headers.host, secure)) {
    const host = hostnameOf(req.headers.host);
    res.writeHead(421, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }).end(unknownHostMessage(host) + '\n');
    return false;
  }
  const path = (req.url ?? '/').split('?')[0];
  const own = path.startsWith('/meshkv/');
  if (!own) {
    const origin = req.headers.origin;
    const allowed = o.cors === '*' ? '*' : origin !== undefined && o.cors.includes(origin) ? origin : null;
    if (allowed !== null) {
      res.setHeader('Access-Control-Allow-Methods', 'POST, GET, OPTIONS, PUT, DELETE');
      res.setHeader('Access-Control-Allow-Origin', allowed);
      res.setHeader('Access-Control-Allow-Headers', 'accept, content-type, authorization');
      if (allowed !== '*') res.setHeader('Vary', 'Origin');
    }
  }
  if (req.method === 'OPTIONS' && !own) {
    res.writeHead(200).end();
    return false;
  }
  return true;
}
