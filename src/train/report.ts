// RUN_DIR/report/: the training curves as SVG, redrawn from metrics.jsonl at every checkpoint and
// at the end of a run. loss.svg holds the training and validation loss against the step; each
// objective extra (e.g. kl) gets its own <name>.svg the same way. Long runs are downsampled to
// MAX_POINTS per series.
import fs from 'node:fs';
import nodePath from 'node:path';
import { linePlot, downsample, type Series } from '../report/svg_plot.ts';
import { readMetrics, type MetricsLine } from './metrics.ts';
import { writeFileAtomic } from '../io/atomic.ts';

const MAX_POINTS = 2000;
/** Keys of a training line that are not curves of their own. */
const BOOKKEEPING = new Set(['step', 'tokens', 'loss', 'lr', 'grad_norm', 'tokens_per_s', 'seconds', 'split', 'batches']);

/** Writes the report plots; returns the files written. */
export function writeTrainingReport(runDir: string, title: string): string[] {
  const lines = readMetrics(nodePath.join(runDir, 'metrics.jsonl'));
  const dir = nodePath.join(runDir, 'report');
  fs.mkdirSync(dir, { recursive: true });
  const train = lines.filter((l) => l.split === undefined);
  const valid = lines.filter((l) => l.split === 'validation');
  const extras = new Set<string>();
  for (const l of lines) for (const k of Object.keys(l)) if (!BOOKKEEPING.has(k) && typeof l[k] === 'number') extras.add(k);
  const written: string[] = [];
  for (const key of ['loss', ...[...extras].sort()]) {
    // a key such as "rewards/chosen" names a file (rewards_chosen.svg), never a folder
    const file = nodePath.join(dir, `${key.replace(/[^\w.-]/g, '_')}.svg`);
    writeFileAtomic(file, linePlot({ title: `${title}: ${key}`, xLabel: 'step', yLabel: key, series: curves(key, train, valid) }));
    written.push(file);
  }
  return written;
}

function curves(key: string, train: MetricsLine[], valid: MetricsLine[]): Series[] {
  const pts = (ls: MetricsLine[]) => ls.filter((l) => typeof l[key] === 'number').map((l) => [l.step as number, l[key] as number] as [number, number]);
  const out: Series[] = [];
  const t = pts(train), v = pts(valid);
  if (t.length > 0) out.push({ name: `train ${key}`, points: downsample(t, MAX_POINTS) });
  if (v.length > 0) out.push({ name: `validation ${key}`, points: downsample(v, MAX_POINTS), markers: true, dashed: true });
  return out;
}
