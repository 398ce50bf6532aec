import cliProgress from 'cli-progress';
import type { Logger } from '../log.ts';

/**
 * Progress for a person: a bar with records, MB, rate and ETA on a terminal;
 * a log line every few seconds otherwise (CI logs, files, pipes).
 */

export interface ProgressState {
  records: number;
  totalRecords: number;
  bytes: number;
  totalBytes: number;
  messages: number;
}

export interface ProgressOptions {
  label: string;
  /** Draw a bar (stderr is a terminal) or log lines. */
  tty: boolean;
  logger: Logger;
  intervalMs?: number;
}

const mb = (bytes: number) => (bytes / 1_048_576).toFixed(1);

export class ProgressDisplay {
  private bar: cliProgress.SingleBar | undefined;
  private startedAt = performance.now();
  private lastLog = 0;
  private stopped = false;
  private running = false;
  private state: ProgressState = { records: 0, totalRecords: 0, bytes: 0, totalBytes: 0, messages: 0 };
  private readonly options: ProgressOptions;

  constructor(options: ProgressOptions) {
    this.options = options;
  }

  start(totalRecords: number, totalBytes: number): void {
    this.running = true;
    this.startedAt = performance.now();
    this.state = { ...this.state, totalRecords, totalBytes };
    if (!this.options.tty) return;
    this.bar = new cliProgress.SingleBar(
      {
        format: `${this.options.label} [{bar}] {percentage}% | {value}/{total} records | {mb}/{totalMb} MB | {rate} rec/s | {messages} messages | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(totalRecords, 0, this.payload());
  }

  update(state: Partial<ProgressState>): void {
    this.state = { ...this.state, ...state };
    if (this.bar) {
      this.bar.update(this.state.records, this.payload());
      return;
    }
    const now = performance.now();
    if (now - this.lastLog >= (this.options.intervalMs ?? 5000)) {
      this.lastLog = now;
      this.log();
    }
  }

  stop(): void {
    if (this.stopped || !this.running) return;
    this.stopped = true;
    if (this.bar) {
      this.bar.update(this.state.records, this.payload());
      this.bar.stop();
      this.bar = undefined;
    } else this.log();
  }

  private rate(): number {
    const seconds = (performance.now() - this.startedAt) / 1000;
    return seconds > 0 ? this.state.records / seconds : 0;
  }

  private payload() {
    return { mb: mb(this.state.bytes), totalMb: mb(this.state.totalBytes), rate: Math.round(this.rate()), messages: this.state.messages };
  }

  private log(): void {
    const rate = this.rate();
    const left = this.state.totalRecords - this.state.records;
    this.options.logger.info(
      {
        records: this.state.records,
        totalRecords: this.state.totalRecords,
        mb: Number(mb(this.state.bytes)),
        totalMb: Number(mb(this.state.totalBytes)),
        messages: this.state.messages,
        recordsPerSecond: Math.round(rate),
        etaSeconds: rate > 0 ? Math.round(left / rate) : null,
      },
      `${this.options.label}: ${this.state.records}/${this.state.totalRecords} records, ${mb(this.state.bytes)}/${mb(this.state.totalBytes)} MB`,
    );
  }
}
