/**
 * Bounded concurrency without unbounded Promise.all (STYLE "what to avoid").
 */

/**
 * Map `items` through `fn` with at most `limit` calls in flight; results come out in input order.
 * With `budget`, the calls in flight also weigh at most `budget` together (`weight` of each item),
 * except that one call always runs: a single heavy item goes alone.
 */
export async function* mapOrdered<T, R>(
  items: Iterable<T>,
  limit: number,
  fn: (item: T) => Promise<R>,
  budget?: { max: number; weight: (item: T) => number },
): AsyncGenerator<R> {
  const window: Array<{ promise: Promise<R>; weight: number }> = [];
  const iterator = items[Symbol.iterator]();
  let waiting: IteratorResult<T> | undefined;
  let inFlight = 0;
  const fill = () => {
    while (window.length < limit) {
      waiting ??= iterator.next();
      if (waiting.done) break;
      const weight = budget ? budget.weight(waiting.value) : 0;
      if (budget && window.length > 0 && inFlight + weight > budget.max) break;
      const promise = fn(waiting.value);
      waiting = undefined;
      promise.catch(() => {}); // surfaced when awaited in order below
      window.push({ promise, weight });
      inFlight += weight;
    }
  };
  fill();
  while (window.length > 0) {
    const next = window.shift()!;
    const result = await next.promise;
    inFlight -= next.weight;
    fill();
    yield result;
  }
}

/**
 * Runs async tasks with at most `limit` at once. `add` waits while the limit
 * is reached (backpressure for the producer); `drain` waits for all and
 * rethrows the first failure.
 */
export class TaskLimiter {
  private running = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  async add(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    this.throwIfFailed();
    const promise: Promise<void> = task()
      .catch((error) => {
        this.failure ??= { error };
      })
      .finally(() => this.running.delete(promise));
    this.running.add(promise);
  }

  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
    this.throwIfFailed();
  }

  /**
   * Run `produce` (which feeds tasks through `add`), then wait for every task
   * already sent whatever happened — each batch commits or rolls back whole —
   * and rethrow the first failure: the producer's, else a task's.
   */
  async run(produce: () => Promise<void>): Promise<void> {
    let failure: { error: unknown } | undefined;
    try {
      await produce();
    } catch (error) {
      failure = { error };
    }
    try {
      await this.drain();
    } catch (error) {
      failure ??= { error };
    }
    if (failure) throw failure.error;
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }
}
