import type { ConversationSummary, Message } from '../../domain/conversations.ts';
import { isValidRecordId, isValidUserId, newId } from '../../domain/ids.ts';
import type { UsageStatus } from '../../domain/usage.ts';
import type { ConversationRepository, UsageRepository } from '../types.ts';
import type { RecordRef } from './apply.ts';
import type { RepositorySpec } from './compose.ts';

/**
 * The repositories' cutover specs (compose.ts). A record file is named as the
 * transfer kind reading it names it (src/transfer/kinds/<kind>/): the JSON
 * store writes the seed apps' layout, which is what the importer reads.
 *
 * Adding a repository (submissions, jobs, uploads): its spec here — the write
 * methods and the files they change, the reads to compare — and one line in
 * index.ts's SPECS.
 */

/** Files are named only from valid ids (a call with an invalid one fails its validation and changes nothing). */
const conversationFile = (userId: string, id: string | undefined): RecordRef[] =>
  isValidUserId(userId) && isValidRecordId(id) ? [{ kind: 'conversations', rel: `conversations/${userId}/${id}.json` }] : [];
const usageFile = (userId: string): RecordRef[] => (isValidUserId(userId) ? [{ kind: 'usage', rel: `usage/${userId}/usage.json` }] : []);

const summary = (c: ConversationSummary) => ({ id: c.id, title: c.title, messageCount: c.messageCount });
const message = (m: Message) =>
  m.role === 'user' ? { role: m.role, position: m.position, content: m.content } : { role: m.role, position: m.position, stage3: m.stage3 };

export const conversationsSpec: RepositorySpec<ConversationRepository> = {
  name: 'conversations',
  writes: {
    create: ([userId, input]) => conversationFile(userId, input?.id),
    addUserMessage: ([userId, id]) => conversationFile(userId, id),
    // The quota counter and the message change together.
    sendUserMessage: ([userId, id]) => [...conversationFile(userId, id), ...usageFile(userId)],
    addAssistantMessage: ([userId, id]) => conversationFile(userId, id),
    updateTitle: ([userId, id]) => conversationFile(userId, id),
    delete: ([userId, id]) => conversationFile(userId, id),
  },
  fillIds: {
    create: ([userId, input = {}]) => [userId, { ...input, id: input.id ?? newId() }],
  },
  reads: {
    get: (c) => ({ ...summary(c), messages: c.messages.map(message) }),
    list: (page) => page.items.map(summary),
    search: (items) => items.map(summary),
  },
};

const counters = (u: UsageStatus) => ({ tier: u.tier, daily: u.daily.used, monthly: u.monthly.used, total: u.totalQueries });

export const usageSpec: RepositorySpec<UsageRepository> = {
  name: 'usage',
  writes: {
    consume: ([userId]) => usageFile(userId),
    setTier: ([userId]) => usageFile(userId),
  },
  reads: { get: counters },
};
