// What a page served by a Node member needs to join that member's cluster: the cluster name,
// the admission secret and the signaling URL, fetched from the member's /meshkv/admission.
// The member answers same-origin requests only (adapters/etcd-api/admission-endpoint.ts), so
// this works for pages the member serves itself; pages of other origins must be given the
// secret some other way (docs/security.md).

export interface Admission {
  /** The cluster name (the member's --initial-cluster-token). */
  cluster: string;
  /** The admission secret to pass to openBrowserMember. */
  secret: string;
  /** ws:// or wss:// URL of the member's signaling endpoint. */
  signaling: string;
}

export class AdmissionError extends Error {}

/** Fetches the admission of the member that served this page (default: this page's origin). */
export async function fetchAdmission(origin: string = location.origin): Promise<Admission> {
  const url = new URL('/meshkv/admission', origin);
  let res: Response;
  try {
    res = await fetch(url, { cache: 'no-store', credentials: 'same-origin' });
  } catch (err) {
    throw new AdmissionError(`fetchAdmission: cannot reach ${url.href}: ${(err as Error).message}`);
  }
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const reason = typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string' ? (body as { error: string }).error : `HTTP ${res.status}`;
    throw new AdmissionError(`fetchAdmission: ${url.href} refused: ${reason}`);
  }
  const b = body as Record<string, unknown> | null;
  if (typeof b?.cluster !== 'string' || typeof b.secret !== 'string' || typeof b.signalingPath !== 'string') {
    throw new AdmissionError(`fetchAdmission: ${url.href} did not answer with a cluster, secret and signalingPath`);
  }
  const ws = new URL(b.signalingPath, origin);
  ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
  return { cluster: b.cluster, secret: b.secret, signaling: ws.href };
}
