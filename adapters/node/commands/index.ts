// `meshkv <command> [args] [flags]`: client commands in the spirit of etcdctl and a load
// generator, against any etcd v3 endpoint (meshkv or etcd). `meshkv` with only flags starts a
// member instead (../cli.ts); bin/meshkv.mjs picks one or the other by the first argument.

/** A command's module: runs with the arguments after its name; resolves to the exit code. */
export interface Command {
  run(args: string[]): Promise<number>;
}

/** Each command is loaded only when it is run. */
const commands: Record<string, () => Promise<Command>> = {
  bench: () => import('./bench.ts').then((m) => m.bench),
  put: () => import('./kv.ts').then((m) => m.put),
  get: () => import('./kv.ts').then((m) => m.get),
  del: () => import('./kv.ts').then((m) => m.del),
  watch: () => import('./kv.ts').then((m) => m.watch),
  txn: () => import('./kv.ts').then((m) => m.txn),
  lease: () => import('./lease.ts').then((m) => m.lease),
  lock: () => import('./lock.ts').then((m) => m.lock),
  elect: () => import('./lock.ts').then((m) => m.elect),
  member: () => import('./cluster.ts').then((m) => m.member),
  endpoint: () => import('./cluster.ts').then((m) => m.endpoint),
  snapshot: () => import('./cluster.ts').then((m) => m.snapshot),
  user: () => import('./auth.ts').then((m) => m.user),
  role: () => import('./auth.ts').then((m) => m.role),
  auth: () => import('./auth.ts').then((m) => m.auth),
};

function usage(): string {
  const names = Object.keys(commands).sort();
  return [
    'Usage: meshkv <command> [arguments] [--endpoints=host:port,...] [--user=name:password]',
    '       meshkv [flags]            start a member (meshkv --help lists the flags)',
    '',
    'Commands:',
    ...names.map((n) => `  ${n}`),
    '',
  ].join('\n');
}

export async function runCommand(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`meshkv: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  const command = await load();
  return command.run(args);
}
