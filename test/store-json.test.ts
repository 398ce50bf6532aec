import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createJsonStore } from '../src/store/json/index.ts';
import { runStoreContract } from './contract/store-contract.ts';

runStoreContract('json', async ({ clock, tierLimits }) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-contract-json-'));
  return {
    store: createJsonStore({ dataDir, tierLimits, clock: clock.now }),
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
});
