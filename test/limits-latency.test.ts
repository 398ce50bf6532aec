import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES, messageBytes } from '../src/domain/limits.ts';
import type { Store } from '../src/store/types.ts';
import { call, createStorage, type StorageFixture, startServer, type TestServer, testConfig } from './helpers/http.ts';

/**
 * Issue 9 item 2, "no request blocks the event loop for long": one user
 * writes the largest allowed assistant messages (object-heavy stage data
 * nested ~60 deep, the costliest shape to parse and write) in a loop on the
 * JSON backend, filling conversations to MAX_CONVERSATION_BYTES and starting
 * new ones; meanwhile another user polls /healthz and lists their
 * conversations. Their p99 latency is asserted under P99_BOUND_MS (generous:
 * the test machine is 2 shared cores; docs/storage.md records measurements).
 */

// Measured here: on a quiet 2-core machine p50 19 ms, p99 427 ms, max 466 ms; with the machine shared
// (load average ~11) p99 ~2.3 s (docs/storage.md). The bound leaves CI's 2 cores 3.5x headroom over the
// quiet figure and still fails on the multi-second stalls.
const P99_BOUND_MS = 1500;
const LOAD_MS = 10_000;

/** ~`bytes` of stage data: many small objects, nested 60 levels. */
function largestStages(bytes: number) {
  const leaves: unknown[] = [];
  const stages = { stage1: [] as unknown[], stage2: [], stage3: null };
  let item: unknown = leaves;
  for (let i = 0; i < 58; i++) item = { level: i, child: item };
  stages.stage1.push({ model: 'm', response: item });
  let size = messageBytes({ role: 'assistant', ...stages });
  const leafBytes = JSON.stringify({ i: 0, model: 'openai/gpt-x', score: 0.5, text: 'w'.repeat(40) }).length + 1;
  while (size + leafBytes < bytes) {
    leaves.push({ i: leaves.length % 10, model: 'openai/gpt-x', score: 0.5, text: 'w'.repeat(40) });
    size += leafBytes;
  }
  return stages;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

describe('other users stay responsive while one writes the largest messages (JSON backend)', () => {
  let storage: StorageFixture;
  let store: Store;
  let server: TestServer;
  beforeAll(async () => {
    storage = await createStorage('json');
    store = await storage.open();
    server = await startServer({ store, config: testConfig({ BODY_LIMIT_BYTES: String(3 * 1024 * 1024) }) });
  });
  afterAll(async () => {
    await server.close();
    await store.close();
    await storage.cleanup();
  });

  it(`keeps their p99 under ${P99_BOUND_MS} ms`, async () => {
    const stages = largestStages(MAX_MESSAGE_BYTES - 1024);
    expect(messageBytes({ role: 'assistant', ...stages })).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    const body = JSON.stringify(stages); // serialised once: the writer's own work must not load this process
    await call(server.url, 'POST', '/v1/conversations', { user: 'bob', body: { title: 'hello' } });

    const end = Date.now() + LOAD_MS;
    let written = 0;
    let full = 0;
    const writer = async () => {
      let id = (await call(server.url, 'POST', '/v1/conversations', { user: 'mallory', body: {} })).body.id as string;
      while (Date.now() < end) {
        const answer = await call(server.url, 'POST', `/v1/conversations/${id}/assistant-messages`, {
          user: 'mallory',
          body,
          headers: { 'content-type': 'application/json' },
        });
        if (answer.status === 201) written++;
        else if (answer.status === 422) {
          full++;
          id = (await call(server.url, 'POST', '/v1/conversations', { user: 'mallory', body: {} })).body.id as string;
        } else throw new Error(`append answered ${answer.status}: ${answer.text.slice(0, 200)}`);
      }
    };
    const latencies: number[] = [];
    const prober = async () => {
      for (let i = 0; Date.now() < end; i++) {
        const started = performance.now();
        const answer = await call(server.url, 'GET', i % 2 === 0 ? '/healthz' : '/v1/conversations', { user: 'bob' });
        latencies.push(performance.now() - started);
        expect(answer.status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    await Promise.all([writer(), prober()]);

    const sorted = latencies.sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    console.log(
      `latency under load: ${written} appends of ~2 MiB (${full} refused as full), ${sorted.length} probes, p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms`,
    );
    expect(written).toBeGreaterThan(0);
    expect(p99).toBeLessThan(P99_BOUND_MS);
  }, 60_000);
});
