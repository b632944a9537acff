// Progress for long work, on stderr (stdout stays free for --json output): a redrawn bar with
// rate and ETA (cli-progress) on a terminal; when stderr is not a terminal (CI, pipes, log files)
// a plain line every few seconds and one at the end, e.g.
//   train 120/1000 steps | 3.10 steps/s | ETA 4m44s | loss 2.913 | lr 3.0e-4
// `extra` is a template whose {name} fields come from update(); `start` makes the rate and ETA of
// a resumed job count only the work done in this session.
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
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
}

export function progressBar(label: string, total: number, unit = 'steps', extra = '', o: ProgressOptions = {}): Progress {
  const plain = o.plain ?? !process.stderr.isTTY;
  return plain ? plainLines(label, total, unit, extra, o) : terminalBar(label, total, unit, extra, o.start ?? 0);
}

function terminalBar(label: string, total: number, unit: string, extra: string, start: number): Progress {
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted}${extra ? ' | ' + extra : ''}`,
    barsize: 24,
    stream: process.stderr,
    etaBuffer: 20,
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  const t0 = performance.now();
  bar.start(total, start, { rate: '-' });
  return {
    update(done, fields = {}) {
      const s = (performance.now() - t0) / 1000;
      bar.update(done, { rate: s > 0 ? ((done - start) / s).toFixed(2) : '-', ...fields });
    },
    stop() { bar.stop(); },
  };
}

function plainLines(label: string, total: number, unit: string, extra: string, o: ProgressOptions): Progress {
  const start = o.start ?? 0, every = o.plainEveryMs ?? 5000;
  const write = o.write ?? ((line: string) => { process.stderr.write(line + '\n'); });
  const t0 = performance.now();
  let last = { done: start, fields: {} as Record<string, string | number>, printedAt: t0, printed: start };
  const line = () => {
    const s = (performance.now() - t0) / 1000, rate = s > 0 ? (last.done - start) / s : 0;
    const eta = rate > 0 ? formatSeconds((total - last.done) / rate) : '-';
    const fields = extra.replace(/\{(\w+)\}/g, (m, k: string) => (k in last.fields ? String(last.fields[k]) : m));
    return `${label} ${last.done}/${total} ${unit} | ${rate.toFixed(2)} ${unit}/s | ETA ${eta}${extra ? ' | ' + fields : ''}`;
  };
  return {
    update(done, fields = {}) {
      last = { ...last, done, fields: { ...last.fields, ...fields } };
      const now = performance.now();
      if (now - last.printedAt >= every) { write(line()); last.printedAt = now; last.printed = done; }
    },
    stop() { if (last.printed !== last.done) write(line()); },
  };
}

/** 2.34 -> "2.3s", 75 -> "1m15s", 4000 -> "1h6m40s". */
export function formatSeconds(sec: number): string {
  if (sec < 9.95) return `${Math.max(0, sec).toFixed(1)}s`;
  const s = Math.max(0, Math.round(sec));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h${m}m${r}s` : m > 0 ? `${m}m${r}s` : `${r}s`;
}
