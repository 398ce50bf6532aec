import type { Clock } from '../../src/store/types.ts';

/** A clock that flows with real time from a settable instant. */
export class TestClock {
  private base = Date.now();
  private setAt = Date.now();

  set(instant: Date | string): void {
    this.base = new Date(instant).getTime();
    this.setAt = Date.now();
  }

  reset(): void {
    this.set(new Date());
  }

  readonly now: Clock = () => new Date(this.base + (Date.now() - this.setAt));
}
