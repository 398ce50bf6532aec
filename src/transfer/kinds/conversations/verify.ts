import type { Database, Sql } from '../../../db/database.ts';
import {
  CANONICAL_VERSION,
  ConversationHasher,
  type ConversationHead,
  canonicalMessage,
  type PreparedConversation,
  prepareConversation,
} from '../../canonical.ts';
import { readSourceFiles, type SourceFile } from '../../source.ts';
import { parseDocument, validateConversation } from '../../validate.ts';
import type { KeyQuery, VerifyContext, VerifyItem } from '../types.ts';
import type { ConversationLoad } from './load.ts';

/**
 * Verifying conversations: the source side's hash comes from the reader
 * threads (canonical.ts, from the file); the database side's hash is computed
 * by PostgreSQL itself, from the rows, on its own core — only (key, hash)
 * pairs cross the wire. The server builds the very text canonical.ts defines:
 *
 * - JSON values are `jsonb::text`, the form canonical.ts's jsonbText prints;
 * - JSON strings are `to_json(text)::text`, whose escaping (PostgreSQL's
 *   escape_json: \" \\ \b \f \n \r \t, other controls as lowercase \u00xx,
 *   everything else — U+2028, non-BMP, DEL — verbatim) is JSON.stringify's
 *   for every string a UTF-8 database can hold (no NUL, no lone surrogate);
 * - created_at is epoch microseconds as int8 text, which is how JavaScript
 *   prints the number while it is a safe integer;
 * - the message texts are joined in position order, and the whole is
 *   prefixed with the canonical version line and hashed with sha256().
 *
 * Where that identity is not certain, the server returns no hash and the
 * record is hashed here from its rows, as before (`hashInNode`): a database
 * that is not UTF-8, a created_at beyond ±2^53 µs (after year 2255, where a
 * JavaScript number loses digits), and a batch the server cannot build in
 * memory (a canonical text over PostgreSQL's 1 GB value limit). test/verify
 * checks both ways agree with hashConversation on random conversations.
 *
 * The whole text is one string_agg over three sections (head, messages in
 * position order — the first without a separator —, tail), so the server
 * writes each byte once: appending the head and tail to an aggregated
 * message string with `||` or concat() copied it again per piece and tripled
 * the server's CPU time (measured). Parts are joined with `||` (each is NOT
 * NULL or coalesced); concat() would run each through an output function.
 *
 * Only a record whose hashes differ has its rows fetched, to name the first
 * difference.
 */

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

/** PostgreSQL errors that mean "this batch's texts are too large to build": hash it here instead. */
const TOO_LARGE = new Set(['54000', '53200']);

export const conversationKeys = (sql: Sql): KeyQuery => sql<{ key: string }[]>`select id as key from conversations order by id`;

export async function compareConversations(items: readonly VerifyItem<ConversationLoad>[], context: VerifyContext): Promise<void> {
  const keys = items.map((item) => item.record.key);
  const hashes = await databaseHashes(context.db, keys);
  for (const item of items) {
    const record = item.record;
    const hash = hashes.get(record.key);
    if (hash === undefined) context.missing(item);
    else if (hash === record.hash) context.matched(item);
    else await reportDifference(item, context);
  }
}

/**
 * The database's canonical hash of each conversation with one of these keys
 * (a key with no row is absent): computed by the server where it can be,
 * here for the rest.
 */
export async function databaseHashes(db: Database, keys: readonly string[]): Promise<Map<string, string>> {
  const fromServer = await hashInServer(db, keys);
  if (fromServer === null) return hashInNode(db, keys);
  const left = [...fromServer].filter(([, hash]) => hash === null).map(([key]) => key);
  const hashes = fromServer as Map<string, string>;
  if (left.length > 0) for (const [key, hash] of await hashInNode(db, left)) hashes.set(key, hash);
  return hashes;
}

/**
 * Per key, the server's hash, or null where the server's text might not be
 * canonical.ts's (see above); null as a whole when the batch is too large to build there.
 */
export async function hashInServer(db: Database, keys: readonly string[]): Promise<Map<string, string | null> | null> {
  const prefix = `${CANONICAL_VERSION}\n`;
  try {
    const rows = await db.run(
      'verify.conversations.hash',
      (sql) => sql<{ key: string; hash: string | null }[]>`
        select c.id as key,
               case when current_setting('server_encoding') = 'UTF8'
                         and abs(extract(epoch from c.created_at) * 1000000) <= 9007199254740991 -- Number.MAX_SAFE_INTEGER
                    then encode(sha256(convert_to((
                           select string_agg(part, separator order by section, ord)
                             from (
                               select 0 as section, 0 as ord, ''::text as separator,
                                      ${prefix}::text
                                      || '{"created_at":' || (extract(epoch from c.created_at) * 1000000)::int8::text
                                      || ',"id":' || to_json(c.id)::text || ',"messages":[' as part
                               union all
                               select 1, m.position, case when m.position = first.position then '' else ',' end,
                                         '{'
                                      || case when m.role = 'user' or m.content is not null
                                              then '"content":' || coalesce(to_json(m.content)::text, 'null') || ',' else '' end
                                      || case when m.metadata is not null then '"metadata":' || m.metadata::text || ',' else '' end
                                      || '"role":' || to_json(m.role)::text
                                      || case when m.role = 'assistant' or m.stage1_data is not null
                                              then ',"stage1":' || coalesce(m.stage1_data::text, 'null') else '' end
                                      || case when m.role = 'assistant' or m.stage2_data is not null
                                              then ',"stage2":' || coalesce(m.stage2_data::text, 'null') else '' end
                                      || case when m.role = 'assistant' or m.stage3_data is not null
                                              then ',"stage3":' || coalesce(m.stage3_data::text, 'null') else '' end
                                      || '}'
                                 from (select min(position) as position from messages where conversation_id = c.id) first
                                 join messages m on m.conversation_id = c.id
                               union all
                               select 2, 0, '',
                                      '],"title":' || to_json(c.title)::text || ',"user_id":' || to_json(c.user_id)::text || '}'
                             ) parts), 'UTF8')), 'hex')
               end as hash
          from conversations c where c.id = any(${keys as string[]}::text[])`,
      { idempotent: true },
    );
    return new Map(rows.map((row) => [row.key, row.hash]));
  } catch (error) {
    if (TOO_LARGE.has((error as { code?: string }).code ?? '')) return null;
    throw error;
  }
}

/** The same hashes computed here from the rows: heads first (small), then the messages streamed in position order. */
export async function hashInNode(db: Database, keys: readonly string[]): Promise<Map<string, string>> {
  const heads = await conversationHeads(db, keys);
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
          from messages where conversation_id = any(${keys as string[]}::text[])
         order by conversation_id, position`.cursor(500, (rows) => {
        for (const m of rows) {
          if (current?.id !== m.conversation_id) {
            finish();
            const head = heads.get(m.conversation_id);
            if (head) current = { id: m.conversation_id, hasher: new ConversationHasher(head) };
          }
          current?.hasher.add(canonicalMessage(m.role, m.content, m));
        }
      });
      finish();
    },
    { idempotent: true },
  );
  // A conversation with no messages.
  for (const [key, head] of heads) if (!hashes.has(key)) hashes.set(key, new ConversationHasher(head).digest());
  return hashes;
}

async function conversationHeads(db: Database, keys: readonly string[]): Promise<Map<string, ConversationHead>> {
  const heads = await db.run(
    'verify.conversations',
    (sql) => sql<DbConversation[]>`
      select id, user_id, title, (extract(epoch from created_at) * 1000000)::int8::text as created_us
        from conversations where id = any(${keys as string[]}::text[])`,
    { idempotent: true },
  );
  return new Map(
    heads.map((h) => [h.id, { id: h.id, userId: h.user_id, title: h.title, createdUs: Number(h.created_us) } satisfies ConversationHead]),
  );
}

/** A record whose hashes differ: fetch its rows and name the first thing that differs. */
async function reportDifference(item: VerifyItem<ConversationLoad>, context: VerifyContext): Promise<void> {
  const key = item.record.key;
  const head = (await conversationHeads(context.db, [key])).get(key);
  if (!head) {
    context.missing(item); // deleted since its hash was read
    return;
  }
  const texts = (
    await context.db.run(
      'verify.difference',
      (sql) => sql<DbMessage[]>`
        select conversation_id, role, content, stage1_data::text as stage1, stage2_data::text as stage2, stage3_data::text as stage3, metadata::text
          from messages where conversation_id = ${key} order by position`,
      { idempotent: true },
    )
  ).map((m) => canonicalMessage(m.role, m.content, m));
  context.different(item, await firstDifference(item.source, head, texts, context));
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
