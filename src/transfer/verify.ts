import type { Database } from '../db/database.ts';
import { type Logger, silentLogger } from '../log.ts';
import {
  ConversationHasher,
  type ConversationHead,
  canonicalMessage,
  canonicalUsage,
  hashCanonical,
  hashConversation,
  type PreparedConversation,
  type PreparedUsage,
  prepareConversation,
} from './canonical.ts';
import { TaskLimiter } from './concurrency.ts';
import type { ConversationLoad } from './load.ts';
import type { ProgressState } from './progress.ts';
import { readChatRecords, sourceKeys } from './records.ts';
import type { ProblemReport } from './report.ts';
import { CHAT_KINDS, type ChatKind, LOG_KIND, readSourceFiles, type SourceFile, scanChatSource } from './sources/chat.ts';
import { parseDocument, type UsageRow, validateConversation } from './validate.ts';

/**
 * `pgferry verify`: proves the database holds exactly what the files hold.
 * Every source record is read and hashed again, and compared with a hash
 * computed from the database rows themselves (never from import_log, which
 * would only prove that import ran). Records are compared in batches of keys,
 * up to `jobs` batches at once; afterwards the database's keys are streamed
 * to find records the files do not have.
 *
 * missing   — in the files, not in the database
 * different — in both, content differs (the first difference is named)
 * extra     — in the database, no source file for it
 * unreadable — a source file that cannot be read, parsed or validated: its
 *              record cannot be proven, so it counts against the result too
 */

export interface VerifyOptions {
  root: string;
  db: Database;
  kinds?: readonly ChatKind[];
  defaultUser?: string;
  batchSize?: number;
  /** Source bytes per batch, whichever limit comes first (default 4 MB). */
  batchBytes?: number;
  jobs?: number;
  readConcurrency?: number;
  /** Reader threads (default: spare cores, at most 4; 0 = this thread). */
  readers?: number;
  logger?: Logger;
  report?: ProblemReport;
  onStart?: (totals: { records: number; bytes: number }) => void;
  onProgress?: (state: ProgressState) => void;
}

export interface VerifyKindSummary {
  source: number;
  matched: number;
  missing: number;
  different: number;
  extra: number;
  unreadable: number;
}

export interface VerifySummary {
  kinds: Partial<Record<ChatKind, VerifyKindSummary>>;
  /** Messages compared (source side). */
  messages: number;
  bytes: number;
  elapsedMs: number;
  ok: boolean;
}

/** JSONB columns come back as the server prints them (jsonb::text): the canonical form's JSON texts, unparsed. */
interface DbMessage {
  conversation_id: string;
  role: string;
  content: string | null;
  stage1: string | null;
  stage2: string | null;
  stage3: string | null;
  metadata: string | null;
}

interface DbConversation {
  id: string;
  user_id: string;
  title: string;
  created_us: string;
}

export async function runVerify(options: VerifyOptions): Promise<VerifySummary> {
  const started = performance.now();
  const kinds = options.kinds ?? CHAT_KINDS;
  const batchSize = options.batchSize ?? 500;
  const batchBytes = options.batchBytes ?? 4 * 1024 * 1024;
  const logger = options.logger ?? silentLogger;
  const report = options.report;
  const db = options.db;
  const scan = await scanChatSource(options.root, { kinds });
  const summary: VerifySummary = {
    kinds: Object.fromEntries(kinds.map((k) => [k, { source: 0, matched: 0, missing: 0, different: 0, extra: 0, unreadable: 0 }])),
    messages: 0,
    bytes: 0,
    elapsedMs: 0,
    ok: false,
  };
  const counts = (kind: ChatKind) => summary.kinds[kind]!;
  const problem = (kind: ChatKind, problemName: string, record: string | null, file: string | null, reason: string) =>
    report?.add({ kind: LOG_KIND[kind], file, record, reason, severity: 'error', problem: problemName });

  const totalRecords = scan.files.length;
  options.onStart?.({ records: totalRecords, bytes: scan.totalBytes });
  const progress: ProgressState = { records: 0, totalRecords, bytes: 0, totalBytes: scan.totalBytes, messages: 0 };

  for (const p of scan.problems) {
    if (p.severity !== 'error') continue;
    counts(p.kind).source++;
    counts(p.kind).unreadable++;
    problem(p.kind, 'unreadable', p.key, p.rel, p.reason);
  }

  const limiter = new TaskLimiter(Math.max(1, options.jobs ?? 2));
  const compare = async (kind: ChatKind, records: Array<SourceConversation | PreparedUsage>, bytes: number) => {
    if (kind === 'conversations')
      await compareConversations(db, records as SourceConversation[], counts(kind), problem, {
        root: options.root,
        defaultUser: options.defaultUser,
      });
    else await compareUsage(db, records as PreparedUsage[], counts(kind), problem);
    progress.records += records.length;
    progress.bytes += bytes;
    progress.messages = summary.messages;
    options.onProgress?.({ ...progress });
  };

  let batch: { kind: ChatKind; records: Array<SourceConversation | PreparedUsage>; bytes: number } | undefined;
  const flush = async () => {
    if (!batch || batch.records.length === 0) return;
    const { kind, records, bytes } = batch;
    batch = undefined;
    await limiter.add(() => compare(kind, records, bytes));
  };
  await limiter.run(async () => {
    const records = readChatRecords(scan, {
      root: options.root,
      defaultUser: options.defaultUser,
      readConcurrency: options.readConcurrency,
      encode: null,
      workers: options.readers,
    });
    for await (const record of records) {
      const c = counts(record.kind);
      c.source++;
      summary.bytes += record.file.size;
      if ('rejection' in record) {
        c.unreadable++;
        problem(record.kind, 'unreadable', record.rejection.key, record.file.rel, record.rejection.reason);
        progress.records++;
        continue;
      }
      if (batch && batch.kind !== record.kind) await flush();
      batch ??= { kind: record.kind, records: [], bytes: 0 };
      if ('conversation' in record) {
        summary.messages += record.conversation.messageCount;
        // Only the hash is compared; the message texts are rebuilt from the file for the rare record that differs.
        batch.records.push({ ...record.conversation, source: record.file });
      } else if ('usage' in record) batch.records.push(record.usage);
      batch.bytes += record.file.size;
      if (batch.records.length >= batchSize || batch.bytes >= batchBytes) await flush();
      if (limiter.failed) break;
    }
    await flush();
  });

  for (const kind of kinds) {
    const present = sourceKeys(scan, kind);
    const c = counts(kind);
    const query =
      kind === 'conversations'
        ? db.sql<{ key: string }[]>`select id as key from conversations order by id`
        : db.sql<{ key: string }[]>`select user_id as key from usage order by user_id`;
    await query.cursor(5000, (rows) => {
      for (const row of rows) {
        if (present.has(row.key)) continue;
        c.extra++;
        problem(kind, 'extra', row.key, null, 'in the database but no source file has it');
      }
    });
    logger.debug({ kind, ...c }, 'verify: kind done');
  }

  summary.ok = Object.values(summary.kinds).every((c) => c.missing + c.different + c.extra + c.unreadable === 0);
  summary.elapsedMs = performance.now() - started;
  return summary;
}

/** A conversation's hash and head (no message texts: batches stay small). */
type SourceConversation = ConversationLoad & { source: SourceFile };

type ProblemFn = (kind: ChatKind, problem: string, record: string | null, file: string | null, reason: string) => void;

async function compareConversations(
  db: Database,
  records: SourceConversation[],
  c: VerifyKindSummary,
  problem: ProblemFn,
  source: { root: string; defaultUser: string | undefined },
) {
  const keys = records.map((r) => r.key);
  // Heads first (small); then the messages streamed in position order and hashed
  // as they arrive, so a batch never holds its rows (messages are the bulk of the data).
  const heads = await db.run(
    'verify.conversations',
    (sql) => sql<DbConversation[]>`
      select id, user_id, title, (extract(epoch from created_at) * 1000000)::int8::text as created_us
        from conversations where id = any(${keys}::text[])`,
    { idempotent: true },
  );
  const headById = new Map(
    heads.map((h) => [h.id, { id: h.id, userId: h.user_id, title: h.title, createdUs: Number(h.created_us) } satisfies ConversationHead]),
  );
  const hashes = new Map<string, string>();
  let current: { id: string; hasher: ConversationHasher } | undefined;
  const finish = () => {
    if (current) hashes.set(current.id, current.hasher.digest());
    current = undefined;
  };
  await db.run(
    'verify.messages',
    async (sql) => {
      hashes.clear();
      current = undefined;
      await sql<DbMessage[]>`
        select conversation_id, role, content, stage1_data::text as stage1, stage2_data::text as stage2, stage3_data::text as stage3, metadata::text
          from messages where conversation_id = any(${keys}::text[])
         order by conversation_id, position`.cursor(500, (rows) => {
        for (const m of rows) {
          if (current?.id !== m.conversation_id) {
            finish();
            const head = headById.get(m.conversation_id);
            if (head) current = { id: m.conversation_id, hasher: new ConversationHasher(head) };
          }
          current?.hasher.add(canonicalMessage(m.role, m.content, m));
        }
      });
      finish();
    },
    { idempotent: true },
  );
  for (const record of records) {
    const head = headById.get(record.key);
    if (!head) {
      c.missing++;
      problem('conversations', 'missing', record.key, record.file, 'in the source but not in the database');
      continue;
    }
    const hash = hashes.get(record.key) ?? hashConversation(head, []);
    if (hash === record.hash) {
      c.matched++;
      continue;
    }
    c.different++;
    const texts = (
      await db.run(
        'verify.difference',
        (sql) => sql<DbMessage[]>`
          select conversation_id, role, content, stage1_data::text as stage1, stage2_data::text as stage2, stage3_data::text as stage3, metadata::text
            from messages where conversation_id = ${record.key} order by position`,
        { idempotent: true },
      )
    ).map((m) => canonicalMessage(m.role, m.content, m));
    problem('conversations', 'different', record.key, record.file, await firstDifference(record, head, texts, source));
  }
}

/** Name the first thing that differs, so a person knows where to look (the file is read again for its messages). */
async function firstDifference(
  record: SourceConversation,
  db: { userId: string; title: string; createdUs: number },
  dbTexts: readonly string[],
  from: { root: string; defaultUser: string | undefined },
): Promise<string> {
  const source = await reloadConversation(from.root, record.source, from.defaultUser);
  if (source === null) return 'content differs (the source file changed while verifying)';
  if (source.row.userId !== db.userId) return `user_id: source ${JSON.stringify(source.row.userId)}, database ${JSON.stringify(db.userId)}`;
  if (source.row.title !== db.title) return `title: source ${JSON.stringify(source.row.title)}, database ${JSON.stringify(db.title)}`;
  if (source.row.createdUs !== db.createdUs)
    return `created_at differs (source ${source.row.createdUs} µs, database ${db.createdUs} µs since 1970)`;
  for (let i = 0; i < Math.max(source.messages.length, dbTexts.length); i++) {
    const m = source.messages[i];
    const sourceText = m ? canonicalMessage(m.role, m.content, m.json) : undefined;
    if (sourceText !== dbTexts[i]) {
      if (sourceText === undefined)
        return `message ${i}: in the database only (${dbTexts.length} messages there, ${source.messages.length} in the source)`;
      if (dbTexts[i] === undefined)
        return `message ${i}: missing from the database (${dbTexts.length} there, ${source.messages.length} in the source)`;
      return `message ${i} differs`;
    }
  }
  return 'content differs';
}

async function reloadConversation(root: string, file: SourceFile, defaultUser: string | undefined): Promise<PreparedConversation | null> {
  for await (const record of readSourceFiles(root, [file], 1)) {
    if (record.text === undefined) return null;
    const parsed = parseDocument(record.text);
    if (!parsed.ok) return null;
    const result = validateConversation(file, parsed.value, { defaultUser }, record.mtimeMs);
    if (!result.ok) return null;
    const prepared = prepareConversation(result.row, file.rel, file.size);
    return typeof prepared === 'string' ? null : prepared;
  }
  return null;
}

async function compareUsage(db: Database, records: PreparedUsage[], c: VerifyKindSummary, problem: ProblemFn) {
  const keys = records.map((r) => r.key);
  const rows = await db.run(
    'verify.usage',
    (sql) => sql<
      { user_id: string; tier: string; daily_used: number; monthly_used: number; total_queries: string; d: string; m: string }[]
    >`
      select user_id, tier, daily_used, monthly_used, total_queries::text as total_queries,
             last_reset_daily::text as d, last_reset_monthly::text as m
        from usage where user_id = any(${keys}::text[])`,
    { idempotent: true },
  );
  const byId = new Map(rows.map((r) => [r.user_id, r]));
  for (const record of records) {
    const row = byId.get(record.key);
    if (!row) {
      c.missing++;
      problem('usage', 'missing', record.key, record.file, 'in the source but not in the database');
      continue;
    }
    const dbRow: UsageRow = {
      userId: row.user_id,
      tier: row.tier as UsageRow['tier'],
      dailyUsed: row.daily_used,
      monthlyUsed: row.monthly_used,
      totalQueries: Number(row.total_queries),
      lastResetDaily: row.d,
      lastResetMonthly: row.m,
    };
    if (hashCanonical(canonicalUsage(dbRow)) === record.hash) {
      c.matched++;
      continue;
    }
    c.different++;
    const fields = (Object.keys(dbRow) as Array<keyof UsageRow>).filter((k) => dbRow[k] !== record.row[k]);
    problem(
      'usage',
      'different',
      record.key,
      record.file,
      fields.map((k) => `${k}: source ${JSON.stringify(record.row[k])}, database ${JSON.stringify(dbRow[k])}`).join('; ') ||
        'content differs',
    );
  }
}
