// A progress bar with rate and ETA for long work (cli-progress on stderr). When stderr is not a
// terminal (CI, pipes), it prints a plain line every few seconds instead of redrawing.
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export function progressBar(label: string, total: number, unit = 'steps', extra = ''): Progress {
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted}${extra ? ' | ' + extra : ''}`,
    barsize: 24,
    stream: process.stderr,
    noTTYOutput: !process.stderr.isTTY,
    notTTYSchedule: 5000,
    etaBuffer: 20,
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  const t0 = performance.now();
  bar.start(total, 0, { rate: '-' });
  return {
    update(done, fields = {}) {
      const s = (performance.now() - t0) / 1000;
      bar.update(done, { rate: s > 0 ? (done / s).toFixed(2) : '-', ...fields });
    },
    stop() { bar.stop(); },
  };
}
