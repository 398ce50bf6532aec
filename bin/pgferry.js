#!/usr/bin/env node
// Runs the TypeScript sources directly in a development checkout (Node >= 22.18
// strips types natively), and the compiled dist/ when installed as a package.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(`pgferry needs Node.js >= 22 (this is ${process.version}); in this repository use "npx pgferry" or "npm run …", which use the pinned Node 24.\n`);
  process.exit(2);
}
const source = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const useSource = process.features?.typescript && existsSync(source) && !source.includes('/node_modules/');
const { main } = await import(useSource ? '../src/cli/main.ts' : '../dist/cli/main.js');
await main(process.argv);
