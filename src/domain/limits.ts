/**
 * What a store accepts: ONE set of limits, the same on every backend (JSON
 * files, PostgreSQL) and surface (library, REST), and the same the importer
 * enforces (formats/chat-conversation.ts reads a file through them), so
 * nothing enters that cannot be served or rewritten. docs/storage.md lists
 * them with the reasons.
 *
 * A message's size is the UTF-8 length of its payload as compact JSON: the
 * user's content as a JSON string, or the assistant's stage1 + stage2 +
 * stage3 + metadata (absent metadata counts nothing, a null stage 4 bytes).
 * It is what the message adds to a compactly written file and to a response
 * (a NaN or ±Infinity counts as `null`: measured by the native serialiser,
 * which is several times faster than one with a replacer).
 */

export const MiB = 1024 * 1024;

/**
 * Nesting of stage data (containers below the message object). Nothing the
 * chat app writes nests past ~6; every layer below (JSONB, PostgreSQL's own
 * parser, recursive serialisers) spends stack per level.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * One message. Leaves room for the "1 MB message round-trips" contract (and
 * JSON escaping of it), while a page (MESSAGES_PAGE_BYTES) always fits one.
 */
export const MAX_MESSAGE_BYTES = 2 * MiB;

/** Messages in one conversation: far beyond a chat (the app's UI re-renders them all). */
export const MAX_CONVERSATION_MESSAGES = 10_000;

/**
 * The sum of a conversation's message sizes. The JSON backend reads, checks
 * and rewrites the whole file on the event loop for each append; this bound
 * keeps one such step short for other users (docs/storage.md states the
 * measured latency), and keeps a file that any reader can load whole.
 */
export const MAX_CONVERSATION_BYTES = 8 * MiB;

/**
 * GET of a conversation returns messages until their sizes would pass this
 * budget (always at least one): with MAX_MESSAGE_BYTES below it, no page
 * holds more than this much message JSON.
 */
export const MESSAGES_PAGE_BYTES = 4 * MiB;

/**
 * A data file larger than this on disk is not read at all (CORRUPT_DATA): a
 * conversation within the limits is at most MAX_CONVERSATION_BYTES of content,
 * written within 2× of it (store/json/files.ts), and a pretty-printed file of
 * the chat app within ~4×.
 */
export const MAX_DATA_FILE_BYTES = 4 * MAX_CONVERSATION_BYTES;

/** A size as a person reads it: `8 MiB`, `700.0 MiB`, `12.5 KiB`, `300 bytes`. */
export function formatBytes(bytes: number): string {
  const scaled = (unit: number, name: string) => `${Number.isInteger(bytes / unit) ? bytes / unit : (bytes / unit).toFixed(1)} ${name}`;
  if (bytes >= MiB) return scaled(MiB, 'MiB');
  if (bytes >= 1024) return scaled(1024, 'KiB');
  return `${bytes} bytes`;
}

/**
 * Does `value` nest containers deeper than `max` (the value itself at depth
 * 0)? Iterative, so a hostile value cannot exhaust the stack here, and it
 * stops at the first container too deep.
 */
export function nestsDeeperThan(value: unknown, max: number = MAX_JSON_DEPTH): boolean {
  // Two parallel stacks rather than [value, depth] pairs: no allocation per node (this runs over every message read).
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const item = values.pop();
    const depth = depths.pop()!;
    if (item === null || typeof item !== 'object') continue;
    if (depth > max) return true;
    if (Array.isArray(item)) {
      for (let i = 0; i < item.length; i++) {
        const child: unknown = item[i];
        if (child !== null && typeof child === 'object') {
          values.push(child);
          depths.push(depth + 1);
        }
      }
    } else {
      const record = item as Record<string, unknown>;
      for (const key in record) {
        const child = record[key];
        if (child !== null && typeof child === 'object') {
          values.push(child);
          depths.push(depth + 1);
        }
      }
    }
  }
  return false;
}

/** A message payload as measured: the user's text, or the assistant's stages. */
export type MessagePayload =
  | { role: 'user'; content: string }
  | { role: 'assistant'; stage1: unknown; stage2: unknown; stage3: unknown; metadata?: unknown };

const jsonBytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value ?? null));

/**
 * The size of a message (see the top of this file). Call it only on a value
 * whose depth is checked (nestsDeeperThan): serialising recurses.
 */
export function messageBytes(message: MessagePayload): number {
  if (message.role === 'user') return jsonBytes(message.content);
  const { stage1, stage2, stage3, metadata } = message;
  return jsonBytes(stage1) + jsonBytes(stage2) + jsonBytes(stage3) + (metadata === undefined ? 0 : jsonBytes(metadata));
}

/** Why a message is over the per-message limits, or undefined when it fits; its size when it does. */
export function checkMessage(
  message: MessagePayload,
  options: { depthChecked?: boolean } = {},
): { bytes: number; problem?: undefined } | { problem: string; limit: string } {
  // A caller that has walked the value already (the file reader) skips the second walk.
  if (message.role === 'assistant' && !options.depthChecked && nestsDeeperThan(message)) {
    return { problem: `stage data nests deeper than ${MAX_JSON_DEPTH} levels`, limit: 'depth' };
  }
  let bytes: number;
  try {
    bytes = messageBytes(message);
  } catch {
    // JSON.stringify refuses strings past ~512 MB: far over the limit anyway.
    return { problem: `the message is larger than ${formatBytes(MAX_MESSAGE_BYTES)}`, limit: 'messageBytes' };
  }
  if (bytes > MAX_MESSAGE_BYTES) {
    return { problem: `the message is ${bytes} bytes, over the limit of ${formatBytes(MAX_MESSAGE_BYTES)}`, limit: 'messageBytes' };
  }
  return { bytes };
}

/** Which conversation limit one more message of `bytes` would break, if any. */
export function conversationLimitBroken(messages: number, totalBytes: number, bytes: number): 'messages' | 'bytes' | undefined {
  if (messages + 1 > MAX_CONVERSATION_MESSAGES) return 'messages';
  if (totalBytes + bytes > MAX_CONVERSATION_BYTES) return 'bytes';
  return undefined;
}

export const conversationLimitText = (limit: 'messages' | 'bytes'): string =>
  limit === 'messages' ? `at most ${MAX_CONVERSATION_MESSAGES} messages` : `at most ${formatBytes(MAX_CONVERSATION_BYTES)} of messages`;
