// A throwaway TLS certificate for tests, made with the openssl CLI.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A self-signed certificate for 127.0.0.1 (CN meshkv-test); it is its own CA. */
export function makeSelfSignedCert(): { cert: string; key: string; ca: string } {
  const which = spawnSync('openssl', ['version']);
  if (which.error || which.status !== 0) {
    throw new Error('the TLS test needs the openssl CLI to make a self-signed certificate, and `openssl version` failed: install openssl (apt-get install openssl)');
  }
  const dir = mkdtempSync(join(tmpdir(), 'meshkv-tls-'));
  try {
    const r = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=meshkv-test', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ]);
    if (r.status !== 0) throw new Error(`openssl could not make a test certificate: ${r.stderr.toString()}`);
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    return { cert, key: readFileSync(join(dir, 'key.pem'), 'utf8'), ca: cert };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
