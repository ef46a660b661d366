// What every client command shares: etcdctl's global flags, argument parsing with clear usage
// errors, one gRPC Client per run, and etcdctl's way of reporting failures.
//
// Exit codes: 0 success, 1 a failure reported by a member or the connection (printed as
// `Error: <message>`, etcd's own text for etcd errors), 2 bad flags or arguments (with a usage line).

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { connectGrpc } from '../../etcd-api/grpc-connection.ts';
import type { Client } from '../../../src/client/client.ts';
import type { Command } from './index.ts';

export type OutputFormat = 'simple' | 'json' | 'table';

export interface GlobalFlags {
  endpoints: string[];
  writeOut: OutputFormat;
  dialTimeoutMs: number;
  commandTimeoutMs: number;
  /** etcdctl's --user name[:password] (and --password): the client authenticates as this user. */
  user: { name: string; password: string } | null;
}

/** A bad flag or argument: reported with the command's usage line, exit code 2. */
export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

const globalOptions: Options = {
  endpoints: { type: 'string' },
  'write-out': { type: 'string', short: 'w' },
  'dial-timeout': { type: 'string' },
  'command-timeout': { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
};

export const ENDPOINTS_DEFAULT = '127.0.0.1:2379';
const DIAL_TIMEOUT_MS_DEFAULT = 2_000;
const COMMAND_TIMEOUT_MS_DEFAULT = 5_000;

/** A Go-style duration as etcdctl takes it ("500ms", "2s", "1m"; a bare number is seconds). */
export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!m) throw new UsageError(`--${flag}: ${JSON.stringify(text)} is not a duration (e.g. 500ms, 2s, 1m)`);
  const scale = m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1_000;
  return Number(m[1]) * scale;
}

/** A non-negative integer flag or argument. */
export function parseCount(what: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${what}: ${JSON.stringify(text)} is not a non-negative integer`);
  return Number(text);
}

/** A lease or member id in hex, as etcdctl prints and takes them. */
export function parseHexId(what: string, text: string): bigint {
  if (!/^[0-9a-fA-F]{1,16}$/.test(text)) throw new UsageError(`${what}: ${JSON.stringify(text)} is not a hex id`);
  return BigInt(`0x${text}`);
}

/** etcdctl prints ids as 16 hex digits. */
export function hexId(id: bigint | string): string {
  return BigInt(id).toString(16).padStart(16, '0');
}

function globalFlags(values: Values): GlobalFlags {
  const endpoints = (String(values.endpoints ?? process.env.MESHKV_ENDPOINTS ?? ENDPOINTS_DEFAULT))
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (endpoints.length === 0) throw new UsageError('--endpoints: no endpoint given');
  const writeOut = String(values['write-out'] ?? 'simple');
  if (writeOut !== 'simple' && writeOut !== 'json' && writeOut !== 'table') {
    throw new UsageError(`--write-out: ${JSON.stringify(writeOut)} is not one of simple, json, table`);
  }
  return {
    endpoints,
    writeOut,
    user: userFlag(values),
    dialTimeoutMs: values['dial-timeout'] === undefined ? DIAL_TIMEOUT_MS_DEFAULT : parseDuration('dial-timeout', String(values['dial-timeout'])),
    commandTimeoutMs:
      values['command-timeout'] === undefined ? COMMAND_TIMEOUT_MS_DEFAULT : parseDuration('command-timeout', String(values['command-timeout'])),
  };
}

/** etcdctl's --user "name:password" or --user name --password pw (the password is never printed). */
function userFlag(values: Values): GlobalFlags['user'] {
  const user = values.user === undefined ? process.env.MESHKV_USER : String(values.user);
  if (user === undefined) {
    if (values.password !== undefined) throw new UsageError('--password needs --user');
    return null;
  }
  const colon = user.indexOf(':');
  const name = colon < 0 ? user : user.slice(0, colon);
  if (name === '') throw new UsageError('--user: the user name is empty');
  if (values.password !== undefined) return { name, password: String(values.password) };
  if (colon < 0) throw new UsageError('--user: give name:password, or --password');
  return { name, password: user.slice(colon + 1) };
}

/** One run of a command: its parsed arguments and a client made on first use. */
export class Run {
  private made: Client | null = null;

  constructor(
    readonly flags: GlobalFlags,
    readonly values: Values,
    readonly args: string[],
  ) {}

  get client(): Client {
    try {
      this.made ??= connectGrpc(this.flags.endpoints, {
        connectTimeoutMs: this.flags.dialTimeoutMs,
        callTimeoutMs: this.flags.commandTimeoutMs,
        ...(this.flags.user === null ? {} : { user: this.flags.user.name, password: this.flags.user.password }),
      });
    } catch (err) {
      // A malformed endpoint is the user's argument, not a connection failure.
      if (err instanceof TypeError) throw new UsageError(`--endpoints: ${err.message}`);
      throw err;
    }
    return this.made;
  }

  flag(name: string): string | undefined {
    const v = this.values[name];
    return v === undefined ? undefined : String(v);
  }

  has(name: string): boolean {
    return this.values[name] === true;
  }

  /** The positional arguments, which must number between `min` and `max`. */
  positionals(min: number, max = min): string[] {
    if (this.args.length < min) throw new UsageError(`expected ${min === max ? min : `at least ${min}`} argument(s), got ${this.args.length}`);
    if (this.args.length > max) throw new UsageError(`expected at most ${max} argument(s), got ${this.args.length}`);
    return this.args;
  }

  close(): void {
    this.made?.close();
    this.made = null;
  }
}

export function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** A response as JSON: bytes in base64 (as etcd's gateway), 64-bit ids as decimal numbers. */
export function printJson(value: unknown): void {
  print(
    JSON.stringify(value, (_key, v: unknown) => {
      if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
      if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
      return v;
    }),
  );
}

/**
 * A command: `usage` is its usage line (after "meshkv "), `options` its own flags besides the
 * global ones; `body` returns the exit code.
 */
export function command(usage: string, options: Options, body: (run: Run) => Promise<number>): Command {
  return {
    async run(argv) {
      let run: Run | null = null;
      try {
        const parsed = parseArgs({ args: argv, options: { ...globalOptions, ...options }, allowPositionals: true, strict: true });
        run = new Run(globalFlags(parsed.values as Values), parsed.values as Values, parsed.positionals);
        return await body(run);
      } catch (err) {
        return report(err, usage);
      } finally {
        run?.close();
      }
    },
  };
}

/** etcdctl's message for a failure, and its exit code. */
function report(err: unknown, usage: string): number {
  const e = err as { code?: unknown; message?: string };
  if (err instanceof UsageError || (typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS'))) {
    process.stderr.write(`Error: ${e.message}\nUsage: meshkv ${usage}\n`);
    return 2;
  }
  process.stderr.write(`Error: ${e.message ?? String(err)}\n`);
  return 1;
}

/** Resolves at the first SIGINT or SIGTERM (Ctrl-C ends watch, lock, elect, keep-alive). */
export function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
}
