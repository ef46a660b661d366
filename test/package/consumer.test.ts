// meshkv as a user installs it: `npm pack` of this repository, installed from the tarball into
// a project outside the repository (under os.tmpdir(), with only the npm registry and the local
// npm cache to install from), then used the ways the README and the examples show: plain Node
// imports and require() of every entry point, a member started with startMember and reached
// with connect, strict type-checks against the packed declarations, and the to-do example
// built by Vite with its default configuration and run in Chromium. Also prints the bundle
// sizes an app pays for the browser member and for the client alone.

import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, dirname, extname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { chromium, type Browser } from '@playwright/test';
import { build, preview } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumArgs, chromiumPath } from '../helpers/chromium.ts';
import { freePort } from '../helpers/processes.ts';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..', '..');
const tsc = join(repo, 'node_modules', '.bin', 'tsc');
const esbuild = join(repo, 'node_modules', '.bin', 'esbuild');
/** The browser member's bundle budget: everything an app importing only openBrowserMember ships. */
const memberBundleGzipBytesMax = 100 * 1024;

let work: string;
/** The installed consumer project: a copy of examples/todo-tabs with meshkv from the tarball. */
let app: string;

async function node(script: string, source: string, timeoutMs = 60_000): Promise<string> {
  await writeFile(join(app, script), source);
  const { stdout } = await run(process.execPath, [script], { cwd: app, timeout: timeoutMs });
  return stdout;
}

/** Serves the files of `dir` on 127.0.0.1 (a secure context, as WebCrypto and the member need). */
async function serveFiles(dir: string): Promise<{ url: string; close: () => Promise<void> }> {
  const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript' };
  const server = createServer((req, res) => {
    const name = new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/$/, '/index.html');
    readFile(join(dir, basename(name))).then(
      (body) => res.writeHead(200, { 'content-type': types[extname(name)] ?? 'application/octet-stream' }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'meshkv-consumer-'));
  // The global setup (test/helpers/build-dist.global-setup.ts) has just built dist/ from the
  // sources, as prepack would; prepack's rebuild is skipped because it would empty dist/ under
  // the other test files of this run that start bin/meshkv.mjs.
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: repo, timeout: 120_000 });
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  const shipped = packed.files.map((f) => f.path);
  expect(shipped.filter((p) => !/^(dist\/(src|adapters)\/|bin\/meshkv\.mjs$|package\.json$|README\.md$|LICENSE)/.test(p))).toEqual([]);
  // package.json's license field says Apache-2.0; the text ships beside it.
  expect(shipped).toContain('LICENSE');
  app = join(work, 'todo-tabs');
  await cp(join(repo, 'examples', 'todo-tabs'), app, { recursive: true, filter: (src) => !/[/\\](node_modules|dist)$/.test(src) });
  const manifest = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  manifest.dependencies.meshkv = `file:${join(work, packed.filename)}`;
  await writeFile(join(app, 'package.json'), JSON.stringify(manifest, null, 2));
  // Vite itself comes from this repository (the build below); the app needs only meshkv.
  await run('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, timeout: 150_000 });
}, 300_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the packed meshkv installed in a fresh project', () => {
  it('loads every entry point in plain Node, with import and with require()', async () => {
    const esm = await node(
      'imports.mjs',
      `import { Client, compare, EtcdCompactedError } from 'meshkv';
       import { startMember, connect } from 'meshkv/node';
       import { openBrowserMember } from 'meshkv/browser';
       console.log([Client, compare, EtcdCompactedError, startMember, connect, openBrowserMember].map((f) => typeof f).join());`,
    );
    expect(esm.trim()).toBe('function,function,function,function,function,function');
    const cjs = await node(
      'requires.cjs',
      `const { Client } = require('meshkv');
       const { startMember } = require('meshkv/node');
       const { openBrowserMember } = require('meshkv/browser');
       console.log([Client, startMember, openBrowserMember].map((f) => typeof f).join());`,
    );
    expect(cjs.trim()).toBe('function,function,function');
  });

  it('reaches no Node or DOM module from the isomorphic `meshkv` entry', async () => {
    const packageDir = join(app, 'node_modules', 'meshkv');
    const manifest = JSON.parse(await readFile(join(packageDir, 'package.json'), 'utf8')) as { exports: Record<string, { default: string }> };
    const seen = new Set<string>();
    const external = new Set<string>();
    const visit = async (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const code = await readFile(file, 'utf8');
      for (const [, spec] of code.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        if (spec === undefined) continue;
        if (spec.startsWith('.')) await visit(join(dirname(file), spec));
        else external.add(spec);
      }
    };
    await visit(join(packageDir, manifest.exports['.'].default));
    expect(seen.size).toBeGreaterThan(20);
    // Not even msgpackr: the client's types name the core, its code does not.
    expect([...external].sort()).toEqual([]);
  });

  it('refuses to start a member without lmdb, naming the package, and starts one once it is installed', async () => {
    // The browser app's install has no lmdb (an optional peer): a member cannot start, connect() works.
    const port = await freePort();
    const without = await node(
      'no-lmdb.mjs',
      `import { startMember, StartError } from 'meshkv/node';
       console.log(await startMember({ name: 'a', dataDir: 'no-lmdb.data', listenClientUrls: 'http://127.0.0.1:${port}', browserPeers: 'off' })
         .then(() => 'started', (err) => (err instanceof StartError ? '' : 'not a StartError: ') + err.message));`,
    );
    expect(without.trim()).toBe('a Node member needs the package lmdb, its storage backend (npm install lmdb)');
    expect(await readdir(app)).not.toContain('no-lmdb.data');
    await run('npm', ['install', 'lmdb', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, timeout: 150_000 });
  }, 200_000);

  it('starts a member with startMember and serves put/get/watch to connect() over gRPC', async () => {
    const port = await freePort();
    const out = await node(
      'member.mjs',
      `import { startMember, connect, ConfigError, StartError } from 'meshkv/node';
       const result = {};
       const member = await startMember({ name: 'embedded', dataDir: 'member.data', listenClientUrls: 'http://127.0.0.1:${port}', browserPeers: 'off' });
       result.clientUrls = member.status().clientUrls;
       const remote = connect(['127.0.0.1:${port}']);
       const watcher = await remote.watch().prefix('todo/').create();
       const seen = new Promise((resolve) => watcher.on('put', (kv) => resolve(new TextDecoder().decode(kv.value))));
       await remote.put('todo/1').value('over grpc');
       result.watched = await seen;
       result.local = await member.client.get('todo/1').string();
       await member.client.put('todo/2').value('in process');
       result.remote = await remote.get('todo/2').string();
       result.role = member.status().role;
       await watcher.cancel();
       remote.close();
       await member.stop();
       // Tabs as peers need node-datachannel, which this project did not install.
       result.withoutWebRtc = await startMember({ name: 'tabs', dataDir: 'tabs.data', listenClientUrls: 'http://127.0.0.1:${port}' })
         .then(() => 'started', (err) => (err instanceof StartError ? '' : 'not a StartError: ') + err.message);
       result.badOption = await startMember({ dataDir: 'x', listenClientUrls: '127.0.0.1:${port}' })
         .then(() => 'started', (err) => (err instanceof ConfigError ? '' : 'not a ConfigError: ') + err.message);
       console.log(JSON.stringify(result));`,
    );
    const result = JSON.parse(out) as Record<string, unknown>;
    expect(result).toMatchObject({ clientUrls: [`http://127.0.0.1:${port}`], watched: 'over grpc', local: 'over grpc', remote: 'in process', role: 'leader' });
    expect(result.withoutWebRtc).toBe('browser peers need the optional package node-datachannel (npm install node-datachannel); start with browserPeers off to run without tabs');
    expect(result.badOption).toBe(`listenClientUrls: 127.0.0.1:${port}: give a scheme, e.g. http://127.0.0.1:${port}`);
  });

  it('runs examples/node-embed as its README says', async () => {
    await cp(join(repo, 'examples', 'node-embed', 'main.mjs'), join(app, 'node-embed.mjs'));
    const port = await freePort();
    const { stdout } = await run(process.execPath, ['node-embed.mjs'], { cwd: app, timeout: 60_000, env: { ...process.env, CLIENT_URL: `http://127.0.0.1:${port}` } });
    expect(stdout.split('\n')).toEqual([`member embedded serves etcd's API on http://127.0.0.1:${port}`, 'watch saw: hello', 'get reads: hello', 'stopped', '']);
  });

  it.each(['bundler', 'node16'])('type-checks a strict consumer with moduleResolution %s, zero errors', async (resolution) => {
    await writeFile(
      join(app, 'consumer.ts'),
      `import { Client, compare, EtcdCompactedError, StateRole, type KeyValue, type Bytes } from 'meshkv';
       import { startMember, connect, type Member, type MemberStatus } from 'meshkv/node';
       import { openBrowserMember, type BrowserMember } from 'meshkv/browser';

       export async function main(): Promise<string | null> {
         const member: Member = await startMember({ dataDir: 'd', initialCluster: { a: 'http://127.0.0.1:2380' }, name: 'a' });
         const status: MemberStatus = member.status();
         const unsubscribe: () => void = member.onStatus((s) => console.log(s.leader, s.clientUrls));
         const remote: Client = connect('127.0.0.1:2379', { callTimeoutMs: 5000 });
         const kvs: KeyValue[] = (await remote.getAll().prefix('todo/').exec()).kvs;
         await remote.if('k', 'Value', '==', 'v').then(remote.put('k').value('w')).commit();
         const key: Bytes = kvs[0]?.key ?? new Uint8Array();
         const tab: BrowserMember = await openBrowserMember({ cluster: 'todo', secret: 'todo' });
         void [compare, EtcdCompactedError, status.role === StateRole.Leader, key, tab.client, unsubscribe];
         return member.client.get('k').string();
       }`,
    );
    const module = resolution === 'bundler' ? 'esnext' : 'node16';
    const config = {
      compilerOptions: {
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        target: 'es2022',
        lib: ['es2022', 'dom'],
        module,
        moduleResolution: resolution,
        types: ['node'],
        typeRoots: [join(repo, 'node_modules', '@types')],
      },
      // The to-do example's own code too, against the packed declarations.
      files: ['consumer.ts', 'src/main.ts'],
    };
    await writeFile(join(app, `tsconfig.${resolution}.json`), JSON.stringify(config, null, 2));
    const result = await run(tsc, ['-p', `tsconfig.${resolution}.json`], { cwd: app, timeout: 120_000 }).then(
      () => '',
      (err: { stdout: string }) => err.stdout,
    );
    expect(result).toBe('');
  });

  it('type-checks a browser-only consumer without @types/node', async () => {
    await writeFile(
      join(app, 'browser-only.ts'),
      `import { openBrowserMember } from 'meshkv/browser';
       import { compare, type Client } from 'meshkv';
       const member = await openBrowserMember({ cluster: 'todo', secret: 'todo' });
       const db: Client = member.client;
       await db.if('k', 'Version', '==', 0).then(db.put('k').value('v')).commit();
       void compare;
       void member.kv.status().role;
       // @ts-expect-error KvMember's Raft driver is not part of the package's types
       void member.kv.member;
       // @ts-expect-error nor is its store
       void member.kv.mvcc;`,
    );
    const config = {
      compilerOptions: { strict: true, noEmit: true, skipLibCheck: false, target: 'es2022', lib: ['es2022', 'dom'], module: 'esnext', moduleResolution: 'bundler', types: [] },
      files: ['browser-only.ts'],
    };
    await writeFile(join(app, 'tsconfig.browser-only.json'), JSON.stringify(config, null, 2));
    const result = await run(tsc, ['-p', 'tsconfig.browser-only.json'], { cwd: app, timeout: 120_000 }).then(
      () => '',
      (err: { stdout: string }) => err.stdout,
    );
    expect(result).toBe('');
  });

  describe('in the browser', () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, headless: true });
    });
    afterAll(async () => {
      await browser?.close();
    });

    /** Opens the to-do app at `url`: the tab must become the leader of its cluster and read its own writes. */
    async function checkTodoApp(url: string): Promise<void> {
      const errors: string[] = [];
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        page.on('pageerror', (err) => errors.push(err.message));
        await page.goto(url);
        await page.locator('#status', { hasText: 'leader' }).waitFor({ timeout: 30_000 });
        await page.locator('#add input').fill('buy milk');
        await page.locator('#add input').press('Enter');
        await page.locator('#todos li', { hasText: 'buy milk' }).waitFor({ timeout: 15_000 });
        await page.locator('#todos li input[type=checkbox]').check();
        await page.locator('#todos li.done', { hasText: 'buy milk' }).waitFor({ timeout: 15_000 });
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    }

    it('builds examples/todo-tabs with Vite\'s default config; the tab becomes a member and reads its own write', async () => {
      await build({ root: app, logLevel: 'warn', cacheDir: join(work, 'vite-cache') });
      const assets = join(app, 'dist', 'assets');
      let gzipBytes = 0;
      for (const f of (await readdir(assets)).filter((f) => f.endsWith('.js'))) gzipBytes += gzipSync(await readFile(join(assets, f)), { level: 9 }).byteLength;
      console.log(`examples/todo-tabs built by Vite: ${(gzipBytes / 1024).toFixed(1)} KiB of JavaScript, gzip -9`);
      const port = await freePort();
      const server = await preview({ root: app, logLevel: 'warn', preview: { host: '127.0.0.1', port, strictPort: true } });
      try {
        await checkTodoApp(`http://127.0.0.1:${port}/`);
      } finally {
        await server.close();
      }
    }, 120_000);

    it('bundles examples/todo-tabs with esbuild and no options but --bundle --format=esm; the page runs in Chromium', async () => {
      const out = join(app, 'esbuild-dist');
      await mkdir(out, { recursive: true });
      // ESM because the app uses top-level await; everything else is esbuild's default (platform browser, no define, no shims).
      await run(esbuild, ['src/main.ts', '--bundle', '--format=esm', '--minify', `--outfile=${join(out, 'main.js')}`, '--log-level=warning'], { cwd: app, timeout: 60_000 });
      const html = (await readFile(join(app, 'index.html'), 'utf8')).replace('/src/main.ts', '/main.js');
      expect(html).toContain('src="/main.js"');
      await writeFile(join(out, 'index.html'), html);
      const bundle = await readFile(join(out, 'main.js'));
      console.log(`examples/todo-tabs bundled by esbuild: ${(bundle.byteLength / 1024).toFixed(1)} KiB, ${(gzipSync(bundle, { level: 9 }).byteLength / 1024).toFixed(1)} KiB gzip -9`);
      const server = await serveFiles(out);
      try {
        await checkTodoApp(server.url);
      } finally {
        await server.close();
      }
    }, 120_000);

    it('fits the bundle budget: openBrowserMember alone, and Client alone', async () => {
      const sizes: Record<string, number> = {};
      const apps = {
        member: `import { openBrowserMember } from 'meshkv/browser';\nopenBrowserMember({ cluster: 'c', secret: 't' }).then((m) => console.log(m.id));\n`,
        client: `import { Client } from 'meshkv';\nconsole.log(Client.name);\n`,
      };
      for (const [name, main] of Object.entries(apps)) {
        const dir = join(app, `size-${name}`);
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, 'index.html'), '<!doctype html><script type="module" src="./main.js"></script>\n');
        await writeFile(join(dir, 'main.js'), main);
        await build({ root: dir, logLevel: 'warn', cacheDir: join(work, `vite-cache-${name}`) });
        const assets = join(dir, 'dist', 'assets');
        const js = (await readdir(assets)).filter((f) => f.endsWith('.js'));
        sizes[name] = 0;
        for (const f of js) sizes[name] += gzipSync(await readFile(join(assets, f)), { level: 9 }).byteLength;
      }
      console.log(`bundle sizes (gzip -9 of the JS Vite emits): openBrowserMember only ${(sizes.member / 1024).toFixed(1)} KiB (budget ${memberBundleGzipBytesMax / 1024} KiB), Client only ${(sizes.client / 1024).toFixed(1)} KiB`);
      expect(sizes.member).toBeLessThanOrEqual(memberBundleGzipBytesMax);
      expect(sizes.client).toBeLessThan(sizes.member / 2);
      expect(relative(repo, app).startsWith('..')).toBe(true);
    }, 120_000);
  });
});
