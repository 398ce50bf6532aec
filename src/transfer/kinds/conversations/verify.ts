import type { Sql } from '../../../db/database.ts';
import {
  ConversationHasher,
  type ConversationHead,
  canonicalMessage,
  hashConversation,
  type PreparedConversation,
  prepareConversation,
} from '../../canonical.ts';
import { readSourceFiles, type SourceFile } from '../../source.ts';
import { parseDocument, validateConversation } from '../../validate.ts';
import type { KeyQuery, VerifyContext, VerifyItem } from '../types.ts';
import type { ConversationLoad } from './load.ts';

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

export const conversationKeys = (sql: Sql): KeyQuery => sql<{ key: string }[]>`select id as key from conversations order by id`;

/**
 * Heads first (small); then the messages streamed in position order and hashed
 * as they arrive, so a batch never holds its rows (messages are the bulk of the data).
 * Only the hash is compared; the message texts are rebuilt from the file for the rare record that differs.
 */
export async function compareConversations(items: readonly VerifyItem<ConversationLoad>[], context: VerifyContext): Promise<void> {
  const db = context.db;
  const keys = items.map((item) => item.record.key);
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
  for (const item of items) {
    const record = item.record;
    const head = headById.get(record.key);
    if (!head) {
      context.missing(item);
      continue;
    }
    const hash = hashes.get(record.key) ?? hashConversation(head, []);
    if (hash === record.hash) {
      context.matched(item);
      continue;
    }
    const texts = (
      await db.run(
        'verify.difference',
        (sql) => sql<DbMessage[]>`
          select conversation_id, role, content, stage1_data::text as stage1, stage2_data::text as stage2, stage3_data::text as stage3, metadata::text
            from messages where conversation_id = ${record.key} order by position`,
        { idempotent: true },
      )
    ).map((m) => canonicalMessage(m.role, m.content, m));
    context.different(item, await firstDifference(item.source, head, texts, context));
  }
}

/** Name the first thing that differs, so a person knows where to look (the file is read again for its messages). */
async function firstDifference(
  file: SourceFile,
  db: { userId: string; title: string; createdUs: number },
  dbTexts: readonly string[],
  context: VerifyContext,
): Promise<string> {
  const source = await reloadConversation(context.root, file, context.settings.defaultUser);
  if (source === null) return 'content differs (the source file changed while verifying)';
  if (source.row.userId !== db.userId) return `user_id: source ${JSON.stringify(source.row.userId)}, database ${JSON.stringify(db.userId)}`;
  // Lengths, not the titles: a reason never quotes file contents (issue 9).
  if (source.row.title !== db.title) return `title differs: source ${source.row.title.length} characters, database ${db.title.length}`;
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
