// Progress for long work, on stderr (stdout stays free for --json output): a redrawn bar with
// rate and ETA (cli-progress) on a terminal; when stderr is not a terminal (CI, pipes, log files)
// a plain line every few seconds and one at the end, e.g.
//   train 120/1000 steps | 3.10 steps/s | ETA 4m44s | loss 2.913 | lr 3.0e-4
// `extra` is a template whose {name} fields come from update(); `start` makes the rate and ETA of
// a resumed job count only the work done in this session. `hidden` (a command's --json) draws
// nothing on stderr.
// Progress file: when KOMPRESOR_PROGRESS_FILE is set (the pipeline runner sets it for each step),
// every bar, hidden or not, also keeps that file holding its state as one JSON object, rewritten
// atomically at most once a second, when it starts and when it stops, e.g.
//   {"label":"distill","done":45,"total":98,"unit":"steps","rate_per_s":0.9,"eta_s":58.3,"extra":"812 tok/s | loss 0.0229 | lr 3.00e-4"}
// (rate_per_s and eta_s are null before any work of this session; fields not given yet read "-").
// Writing it is best-effort: a failure never stops the work. Nothing of it goes to stdout.
import cliProgress from 'cli-progress';
import { writeFileAtomic } from '../io/atomic.ts';

export const PROGRESS_FILE_ENV = 'KOMPRESOR_PROGRESS_FILE';

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

/** The progress file's content. */
export interface ProgressState {
  label: string;
  done: number;
  total: number;
  unit: string;
  /** Units per second in this session; null before any work was done. */
  rate_per_s: number | null;
  /** Seconds left at that rate; null without a rate. */
  eta_s: number | null;
  /** The extra template filled in ("-" for fields not given yet). */
  extra: string;
}

export interface ProgressOptions {
  /** Work already done before this session (a resumed run); the bar starts there. */
  start?: number;
  /** Interval of the plain lines when stderr is not a terminal (default 5000 ms). */
  plainEveryMs?: number;
  /** Force the plain-line mode (tests); default: when stderr is not a terminal. */
  plain?: boolean;
  /** Where plain lines go (default process.stderr). */
  write?: (line: string) => void;
  /** Nothing on stderr (a command's --json): only the progress file, if there is one. */
  hidden?: boolean;
  /** The progress file (default $KOMPRESOR_PROGRESS_FILE; null or '' for none). */
  file?: string | null;
  /** The clock in milliseconds (tests; default performance.now). */
  now?: () => number;
}

export function progressBar(label: string, total: number, unit = 'steps', extra = '', o: ProgressOptions = {}): Progress {
  const file = o.file === undefined ? process.env[PROGRESS_FILE_ENV] : o.file;
  const parts: Progress[] = [];
  if (!o.hidden) parts.push((o.plain ?? !process.stderr.isTTY) ? plainLines(label, total, unit, extra, o) : terminalBar(label, total, unit, extra, o));
  if (file) parts.push(progressFile(file, label, total, unit, extra, o));
  return parts.length === 1 ? parts[0] : {
    update(done, fields) { for (const p of parts) p.update(done, fields); },
    stop() { for (const p of parts) p.stop(); },
  };
}

/** Where a bar is: the work done, the latest fields, rate and ETA over this session. */
class Tally {
  done: number;
  readonly fields: Record<string, string | number> = {};
  readonly now: () => number;
  private readonly start: number;
  private readonly t0: number;

  constructor(readonly total: number, private readonly extra: string, o: ProgressOptions) {
    this.now = o.now ?? (() => performance.now());
    this.start = this.done = o.start ?? 0;
    this.t0 = this.now();
  }

  update(done: number, fields: Record<string, string | number> = {}): void {
    this.done = done;
    Object.assign(this.fields, fields);
  }

  /** Units per second since the bar was made, counting only this session's work; null before any. */
  rate(): number | null {
    const s = (this.now() - this.t0) / 1000;
    return s > 0 && this.done > this.start ? (this.done - this.start) / s : null;
  }

  /** Seconds left at `r` (default: the rate now). */
  eta(r = this.rate()): number | null {
    return r === null ? null : Math.max(0, (this.total - this.done) / r);
  }

  /** The extra template with the fields filled in; a field not given yet stays {name}, or `missing`. */
  fill(missing?: string): string {
    return this.extra.replace(/\{(\w+)\}/g, (m, k: string) => (k in this.fields ? String(this.fields[k]) : missing ?? m));
  }
}

function terminalBar(label: string, total: number, unit: string, extra: string, o: ProgressOptions): Progress {
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted}${extra ? ' | ' + extra : ''}`,
    barsize: 24,
    stream: process.stderr,
    etaBuffer: 20,
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  const t = new Tally(total, extra, o);
  bar.start(total, t.done, { rate: '-' });
  return {
    update(done, fields = {}) {
      t.update(done, fields);
      bar.update(done, { rate: t.rate()?.toFixed(2) ?? '0.00', ...fields });
    },
    stop() { bar.stop(); },
  };
}

function plainLines(label: string, total: number, unit: string, extra: string, o: ProgressOptions): Progress {
  const t = new Tally(total, extra, o), every = o.plainEveryMs ?? 5000;
  const write = o.write ?? ((line: string) => { process.stderr.write(line + '\n'); });
  let printedAt = t.now(), printed = t.done;
  const line = () => {
    const rate = t.rate(), eta = t.eta(rate);
    return `${label} ${t.done}/${total} ${unit} | ${(rate ?? 0).toFixed(2)} ${unit}/s | ETA ${eta === null ? '-' : formatSeconds(eta)}${extra ? ' | ' + t.fill() : ''}`;
  };
  return {
    update(done, fields) {
      t.update(done, fields);
      const now = t.now();
      if (now - printedAt >= every) { write(line()); printedAt = now; printed = done; }
    },
    stop() { if (printed !== t.done) write(line()); },
  };
}

/** Keeps `file` holding the bar's ProgressState: at the start, at most once a second, at stop. */
function progressFile(file: string, label: string, total: number, unit: string, extra: string, o: ProgressOptions): Progress {
  const t = new Tally(total, extra, o);
  const round = (x: number | null) => (x === null ? null : Number(x.toPrecision(4)));
  let writtenAt = 0;
  const write = () => {
    const rate = t.rate();
    const state: ProgressState = { label, done: t.done, total, unit, rate_per_s: round(rate), eta_s: round(t.eta(rate)), extra: t.fill('-') };
    try { writeFileAtomic(file, JSON.stringify(state) + '\n'); } catch { /* best-effort: e.g. its folder was removed */ }
    writtenAt = t.now();
  };
  write();
  return {
    update(done, fields) {
      t.update(done, fields);
      if (t.now() - writtenAt >= 1000) write();
    },
    stop() { write(); },
  };
}

/** 2.34 -> "2.3s", 75 -> "1m15s", 4000 -> "1h6m40s". */
export function formatSeconds(sec: number): string {
  if (sec < 9.95) return `${Math.max(0, sec).toFixed(1)}s`;
  const s = Math.max(0, Math.round(sec));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h${m}m${r}s` : m > 0 ? `${m}m${r}s` : `${r}s`;
}
