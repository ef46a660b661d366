import { runSeed } from './simulator.ts';
const mode = process.argv[2] as any;
let simMs = 0;
const t0 = performance.now();
for (const seed of process.argv[3].split(',').map(Number)) {
  const r = await runSeed({ seed, sabotage: mode === 'none' ? null : mode });
  simMs += r.simulatedMs;
  console.log(mode, seed, r.ok ? 'ok' : r.failure!.property, r.ok ? '' : r.failure!.message.split('\n')[0].slice(0, 200));
}
console.log('total sim', simMs, 'wall', performance.now() - t0);
