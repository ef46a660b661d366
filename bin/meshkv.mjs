#!/usr/bin/env node
// The meshkv CLI: runs the TypeScript sources through tsx (a runtime dependency).
import { register } from 'tsx/esm/api';

register();
await import('../adapters/node/cli.ts');
