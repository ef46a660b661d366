// Serves a built web app (the demo's demo/dist) over node:http: GET and HEAD only, files under
// one root, index.html for directories. The etcd listener can put it in front of the JSON
// gateway so one port serves the API and the demo; the e2e test serves the demo with it.
// Nothing outside the root is ever served: the path is resolved under the root, then every
// symlink in it is followed (realpath) and the result must still lie under the root's own
// real path, so a link pointing out of the directory answers 404 like a missing file.

import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

/** Paths that belong to the etcd gateway and meshkv's own endpoints (gateway.ts), never to static files. */
export function isGatewayPath(path: string): boolean {
  return path.startsWith('/v3/') || path.startsWith('/meshkv/') || path === '/health' || path === '/metrics' || path === '/version';
}

/**
 * A handler for files under `root`. It answers (and returns true) for GET and HEAD requests
 * outside the gateway's paths; anything else returns false for the next handler.
 */
export function createStaticHandler(root: string): (req: IncomingMessage, res: ServerResponse) => boolean {
  const base = resolve(root);
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    let path: string;
    try {
      path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    } catch {
      return false;
    }
    if (isGatewayPath(path)) return false;
    const file = resolve(join(base, path));
    if (file !== base && !file.startsWith(base + sep)) {
      send(res, 403, 'Forbidden\n');
      return true;
    }
    serveFile(base, file, req.method === 'HEAD', res).catch(() => send(res, 500, 'Internal Server Error\n'));
    return true;
  };
}

async function serveFile(base: string, path: string, headOnly: boolean, res: ServerResponse): Promise<void> {
  const realBase = await realpath(base).catch(() => null);
  let file = await realpath(path).catch(() => null);
  let info = file === null ? null : await stat(file).catch(() => null);
  if (file !== null && info?.isDirectory()) {
    file = await realpath(join(file, 'index.html')).catch(() => null);
    info = file === null ? null : await stat(file).catch(() => null);
  }
  if (realBase === null || file === null || !info?.isFile() || !within(realBase, file)) return send(res, 404, 'Not Found\n');
  res.writeHead(200, {
    'content-type': contentTypes[extname(file)] ?? 'application/octet-stream',
    'content-length': info.size,
    'cache-control': 'no-cache',
  });
  if (headOnly) {
    res.end();
    return;
  }
  createReadStream(file).on('error', () => res.destroy()).pipe(res);
}

function within(root: string, file: string): boolean {
  return file === root || file.startsWith(root.endsWith(sep) ? root : root + sep);
}

function send(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
}
