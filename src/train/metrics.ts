// RUN_DIR/metrics.jsonl: one JSON object per line, appended as training goes. Training lines hold
// step, tokens, loss, lr, grad_norm, tokens_per_s, seconds and the objective's extras (e.g. kl);
// evaluation lines add "split": "validation". A checkpoint records the file's length (bytes and
// lines) after fsync; a resume cuts the file back to that length, so steps logged after the
// checkpoint (and a half-written last line after kill -9) are dropped and logged again once.
import fs from 'node:fs';
import { KompresorError } from '../errors.ts';

export type MetricsLine = Record<string, number | string>;

export interface MetricsPosition { bytes: number; lines: number }

export class MetricsLog {
  private constructor(readonly path: string, private fd: number, private pos: MetricsPosition) {}

  /** A new, empty log (an existing file is replaced). */
  static create(path: string): MetricsLog {
    return new MetricsLog(path, fs.openSync(path, 'w'), { bytes: 0, lines: 0 });
  }

  /** Reopens a log cut back to a checkpoint's position; refuses a file that no longer matches it. */
  static resume(path: string, at: MetricsPosition): MetricsLog {
    const size = fs.existsSync(path) ? fs.statSync(path).size : -1;
    const head = size >= at.bytes ? readHead(path, at.bytes) : null;
    const lines = head ? countNewlines(head) : -1;
    if (!head || lines !== at.lines) {
      throw new KompresorError({ code: 'input_invalid', where: path, rule: 'the metrics log must still hold what was logged up to the checkpoint',
        expected: `${at.lines} lines in the first ${at.bytes} bytes`, found: size < 0 ? 'no file' : head ? `${lines} lines` : `${size} bytes`,
        hint: 'the file was edited or replaced; restore it or move it away to start a new log' });
    }
    fs.truncateSync(path, at.bytes);
    return new MetricsLog(path, fs.openSync(path, 'a'), { ...at });
  }

  append(line: MetricsLine): void {
    const bytes = Buffer.from(JSON.stringify(line) + '\n', 'utf8');
    fs.writeSync(this.fd, bytes);
    this.pos.bytes += bytes.length;
    this.pos.lines++;
  }

  /** Flushes to disk and returns the position a checkpoint records. */
  sync(): MetricsPosition {
    fs.fsyncSync(this.fd);
    return { ...this.pos };
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Every complete line of a metrics log (a torn last line is skipped). */
export function readMetrics(path: string): MetricsLine[] {
  if (!fs.existsSync(path)) return [];
  const out: MetricsLine[] = [];
  for (const line of fs.readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try { out.push(JSON.parse(line) as MetricsLine); } catch { /* torn by a kill; resume cuts it */ }
  }
  return out;
}

function readHead(path: string, bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  const fd = fs.openSync(path, 'r');
  try {
    let done = 0;
    while (done < bytes) {
      const n = fs.readSync(fd, buf, done, bytes - done, done);
      if (n === 0) break;
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

function countNewlines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n;
}
