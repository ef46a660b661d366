import { runSeed } from './simulator.ts';
const mode = process.argv[2] as any;
for (const seed of process.argv[3].split(',').map(Number)) {
  const r = await runSeed({ seed, sabotage: mode === 'none' ? null : mode });
  console.log(mode, seed, r.ok ? 'ok' : r.failure!.property, r.ok ? '' : r.failure!.message.split('\n')[0].slice(0, 200));
}
