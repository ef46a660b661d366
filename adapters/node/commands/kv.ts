// put, get, del, watch and txn, printed as etcdctl prints them (its "simple" format: a key's
// line then its value's line), or as the response in JSON with --write-out=json.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { prefixRange, RANGE_END_ALL, toBytes, toText } from '../../../src/client/bytes.ts';
import {
  CompareResult,
  CompareTarget,
  type Compare,
  type DeleteRangeRequest,
  type KeyValue,
  type PutRequest,
  type RangeRequest,
  type RequestOp,
  type ResponseOp,
} from '../../../src/mvcc/types.ts';
import { command, interrupted, parseCount, parseHexId, print, printJson, UsageError, type Run } from './common.ts';

type Values = Record<string, string | boolean | undefined>;

const putOptions = { lease: { type: 'string' }, 'prev-kv': { type: 'boolean' } } as const;
const getOptions = {
  prefix: { type: 'boolean' },
  'from-key': { type: 'boolean' },
  limit: { type: 'string' },
  rev: { type: 'string' },
  'keys-only': { type: 'boolean' },
  'print-value-only': { type: 'boolean' },
  consistency: { type: 'string' },
} as const;
const delOptions = { prefix: { type: 'boolean' }, 'from-key': { type: 'boolean' }, 'prev-kv': { type: 'boolean' } } as const;

/** `key [end]` with --prefix / --from-key as etcdctl reads them. */
function keyRange(args: string[], values: Values): { key: Uint8Array; rangeEnd?: Uint8Array } {
  const [key, end] = args;
  const chosen = [values.prefix === true, values['from-key'] === true, end !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new UsageError('give only one of [end], --prefix and --from-key');
  if (values.prefix === true) return prefixRange(toBytes(key));
  // etcdctl: --from-key with an empty key means every key.
  if (values['from-key'] === true) return { key: key === '' ? new Uint8Array([0]) : toBytes(key), rangeEnd: RANGE_END_ALL };
  return end === undefined ? { key: toBytes(key) } : { key: toBytes(key), rangeEnd: toBytes(end) };
}

function putRequest(args: string[], values: Values): PutRequest {
  if (args.length !== 2) throw new UsageError(`put needs <key> <value>, got ${args.length} argument(s)`);
  const request: PutRequest = { key: toBytes(args[0]), value: toBytes(args[1]), prevKv: values['prev-kv'] === true };
  if (values.lease !== undefined) request.lease = parseHexId('--lease', String(values.lease));
  return request;
}

function rangeRequest(args: string[], values: Values): RangeRequest {
  if (args.length < 1 || args.length > 2) throw new UsageError(`get needs <key> [end], got ${args.length} argument(s)`);
  const consistency = String(values.consistency ?? 'l');
  if (consistency !== 'l' && consistency !== 's') throw new UsageError(`--consistency: ${JSON.stringify(consistency)} is not l or s`);
  return {
    ...keyRange(args, values),
    limit: values.limit === undefined ? 0 : parseCount('--limit', String(values.limit)),
    revision: values.rev === undefined ? 0 : parseCount('--rev', String(values.rev)),
    keysOnly: values['keys-only'] === true,
    serializable: consistency === 's',
  };
}

function deleteRequest(args: string[], values: Values): DeleteRangeRequest {
  if (args.length < 1 || args.length > 2) throw new UsageError(`del needs <key> [end], got ${args.length} argument(s)`);
  return { ...keyRange(args, values), prevKv: values['prev-kv'] === true };
}

/** etcdctl's simple form of a key-value: the key's line, then the value's line. */
function printKv(kv: KeyValue, values: Values = {}): void {
  if (values['print-value-only'] === true) return print(toText(kv.value));
  print(toText(kv.key));
  print(values['keys-only'] === true ? '' : toText(kv.value));
}

function printResponseOp(op: ResponseOp, values: Values): void {
  if ('responsePut' in op) {
    print('OK');
    if (op.responsePut.prevKv) printKv(op.responsePut.prevKv);
  } else if ('responseRange' in op) {
    for (const kv of op.responseRange.kvs) printKv(kv, values);
  } else if ('responseDeleteRange' in op) {
    print(String(op.responseDeleteRange.deleted));
    for (const kv of op.responseDeleteRange.prevKvs) printKv(kv);
  } else {
    print(op.responseTxn.succeeded ? 'SUCCESS' : 'FAILURE');
  }
}

export const put = command('put <key> <value> [--lease=<hex id>] [--prev-kv]', putOptions, async (run) => {
  const res = await run.client.connection.put(putRequest(run.args, run.values));
  if (run.flags.writeOut === 'json') printJson(res);
  else printResponseOp({ responsePut: res }, run.values);
  return 0;
});

export const get = command(
  'get <key> [end] [--prefix] [--from-key] [--limit=<n>] [--rev=<n>] [--keys-only] [--print-value-only] [--consistency=l|s]',
  getOptions,
  async (run) => {
    const res = await run.client.connection.range(rangeRequest(run.args, run.values));
    if (run.flags.writeOut === 'json') printJson(res);
    else printResponseOp({ responseRange: res }, run.values);
    return 0;
  },
);

export const del = command('del <key> [end] [--prefix] [--from-key] [--prev-kv]', delOptions, async (run) => {
  const res = await run.client.connection.deleteRange(deleteRequest(run.args, run.values));
  if (run.flags.writeOut === 'json') printJson(res);
  else printResponseOp({ responseDeleteRange: res }, run.values);
  return 0;
});

export const watch = command(
  'watch <key> [end] [--prefix] [--rev=<n>] [--prev-kv]',
  { prefix: { type: 'boolean' }, rev: { type: 'string' }, 'prev-kv': { type: 'boolean' } },
  async (run) => {
    const [key, end] = run.positionals(1, 2);
    // The client re-creates broken watch streams for ever; check once that a member answers so
    // an unreachable endpoint is an error rather than a silent wait.
    await run.client.connection.range({ key: toBytes(key), countOnly: true, serializable: true });
    let builder = run.client.watch();
    builder = run.has('prefix') ? builder.prefix(key) : end !== undefined ? builder.range(key, end) : builder.key(key);
    if (run.flag('rev') !== undefined) builder = builder.startRevision(parseCount('--rev', run.flag('rev')!));
    if (run.has('prev-kv')) builder = builder.withPreviousKV();
    const watcher = await builder.create();
    const failed = new Promise<never>((_, reject) => watcher.on('error', reject));
    watcher.on('disconnected', (err) => process.stderr.write(`meshkv: watch stream lost (${err.message}); resuming\n`));
    watcher.on('data', (response) => {
      if (run.flags.writeOut === 'json') return printJson(response);
      for (const event of response.events) {
        print(event.type === 0 ? 'PUT' : 'DELETE');
        if (event.prevKv) printKv(event.prevKv);
        printKv(event.kv);
      }
    });
    await Promise.race([interrupted(), failed]);
    await watcher.cancel();
    return 0;
  },
);

// ---- txn ----

const compareTargets: Record<string, CompareTarget> = {
  ver: CompareTarget.VERSION,
  version: CompareTarget.VERSION,
  c: CompareTarget.CREATE,
  create: CompareTarget.CREATE,
  m: CompareTarget.MOD,
  mod: CompareTarget.MOD,
  val: CompareTarget.VALUE,
  value: CompareTarget.VALUE,
  lease: CompareTarget.LEASE,
};
const compareResults: Record<string, CompareResult> = {
  '=': CompareResult.EQUAL,
  '!=': CompareResult.NOT_EQUAL,
  '<': CompareResult.LESS,
  '>': CompareResult.GREATER,
};

const quoted = String.raw`"(?:[^"\\]|\\.)*"`;
const compareLine = new RegExp(String.raw`^(\w+)\((${quoted})\)\s*(=|!=|<|>)\s*(${quoted})$`);

/** `mod("k") > "3"`, `value("k") = "v"`, `lease("k") = "<hex id>"` (etcdctl txn's compare syntax). */
export function parseCompare(line: string): Compare {
  const m = compareLine.exec(line.trim());
  if (!m) throw new UsageError(`txn: ${JSON.stringify(line)} is not a compare like mod("key") > "3"`);
  const target = compareTargets[m[1]];
  if (target === undefined) throw new UsageError(`txn: unknown compare target ${JSON.stringify(m[1])} (ver, create, mod, value, lease)`);
  const key = toBytes(JSON.parse(m[2]) as string);
  const value = JSON.parse(m[4]) as string;
  const compare: Compare = { key, target, result: compareResults[m[3]] };
  if (target === CompareTarget.VALUE) compare.value = toBytes(value);
  else if (target === CompareTarget.LEASE) compare.lease = parseHexId('txn lease compare', value);
  else {
    const n = parseCount('txn compare', value);
    if (target === CompareTarget.VERSION) compare.version = n;
    else if (target === CompareTarget.CREATE) compare.createRevision = n;
    else compare.modRevision = n;
  }
  return compare;
}

/** Words of an operation line; double quotes group words (etcdctl reads them the same way). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(m[1] !== undefined ? (JSON.parse(`"${m[1]}"`) as string) : m[2]);
  return out;
}

/** `put k v [--lease=..]`, `get k [end] [--prefix ...]`, `del k [end] [--prefix]`. */
export function parseOp(line: string): RequestOp {
  const [verb, ...rest] = words(line);
  const parse = (options: ParseArgsConfig['options']) => {
    try {
      const { values, positionals } = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
      return { values: values as Values, args: positionals };
    } catch (err) {
      throw new UsageError(`txn: ${JSON.stringify(line)}: ${(err as Error).message}`);
    }
  };
  if (verb === 'put') {
    const { values, args } = parse(putOptions);
    return { requestPut: putRequest(args, values) };
  }
  if (verb === 'get') {
    const { values, args } = parse(getOptions);
    return { requestRange: rangeRequest(args, values) };
  }
  if (verb === 'del' || verb === 'delete') {
    const { values, args } = parse(delOptions);
    return { requestDeleteRange: deleteRequest(args, values) };
  }
  throw new UsageError(`txn: ${JSON.stringify(line)} is not a put, get or del operation`);
}

/** etcdctl txn's non-interactive input: compares, blank line, success ops, blank line, failure ops. */
export function parseTxn(input: string): { compare: Compare[]; success: RequestOp[]; failure: RequestOp[] } {
  const sections: string[][] = [[]];
  for (const raw of input.split('\n')) {
    const line = raw.trim();
    if (line === '') {
      if (sections.length === 3) break;
      sections.push([]);
    } else sections[sections.length - 1].push(line);
  }
  const [compares, success = [], failure = []] = sections;
  return { compare: compares.map(parseCompare), success: success.map(parseOp), failure: failure.map(parseOp) };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export const txn = command('txn < input  (compares, blank line, success ops, blank line, failure ops)', {}, async (run: Run) => {
  run.positionals(0);
  const request = parseTxn(await readStdin());
  const res = await run.client.connection.txn(request);
  if (run.flags.writeOut === 'json') {
    printJson(res);
    return 0;
  }
  print(res.succeeded ? 'SUCCESS' : 'FAILURE');
  for (const op of res.responses) {
    print('');
    printResponseOp(op, {});
  }
  return 0;
});
