import type { TransactionSql } from '../../../db/database.ts';
import type { PreparedConversation } from '../../canonical.ts';
import { BinaryCopyWriter } from '../../copy-binary.ts';
import { copyIn } from '../../copy-in.ts';
import type { LoadMethod } from '../../load.ts';
import { formatTimestampUs } from '../../validate.ts';
import type { WriteContext } from '../types.ts';

/**
 * Writing conversations and their messages (one batch, inside the engine's
 * transaction). Three ways to write messages, compared by bench/import.ts
 * (docs/migrating.md has the figures):
 * - `copy` (default): conversations upserted from unnest() arrays, then the
 *   changed conversations' old messages deleted and the new ones COPYed
 *   (binary format, copy-binary.ts) straight into `messages`. Replacing a
 *   conversation's messages needs no merge, so a staging table would only
 *   copy every row twice.
 * - `staging`: COPY into temporary staging tables, then INSERT … SELECT …
 *   ON CONFLICT DO UPDATE into the real tables (the textbook shape).
 * - `json`: one json_to_recordset() parameter per batch instead of COPY.
 */

const MESSAGE_COLUMNS = 'conversation_id, position, role, content, stage1_data, stage2_data, stage3_data, metadata, created_at';

/**
 * A conversation ready to write: its head, and its messages already encoded
 * for the load method (binary COPY rows, or JSON objects for `json`). Encoding
 * at read time lets the parsed values and their JSON strings die young; a
 * batch in flight holds only these compact payloads, which keeps the import's
 * memory flat.
 *
 * A Buffer payload from encodeConversation is a view of a scratch buffer,
 * valid until the next conversation is encoded: the engine copies it
 * (into a batch's pooled chunks, see BatchBuffer).
 */
export interface ConversationLoad {
  key: string;
  file: string;
  hash: string;
  row: PreparedConversation['row'];
  messageCount: number;
  /** copy/staging: binary COPY rows; json: comma-separated JSON objects; '' for verify (hash only). */
  payload: Buffer | string;
}

/** Above this, a payload is never a view of the scratch writer (BufferPool.CHUNK, see KindRecord.payload). */
const OWN_PAYLOAD = 1 << 20;

/** Reused for every conversation (encoding is synchronous). */
const scratch = new BinaryCopyWriter({ chunkSize: 256 * 1024 });

export function encodeConversation(p: PreparedConversation, method: LoadMethod): ConversationLoad {
  const head = { key: p.key, file: p.file, hash: p.hash, row: p.row, messageCount: p.messages.length };
  if (method === 'json') {
    const id = JSON.stringify(p.key);
    const parts = p.messages.map(
      (m, i) =>
        `{"conversation_id":${id},"position":${i},"role":"${m.role}","content":${JSON.stringify(m.content)},` +
        `"stage1_data":${m.json.stage1 ?? 'null'},"stage2_data":${m.json.stage2 ?? 'null'},"stage3_data":${m.json.stage3 ?? 'null'},` +
        `"metadata":${m.json.metadata ?? 'null'},"created_at":"${formatTimestampUs(m.createdUs)}"}`,
    );
    return { ...head, payload: parts.join(',') };
  }
  const w = scratch;
  w.reset();
  for (let i = 0; i < p.messages.length; i++) {
    const m = p.messages[i]!;
    w.row(9);
    w.text(p.key);
    w.int4(i);
    w.text(m.role);
    w.text(m.content);
    w.jsonb(m.json.stage1);
    w.jsonb(m.json.stage2);
    w.jsonb(m.json.stage3);
    w.jsonb(m.json.metadata);
    w.timestamptz(m.createdUs);
  }
  const chunks = w.take();
  chunks.push(w.current());
  // A large payload is this record's own (KindRecord.payload): concat copies; one grown scratch chunk is copied.
  if (chunks.length === 1) return { ...head, payload: chunks[0]!.length > OWN_PAYLOAD ? Buffer.from(chunks[0]!) : chunks[0]! };
  return { ...head, payload: Buffer.concat(chunks) };
}

/**
 * Largest piece handed to the COPY stream: postgres.js copies each piece into
 * a CopyData message, so a large conversation sent whole would briefly exist
 * twice more in memory. Pieces are views (no copy here).
 */
const COPY_PIECE = 1024 * 1024;

/** The batch's messages as one binary COPY stream. */
function* messageCopyChunks(records: readonly ConversationLoad[]): Generator<Buffer> {
  yield BinaryCopyWriter.HEADER;
  for (const record of records) {
    if (record.messageCount === 0) continue;
    const payload = record.payload as Buffer;
    for (let at = 0; at < payload.length; at += COPY_PIECE) yield payload.subarray(at, at + COPY_PIECE);
  }
  yield BinaryCopyWriter.TRAILER;
}

function* conversationCopyChunks(records: readonly ConversationLoad[]): Generator<Buffer> {
  const w = new BinaryCopyWriter({ header: true });
  for (const r of records) {
    w.row(6);
    w.text(r.key);
    w.text(r.row.userId);
    w.text(r.row.title);
    w.timestamptz(r.row.createdUs);
    w.timestamptz(r.row.updatedUs);
    w.int4(r.messageCount);
    yield* w.take();
  }
  yield* w.end();
  yield BinaryCopyWriter.TRAILER;
}

export async function writeConversations(tx: TransactionSql, changed: readonly ConversationLoad[], context: WriteContext): Promise<void> {
  if (context.method === 'staging') await writeStaging(tx, changed, context.replaced);
  else await writeDirect(tx, changed, context.replaced, context.method);
}

export async function pruneConversations(tx: TransactionSql, keys: readonly string[]): Promise<void> {
  await tx`delete from conversations where id = any(${keys}::text[])`;
}

async function upsertFromArrays(tx: TransactionSql, changed: readonly ConversationLoad[]): Promise<void> {
  const col = <T>(pick: (r: ConversationLoad) => T) => changed.map(pick);
  await tx`
    insert into conversations (id, user_id, title, created_at, updated_at, message_count)
    select id, user_id, title, created::timestamptz, updated::timestamptz, message_count from unnest(
      ${col((r) => r.key)}::text[], ${col((r) => r.row.userId)}::text[], ${col((r) => r.row.title)}::text[],
      ${col((r) => formatTimestampUs(r.row.createdUs))}::text[], ${col((r) => formatTimestampUs(r.row.updatedUs))}::text[],
      ${col((r) => r.messageCount)}::int[]) as t(id, user_id, title, created, updated, message_count)
    on conflict (id) do update set
      user_id = excluded.user_id, title = excluded.title, created_at = excluded.created_at,
      updated_at = excluded.updated_at, message_count = excluded.message_count`;
}

async function writeDirect(
  tx: TransactionSql,
  changed: readonly ConversationLoad[],
  replaced: readonly string[],
  method: LoadMethod,
): Promise<void> {
  // Old messages go first: the schema's delete trigger recounts message_count, which the upsert then sets.
  if (replaced.length > 0) await tx`delete from messages where conversation_id = any(${replaced}::text[])`;
  await upsertFromArrays(tx, changed);
  if (method === 'json') {
    await tx`
      insert into messages (${tx.unsafe(MESSAGE_COLUMNS)})
      select ${tx.unsafe(MESSAGE_COLUMNS)} from json_to_recordset(${`[${changed
        .filter((r) => r.messageCount > 0)
        .map((r) => r.payload as string)
        .join(',')}]`}::text::json) as x(
        conversation_id text, position int, role text, content text,
        stage1_data jsonb, stage2_data jsonb, stage3_data jsonb, metadata jsonb, created_at timestamptz)`;
    return;
  }
  await copyIn(tx, `copy messages (${MESSAGE_COLUMNS}) from stdin with (format binary)`, messageCopyChunks(changed));
}

async function writeStaging(tx: TransactionSql, changed: readonly ConversationLoad[], replaced: readonly string[]): Promise<void> {
  await tx`
    create temporary table pgferry_stage_conversations (
      id text, user_id text, title text, created_at timestamptz, updated_at timestamptz, message_count int
    ) on commit drop`;
  await tx`
    create temporary table pgferry_stage_messages (
      conversation_id text, position int, role text, content text,
      stage1_data jsonb, stage2_data jsonb, stage3_data jsonb, metadata jsonb, created_at timestamptz
    ) on commit drop`;
  await copyIn(tx, 'copy pgferry_stage_conversations from stdin with (format binary)', conversationCopyChunks(changed));
  await copyIn(tx, `copy pgferry_stage_messages (${MESSAGE_COLUMNS}) from stdin with (format binary)`, messageCopyChunks(changed));
  await tx`
    insert into conversations (id, user_id, title, created_at, updated_at, message_count)
    select id, user_id, title, created_at, updated_at, message_count from pgferry_stage_conversations
    on conflict (id) do update set
      user_id = excluded.user_id, title = excluded.title, created_at = excluded.created_at,
      updated_at = excluded.updated_at, message_count = excluded.message_count`;
  await tx`
    insert into messages (${tx.unsafe(MESSAGE_COLUMNS)})
    select ${tx.unsafe(MESSAGE_COLUMNS)} from pgferry_stage_messages
    on conflict (conversation_id, position) do update set
      role = excluded.role, content = excluded.content, stage1_data = excluded.stage1_data, stage2_data = excluded.stage2_data,
      stage3_data = excluded.stage3_data, metadata = excluded.metadata, created_at = excluded.created_at`;
  // A conversation that got shorter loses its trailing messages (only those that existed can have any;
  // the join goes through the (conversation_id, position) index, never a scan of all messages).
  if (replaced.length === 0) return;
  const existed = new Set(replaced);
  const counts = changed.filter((r) => existed.has(r.key)).map((r) => r.messageCount);
  await tx`
    delete from messages m using unnest(${replaced as string[]}::text[], ${counts}::int[]) as s(id, message_count)
     where m.conversation_id = s.id and m.position >= s.message_count`;
}
