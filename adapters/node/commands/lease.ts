// lease grant / revoke / timetolive / keep-alive / list, with etcdctl's messages.

import { toText } from '../../../src/client/bytes.ts';
import { command, hexId, interrupted, parseCount, parseHexId, print, printJson, UsageError, type Run } from './common.ts';

const usage = 'lease grant <ttl> | revoke <id> | timetolive <id> [--keys] | keep-alive [--once] <id> | list';

async function grant(run: Run, [ttl]: string[]): Promise<void> {
  const res = await run.client.connection.leaseGrant({ TTL: parseCount('<ttl>', ttl) });
  if (run.flags.writeOut === 'json') return printJson(res);
  print(`lease ${hexId(res.ID)} granted with TTL(${res.TTL}s)`);
}

async function revoke(run: Run, [id]: string[]): Promise<void> {
  const ID = parseHexId('<id>', id);
  const res = await run.client.connection.leaseRevoke({ ID }).catch((err: Error) => {
    throw new Error(`failed to revoke lease (${err.message})`); // etcdctl's wording
  });
  if (run.flags.writeOut === 'json') return printJson(res);
  print(`lease ${hexId(ID)} revoked`);
}

async function timeToLive(run: Run, [id]: string[]): Promise<void> {
  const res = await run.client.connection.leaseTimeToLive({ ID: parseHexId('<id>', id), keys: run.has('keys') });
  if (run.flags.writeOut === 'json') return printJson(res);
  if (res.TTL === -1) return print(`lease ${hexId(res.ID)} already expired`);
  const keys = run.has('keys') ? `, attached keys([${res.keys.map(toText).join(' ')}])` : '';
  print(`lease ${hexId(res.ID)} granted with TTL(${res.grantedTTL}s), remaining(${res.TTL}s)${keys}`);
}

async function list(run: Run): Promise<void> {
  const res = await run.client.connection.leaseLeases();
  if (run.flags.writeOut === 'json') return printJson(res);
  print(`found ${res.leases.length} leases`);
  for (const l of res.leases) print(hexId(l.ID));
}

/** Keeps the lease alive every TTL/3 until Ctrl-C or until the lease is gone (exit 1 then). */
async function keepAlive(run: Run, [id]: string[]): Promise<number> {
  const ID = parseHexId('<id>', id);
  let stop = false;
  let wake = () => {};
  void interrupted().then(() => {
    stop = true;
    wake();
  });
  while (!stop) {
    const res = await run.client.connection.leaseKeepAlive({ ID });
    if (res.TTL <= 0) {
      print(`lease ${hexId(ID)} expired or revoked.`);
      return 1;
    }
    if (run.flags.writeOut === 'json') printJson(res);
    else print(`lease ${hexId(ID)} keepalived with TTL(${res.TTL})`);
    if (run.has('once') || stop) break;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(500, (res.TTL * 1000) / 3));
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  return 0;
}

export const lease = command(usage, { keys: { type: 'boolean' }, once: { type: 'boolean' } }, async (run) => {
  const [sub, ...rest] = run.args;
  const needs = (n: number) => {
    if (rest.length !== n) throw new UsageError(`lease ${sub} needs ${n} argument(s), got ${rest.length}`);
    return rest;
  };
  switch (sub) {
    case 'grant':
      await grant(run, needs(1));
      return 0;
    case 'revoke':
      await revoke(run, needs(1));
      return 0;
    case 'timetolive':
      await timeToLive(run, needs(1));
      return 0;
    case 'list':
      needs(0);
      await list(run);
      return 0;
    case 'keep-alive':
      return keepAlive(run, needs(1));
    default:
      throw new UsageError(sub === undefined ? 'lease needs a subcommand' : `unknown lease subcommand ${JSON.stringify(sub)}`);
  }
});
