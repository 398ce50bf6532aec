import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { PgFerryError } from '../../errors.ts';
import { writeSample } from '../../transfer/sample.ts';
import { action, EXIT, makeContext } from '../context.ts';
import { parseCount } from './import.ts';

interface SampleFlags {
  users: number;
  conversations: number;
  messages: number;
  seed: number;
}

const EXAMPLES = `
Examples:
  pgferry sample-data ./sample
  DATABASE_URL=embedded pgferry import --from ./sample
  DATABASE_URL=embedded pgferry verify --from ./sample

  pgferry sample-data ./big --users 2000 --conversations 25 --messages 20   # ≈ 1M messages

The corpus has the seed app's layout and quirks: conversations/<uid>/<id>.json,
usage/<uid>/usage.json, bare NaN/Infinity, naive timestamps, no updated_at,
omitted metadata, some BOMs and CRLF line ends. The same --seed gives the same files.`;

export function register(program: Command): void {
  program
    .command('sample-data')
    .description('Write a realistic chat-app corpus in the seed layout, to try import and verify')
    .argument('<dir>', 'where to write (must be empty or not exist)')
    .option('--users <n>', 'users', parseCount('--users', 1, 1_000_000), 5)
    .option('--conversations <n>', 'conversations per user', parseCount('--conversations', 0, 100_000), 4)
    .option('--messages <n>', 'messages per conversation, on average', parseCount('--messages', 0, 10_000), 10)
    .option('--seed <n>', 'random seed', parseCount('--seed', 0, 2 ** 31 - 1), 1)
    .addHelpText('after', EXAMPLES)
    .action(action((dir: string, flags: SampleFlags) => sampleCommand(dir, flags)));
}

async function sampleCommand(dir: string, flags: SampleFlags): Promise<number> {
  const ctx = makeContext();
  const existing = await fs.readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw new PgFerryError('CONFIG_ERROR', `cannot use ${dir}: ${error.code}`);
  });
  if (existing.length > 0) throw new PgFerryError('CONFIG_ERROR', `${dir} is not empty: pass a new or empty directory`);
  const started = performance.now();
  const result = await writeSample(dir, {
    users: flags.users,
    conversations: flags.conversations,
    messages: flags.messages,
    seed: flags.seed,
  });
  ctx.out(
    `wrote ${result.users} users, ${result.conversations.toLocaleString('en-US')} conversations, ${result.messages.toLocaleString('en-US')} messages ` +
      `(${result.files.toLocaleString('en-US')} files, ${(result.bytes / 1_048_576).toFixed(1)} MB) to ${dir} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  ctx.out(`next: DATABASE_URL=embedded pgferry import --from ${dir} && DATABASE_URL=embedded pgferry verify --from ${dir}`);
  return EXIT.OK;
}
