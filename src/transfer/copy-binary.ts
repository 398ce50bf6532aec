/**
 * PostgreSQL's binary COPY format, written straight into Buffers: no text
 * escaping of JSON (every backslash would otherwise be doubled), no
 * timestamp formatting, and the server skips parsing ints and timestamps.
 * jsonb in binary is a version byte (1) followed by the JSON text, which the
 * server parses exactly as it would in text format.
 *
 * https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4
 */

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** 2000-01-01T00:00:00Z in microseconds since 1970: PostgreSQL's timestamp epoch. */
const PG_EPOCH_US = 946_684_800_000_000;
const TWO_32 = 4_294_967_296;

/** Writes rows into Buffers; the stream is HEADER, the rows, TRAILER. */
export class BinaryCopyWriter {
  /** Signature, flags (0) and header extension length (0). */
  static readonly HEADER = Buffer.concat([SIGNATURE, Buffer.alloc(8)]);
  static readonly TRAILER = Buffer.from([0xff, 0xff]);

  private buffer: Buffer;
  private offset = 0;
  private readonly chunks: Buffer[] = [];
  private readonly chunkSize: number;

  constructor(options: { header?: boolean; chunkSize?: number } = {}) {
    this.chunkSize = options.chunkSize ?? 1 << 20;
    this.buffer = Buffer.allocUnsafe(this.chunkSize);
    if (options.header) this.offset = BinaryCopyWriter.HEADER.copy(this.buffer, 0);
  }

  /** Finished chunks since the last call (the current one stays open). */
  take(): Buffer[] {
    return this.chunks.splice(0, this.chunks.length);
  }

  /** The bytes written into the open buffer so far (a view: copy it before writing more). */
  current(): Buffer {
    return this.buffer.subarray(0, this.offset);
  }

  /** Start over, keeping the current buffer (a scratch writer reused per record). */
  reset(): void {
    this.chunks.length = 0;
    this.offset = 0;
  }

  /** The remaining chunks (the trailer is not included). */
  end(): Buffer[] {
    if (this.offset > 0) this.chunks.push(this.buffer.subarray(0, this.offset));
    this.buffer = Buffer.alloc(0);
    this.offset = 0;
    return this.take();
  }

  row(fields: number): void {
    this.ensure(2);
    this.buffer.writeInt16BE(fields, this.offset);
    this.offset += 2;
  }

  null(): void {
    this.ensure(4);
    this.buffer.writeInt32BE(-1, this.offset);
    this.offset += 4;
  }

  text(value: string | null): void {
    if (value === null) {
      this.null();
      return;
    }
    this.ensure(4 + value.length * 3);
    const length = this.buffer.write(value, this.offset + 4, 'utf8');
    this.buffer.writeInt32BE(length, this.offset);
    this.offset += 4 + length;
  }

  jsonb(json: string | null): void {
    if (json === null) {
      this.null();
      return;
    }
    this.ensure(5 + json.length * 3);
    this.buffer[this.offset + 4] = 1; // jsonb binary format version
    const length = this.buffer.write(json, this.offset + 5, 'utf8');
    this.buffer.writeInt32BE(length + 1, this.offset);
    this.offset += 5 + length;
  }

  int4(value: number): void {
    this.ensure(8);
    this.buffer.writeInt32BE(4, this.offset);
    this.buffer.writeInt32BE(value, this.offset + 4);
    this.offset += 8;
  }

  /** timestamptz from epoch microseconds (exact: 64-bit as two 32-bit halves, no BigInt). */
  timestamptz(epochUs: number): void {
    this.ensure(12);
    const value = epochUs - PG_EPOCH_US;
    const high = Math.floor(value / TWO_32);
    this.buffer.writeInt32BE(8, this.offset);
    this.buffer.writeInt32BE(high, this.offset + 4);
    this.buffer.writeUInt32BE(value - high * TWO_32, this.offset + 8);
    this.offset += 12;
  }

  private ensure(bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return;
    if (this.offset > 0) this.chunks.push(this.buffer.subarray(0, this.offset));
    this.buffer = Buffer.allocUnsafe(Math.max(this.chunkSize, bytes));
    this.offset = 0;
  }
}
