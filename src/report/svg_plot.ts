// A small, dependency-free SVG line plot for run reports (training curves, pruning sweeps,
// evaluation tables): a title, axes with "nice" ticks (1-2-5 steps) and labels, any number of
// series with a legend. Points that are not finite break a line instead of bending it. Output is
// a standalone, well-formed SVG document; all text is XML-escaped.
// Limits: linear axes only; every point is drawn, so downsample very long series first
// (downsample() keeps the endpoints and evenly spaced points). The axis and text helpers
// (niceAxis, yTicks, tickFormatter, esc, fmt) are shared with svg_bar.ts and svg_heatmap.ts.

export interface Series {
  name: string;
  /** (x, y) pairs; non-finite values split the line. */
  points: [number, number][];
  /** CSS colour; default from the palette by series index. */
  color?: string;
  dashed?: boolean;
  /** Draw a dot at every point (useful for sparse series such as validation). */
  markers?: boolean;
}

export interface LinePlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  /** Fixed axis ranges; default: the data range widened to nice ticks. */
  xDomain?: [number, number];
  yDomain?: [number, number];
}

/** Okabe-Ito: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

const MARGIN = { left: 64, right: 24, top: 36, bottom: 46 };

export interface Area { x: number; y: number; width: number; height: number }

/** The SVG document. The plot area is the <rect class="plot-area">; data map linearly onto it. */
export function linePlot(o: LinePlotOptions): string {
  const W = o.width ?? 720, H = o.height ?? 420;
  const area: Area = { x: MARGIN.left, y: MARGIN.top, width: W - MARGIN.left - MARGIN.right, height: H - MARGIN.top - MARGIN.bottom };
  const xs = o.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = o.series.flatMap((s) => s.points.map((p) => p[1]));
  const xAxis = niceAxis(xs, o.xDomain), yAxis = niceAxis(ys, o.yDomain);
  const sx = linearScale(xAxis.domain, [area.x, area.x + area.width]);
  const sy = linearScale(yAxis.domain, [area.y + area.height, area.y]); // y grows downwards in SVG
  const parts = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text class="title" x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
    `<rect class="plot-area" x="${area.x}" y="${area.y}" width="${area.width}" height="${area.height}" fill="none" stroke="#444444"/>`,
    ...xTicks(xAxis.ticks, sx, area), ...yTicks(yAxis.ticks, sy, area),
    `<text class="x-label" x="${fmt(area.x + area.width / 2)}" y="${H - 8}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text class="y-label" transform="translate(14 ${fmt(area.y + area.height / 2)}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
    `<defs><clipPath id="plot-clip"><rect x="${area.x}" y="${area.y}" width="${area.width}" height="${area.height}"/></clipPath></defs>`,
    `<g class="series" clip-path="url(#plot-clip)">`,
    ...o.series.flatMap((s, i) => seriesPaths(s, colorOf(s, i), sx, sy)),
    `</g>`,
    ...legend(o.series, area),
    `</svg>`,
  ];
  return parts.join('\n') + '\n';
}

/** Maps [d0, d1] onto [r0, r1]; a degenerate domain maps everything to the middle. */
export function linearScale(domain: [number, number], range: [number, number]): (v: number) => number {
  const [d0, d1] = domain, [r0, r1] = range;
  if (d1 === d0) return () => (r0 + r1) / 2;
  return (v) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
}

/** About `count` round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step = niceStep((hi - lo) / Math.max(1, count));
  const first = Math.ceil(lo / step - 1e-9), last = Math.floor(hi / step + 1e-9);
  const out: number[] = [];
  for (let k = first; k <= last; k++) out.push(roundTo(k * step, step));
  return out;
}

/** At most `max` points: the first, the last and evenly spaced ones between. */
export function downsample(points: [number, number][], max: number): [number, number][] {
  if (points.length <= max || max < 2) return points;
  const out: [number, number][] = [];
  for (let i = 0; i < max; i++) out.push(points[Math.round((i * (points.length - 1)) / (max - 1))]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// axes

/** The 1-2-5 step nearest to `raw` on a log scale (the thresholds are the geometric midpoints, as in d3). */
function niceStep(raw: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f >= Math.sqrt(50) ? 10 : f >= Math.sqrt(10) ? 5 : f >= Math.sqrt(2) ? 2 : 1) * p;
}

function roundTo(v: number, step: number): number {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(v.toFixed(Math.min(20, decimals)));
}

/** The domain (data range, widened to whole ticks unless fixed) and its ticks. */
export function niceAxis(values: number[], fixed?: [number, number]): { domain: [number, number]; ticks: number[] } {
  if (fixed) return { domain: fixed, ticks: niceTicks(fixed[0], fixed[1]) };
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo > hi) { lo = 0; hi = 1; } // no finite data: an empty unit frame
  if (hi === lo) { const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1; lo -= pad; hi += pad; }
  const step = niceStep((hi - lo) / 5);
  const domain: [number, number] = [Math.floor(lo / step + 1e-9) * step, Math.ceil(hi / step - 1e-9) * step];
  return { domain, ticks: niceTicks(domain[0], domain[1]) };
}

function xTicks(ticks: number[], sx: (v: number) => number, a: Area): string[] {
  const bottom = a.y + a.height, label = tickFormatter(ticks);
  return ticks.map((t) => {
    const x = fmt(sx(t));
    return `<g class="x-tick"><line x1="${x}" y1="${a.y}" x2="${x}" y2="${bottom}" stroke="#e5e5e5"/>` +
      `<line x1="${x}" y1="${bottom}" x2="${x}" y2="${bottom + 5}" stroke="#444444"/>` +
      `<text x="${x}" y="${bottom + 18}" text-anchor="middle">${esc(label(t))}</text></g>`;
  });
}

export function yTicks(ticks: number[], sy: (v: number) => number, a: Area): string[] {
  const label = tickFormatter(ticks);
  return ticks.map((t) => {
    const y = fmt(sy(t));
    return `<g class="y-tick"><line x1="${a.x}" y1="${y}" x2="${a.x + a.width}" y2="${y}" stroke="#e5e5e5"/>` +
      `<line x1="${a.x - 5}" y1="${y}" x2="${a.x}" y2="${y}" stroke="#444444"/>` +
      `<text x="${a.x - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${esc(label(t))}</text></g>`;
  });
}

/** One format for all ticks of an axis: enough decimals for the step, exponents when huge or tiny. */
export function tickFormatter(ticks: number[]): (v: number) => string {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(ticks[0]) || 1;
  const big = Math.max(...ticks.map(Math.abs));
  if (big >= 1e6 || (big > 0 && big < 1e-3)) return (v) => (v === 0 ? '0' : v.toExponential(1));
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return (v) => v.toFixed(decimals);
}

// ---------------------------------------------------------------------------------------------
// series and legend

function seriesPaths(s: Series, color: string, sx: (v: number) => number, sy: (v: number) => number): string[] {
  const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
  const out: string[] = [];
  for (const run of finiteRuns(s.points)) {
    if (run.length > 1) {
      const pts = run.map(([x, y]) => `${fmt(sx(x))},${fmt(sy(y))}`).join(' ');
      out.push(`<polyline data-series="${esc(s.name)}" points="${pts}" fill="none" stroke="${esc(color)}" stroke-width="1.5"${dash}/>`);
    }
    if (s.markers || run.length === 1) {
      for (const [x, y] of run) out.push(`<circle data-series="${esc(s.name)}" cx="${fmt(sx(x))}" cy="${fmt(sy(y))}" r="2.5" fill="${esc(color)}"/>`);
    }
  }
  return out;
}

/** Consecutive finite points; a NaN or Inf ends a run. */
function finiteRuns(points: [number, number][]): [number, number][][] {
  const runs: [number, number][][] = [[]];
  for (const p of points) {
    if (Number.isFinite(p[0]) && Number.isFinite(p[1])) runs[runs.length - 1].push(p);
    else if (runs[runs.length - 1].length > 0) runs.push([]);
  }
  return runs.filter((r) => r.length > 0);
}

function legend(series: Series[], a: Area): string[] {
  if (series.length === 0) return [];
  const widest = Math.max(...series.map((s) => s.name.length));
  const w = 34 + widest * 7, h = 8 + series.length * 16;
  const x = a.x + a.width - w - 8, y = a.y + 8;
  return [
    `<g class="legend">`,
    `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="#ffffff" fill-opacity="0.85" stroke="#bbbbbb"/>`,
    ...series.map((s, i) => {
      const ly = y + 12 + i * 16, color = esc(colorOf(s, i));
      return `<line x1="${x + 6}" y1="${ly}" x2="${x + 24}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>` +
        `<text x="${x + 30}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`;
    }),
    `</g>`,
  ];
}

function colorOf(s: Series, i: number): string { return s.color ?? PALETTE[i % PALETTE.length]; }

/** Coordinates with two decimals, without trailing zeros. */
export function fmt(v: number): string { return String(Math.round(v * 100) / 100); }

/** Text and attribute values, XML-escaped. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}
