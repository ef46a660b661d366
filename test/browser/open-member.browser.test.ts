// openBrowserMember in one page (vitest browser mode): clear errors for bad options; a lone tab
// founds a cluster, serves the client API and reports status; a member that cannot be removed
// (the last voter) keeps its data when it closes with leave.

import { describe, expect, it } from 'vitest';
import { openBrowserMember, type BrowserMemberOptions, type BrowserMemberStatus } from '../../adapters/browser/index.ts';
import { knownMemberIds } from '../../adapters/browser/identity.ts';
import { waitFor } from '../helpers/wait.ts';

const base = { cluster: `open-member-${Math.random().toString(36).slice(2)}`, secret: 't' };

describe('openBrowserMember', () => {
  it.each<[string, unknown, RegExp]>([
    ['an empty cluster name', { ...base, cluster: '' }, /cluster must be a non-empty string/],
    ['a secret that is not a string', { ...base, secret: 7 }, /secret must be a string/],
    ['a signaling value that is neither broadcast nor a WebSocket URL', { ...base, signaling: 'http://x' }, /signaling must be 'broadcast' or a ws:\/\/ or wss:\/\/ URL/],
    ['an unknown timing', { ...base, timings: { tickMS: 10 } }, /unknown timing tickMS/],
    ['a timing that is not a positive integer', { ...base, timings: { tickMs: 0 } }, /timing tickMs is 0, not a positive integer/],
    ['a tab vote policy that is not a boolean', { ...base, tabsMayOutvote: 'yes' }, /tabsMayOutvote must be a boolean/],
  ])('refuses %s', async (_what, options, message) => {
    await expect(openBrowserMember(options as BrowserMemberOptions)).rejects.toThrow(message);
  });

  it('a lone tab founds a cluster, serves reads and writes, reports status, and as the last voter keeps its data when leaving', async () => {
    const seen: BrowserMemberStatus[] = [];
    const member = await openBrowserMember({ ...base, name: 'solo', timings: { probeWindowMs: 100, leaveTimeoutMs: 300 } });
    member.onStatus((s) => seen.push(s));
    await waitFor('leadership', () => member.status().role === 'leader', 5000);
    await member.client.put('a').value('1');
    expect(await member.client.get('a').string()).toBe('1');
    const s = member.status();
    // A tab alone: tabs vote (no Node member), and it has its quorum.
    expect(s).toMatchObject({ id: member.id, name: 'solo', leader: member.id, voters: [member.id], learners: [], joined: true, founded: true, connectedPeers: [], tabsMayOutvote: false, quorumLoss: null });
    await waitFor('a status event', () => seen.length > 0, 2000);
    await waitFor('the name published', () => member.kv.members.get(member.id)?.name === 'solo', 5000);

    await member.close({ leave: true });
    expect(await knownMemberIds(base.cluster)).toContain(member.id);
    const again = await openBrowserMember({ ...base, timings: { probeWindowMs: 100 } });
    try {
      expect(again.id).toBe(member.id);
      expect(again.status().founded).toBe(false);
      await waitFor('leadership again', () => again.status().role === 'leader', 5000);
      expect(await again.client.get('a').string()).toBe('1');
    } finally {
      await again.close();
    }
  });
});
