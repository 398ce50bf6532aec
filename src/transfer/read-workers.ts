import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { loadKindModules } from './kinds/index.ts';
import { type Duplicate, type ReadRecord, type ReadRecordsOptions, readRecordsHere } from './records.ts';
import type { SourceFile } from './source.ts';

/**
 * Reader threads: files go out in chunks, records (hashes, keys, encoded
 * COPY payloads) come back, and the caller sees them in file order as if read
 * on its own thread. A chunk is small (a few MB of source), and at most two
 * per thread are in flight, so memory stays bounded. Like the engine worker,
 * each reader has a capped young generation (see worker.ts).
 */

type Duplicates = ReadonlyMap<string, Duplicate>;

interface ReaderData {
  role: 'pgferry-reader';
  options: Omit<ReadRecordsOptions, 'workers'>;
}

interface ChunkRequest {
  id: number;
  files: SourceFile[];
  duplicates: Array<[string, Duplicate]>;
}

type ChunkReply = { id: number; records: ReadRecord[] } | { id: number; error: string };

const READER_LIMITS = { maxYoungGenerationSizeMb: 32, maxOldGenerationSizeMb: 2048 };
const CHUNK_FILES = 48;
const CHUNK_BYTES = 2 * 1024 * 1024;

function* chunks(files: Iterable<SourceFile>): Generator<SourceFile[]> {
  let chunk: SourceFile[] = [];
  let bytes = 0;
  for (const file of files) {
    chunk.push(file);
    bytes += file.size;
    if (chunk.length >= CHUNK_FILES || bytes >= CHUNK_BYTES) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
  }
  if (chunk.length > 0) yield chunk;
}

export async function* readRecordsInWorkers(
  files: Iterable<SourceFile>,
  duplicates: Duplicates,
  options: ReadRecordsOptions,
  count: number,
): AsyncGenerator<ReadRecord> {
  const { workers: _count, ...readerOptions } = options;
  const data: ReaderData = { role: 'pgferry-reader', options: readerOptions };
  const pool = Array.from(
    { length: count },
    () => new Worker(new URL(import.meta.url), { workerData: data, resourceLimits: READER_LIMITS }),
  );
  const pending = new Map<number, { resolve: (records: ReadRecord[]) => void; reject: (error: Error) => void }>();
  let failure: Error | undefined;
  const fail = (error: Error) => {
    failure ??= error;
    for (const waiter of pending.values()) waiter.reject(error);
    pending.clear();
  };
  for (const worker of pool) {
    worker.on('message', (reply: ChunkReply) => {
      const waiter = pending.get(reply.id);
      pending.delete(reply.id);
      if ('error' in reply) waiter?.reject(new Error(reply.error));
      else waiter?.resolve(reply.records);
    });
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (pending.size > 0) fail(new Error(`a reader thread exited (code ${code}) with work pending`));
    });
  }

  const inFlight: Promise<ReadRecord[]>[] = [];
  const source = chunks(files);
  let next = 0;
  const send = (): boolean => {
    const item = source.next();
    if (item.done) return false;
    const id = next++;
    const request: ChunkRequest = {
      id,
      files: item.value,
      duplicates: item.value.filter((f) => duplicates.has(f.rel)).map((f) => [f.rel, duplicates.get(f.rel)!]),
    };
    const promise = new Promise<ReadRecord[]>((resolve, reject) => {
      if (failure) return reject(failure);
      pending.set(id, { resolve, reject });
    });
    promise.catch(() => {});
    pool[id % pool.length]!.postMessage(request);
    inFlight.push(promise);
    return true;
  };
  try {
    for (let i = 0; i < pool.length * 2 && send(); i++);
    while (inFlight.length > 0) {
      const records = await inFlight.shift()!;
      send();
      yield* records;
    }
  } finally {
    await Promise.all(pool.map((worker) => worker.terminate()));
  }
}

async function readerMain(data: ReaderData): Promise<void> {
  const port = parentPort!;
  const kindsLoaded = loadKindModules(data.options.kindModules);
  kindsLoaded.catch(() => {}); // reported with the first chunk
  port.on('message', async (request: ChunkRequest) => {
    try {
      await kindsLoaded;
      const records: ReadRecord[] = [];
      for await (const record of readRecordsHere(request.files, new Map(request.duplicates), data.options)) {
        // An encoded payload is a view of a scratch buffer: copy it before reading on.
        if ('record' in record && Buffer.isBuffer(record.record.payload)) record.record.payload = Buffer.from(record.record.payload);
        records.push(record);
      }
      port.postMessage({ id: request.id, records } satisfies ChunkReply);
    } catch (error) {
      port.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) } satisfies ChunkReply);
    }
  });
}

if (!isMainThread && (workerData as ReaderData | undefined)?.role === 'pgferry-reader') void readerMain(workerData as ReaderData);
