import { readdir, readFile } from 'node:fs/promises';

/** The pid of the Chromium this process launched on `profile`: our child with that --user-data-dir. */
export async function browserPid(profile: string): Promise<number> {
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const [cmdline, stat] = await Promise.all([
      readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => ''),
      readFile(`/proc/${name}/stat`, 'utf8').catch(() => ''),
    ]);
    // stat: "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === process.pid && cmdline.split('\0').includes(`--user-data-dir=${profile}`)) return Number(name);
  }
  throw new Error(`no Chromium child of process ${process.pid} runs on profile ${profile}`);
}
