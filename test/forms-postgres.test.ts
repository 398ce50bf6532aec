import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import type { Actor } from '../src/domain/forms.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import type { Store } from '../src/store/types.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { expectCode } from './helpers/expect.ts';

/**
 * PostgreSQL-only guarantees of seed 002's repositories: a change and its
 * audit entry commit together (an audit insert that fails takes the change
 * back with it), and the database itself keeps audit_logs append-only —
 * UPDATE, DELETE and TRUNCATE refused, except the operator's purge function.
 */

let testDb: TestDatabase;
let store: Store;
const ADMIN: Actor = { userId: 'pg-admin', admin: true };
const hvac = { module: 'hvac_mep', formData: { site_name: 'ADNOC HQ L14', visit_date: '2025-12-20', items: [] } };

beforeAll(async () => {
  testDb = await createTestDatabase({ prefix: 'pgforms' });
  store = createPostgresStore({ db: testDb.db, tierLimits: DEFAULT_TIER_LIMITS });
});
afterAll(async () => {
  await store?.close();
  await testDb?.drop();
});

/** Make every audit insert by `userId` with `action` fail, as a full disk or a broken trigger would. */
async function breakAuditFor(userId: string, action: string): Promise<void> {
  await testDb.db.sql.unsafe(`
    create or replace function test_break_audit() returns trigger language plpgsql as $$
    begin
      if new.user_id = '${userId}' and new.action = '${action}' then raise exception 'audit write failed'; end if;
      return new;
    end; $$;
    drop trigger if exists test_break_audit on audit_logs;
    create trigger test_break_audit before insert on audit_logs for each row execute function test_break_audit();`);
}

describe('a change and its audit entry are one transaction', () => {
  it('rolls the submission back when its audit entry cannot be written', async () => {
    const alice: Actor = { userId: 'atomic-alice' };
    await breakAuditFor(alice.userId, 'submission.create');
    await expect(store.submissions.create(alice, { ...hvac, id: 'sub_aaaaaaaaaaaa' })).rejects.toThrow();
    await expectCode(store.submissions.get(ADMIN, 'sub_aaaaaaaaaaaa'), 'NOT_FOUND');
    const [row] = await testDb.db.sql`select count(*)::int as n from submissions where submission_id = 'sub_aaaaaaaaaaaa'`;
    expect(row?.n).toBe(0);
  });

  it('leaves the job in its state when the transition cannot be audited', async () => {
    const bob: Actor = { userId: 'atomic-bob' };
    const s = await store.submissions.create(bob, hvac);
    const job = await store.jobs.create(bob, s.id);
    await store.jobs.progress(bob, job.id, 30);
    await breakAuditFor(bob.userId, 'job.finish');
    await expect(store.jobs.finish(bob, job.id, { excel_url: 'x' })).rejects.toThrow();
    expect(await store.jobs.get(bob, job.id)).toMatchObject({ state: 'running', progress: 30 });
    await breakAuditFor('nobody', 'none');
    expect((await store.jobs.finish(bob, job.id, { excel_url: 'https://x/r.xlsx' })).state).toBe('done');
    const [urls] = await testDb.db.sql`select excel_url, pdf_url from jobs where job_id = ${job.id}`;
    expect(urls).toEqual({ excel_url: 'https://x/r.xlsx', pdf_url: null });
  });
});

describe('audit_logs is append-only in the database', () => {
  it('refuses UPDATE, DELETE and TRUNCATE from any writer', async () => {
    await store.audit.record({ userId: 'carol', action: 'login' });
    await expect(testDb.db.sql`update audit_logs set action = 'x'`).rejects.toThrow(/append-only/);
    await expect(testDb.db.sql`delete from audit_logs`).rejects.toThrow(/append-only/);
    await expect(testDb.db.sql`truncate audit_logs`).rejects.toThrow(/append-only/);
    const [row] = await testDb.db.sql`select count(*)::int as n from audit_logs where user_id = 'carol'`;
    expect(row?.n).toBe(1);
  });

  it('removes old entries only through the operator purge function', async () => {
    const old = createPostgresStore({ db: testDb.db, tierLimits: DEFAULT_TIER_LIMITS, clock: () => new Date('2020-01-01T00:00:00Z') });
    await old.audit.record({ userId: 'dave', action: 'login' });
    await store.audit.record({ userId: 'dave', action: 'login' });
    const [purged] = await testDb.db.sql`select pgferry_audit_purge('2021-01-01') as n`;
    expect(purged?.n).toBe(1);
    expect((await store.audit.list({ userId: 'dave' })).items).toHaveLength(1);
    // The mark the purge sets does not outlive its call.
    await expect(testDb.db.sql`delete from audit_logs`).rejects.toThrow(/append-only/);
  });
});
