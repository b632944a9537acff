// A dependency-free SVG heatmap for reports (attention-head importance, layers × heads): one cell
// per value on a sequential colour scale (viridis, readable in grey and with the common
// colour-vision deficiencies), a colour-scale legend with nice ticks, optional separators between
// column groups (KV groups), and marked cells (pruned heads) faded and crossed out.
// Output is a standalone, well-formed SVG document; all text is XML-escaped.
// Limits: cells shrink to fit ~640 × 520 pixels (at least 3 px), so a few hundred rows or columns
// at most; with many rows or columns only every k-th name is written (each cell keeps a <title>).
import { niceTicks, linearScale, tickFormatter, esc, fmt } from './svg_plot.ts';

export interface HeatmapOptions {
  title: string;
  /** Axis titles: rows run down, columns across. */
  rowLabel: string;
  colLabel: string;
  /** [rows][cols] */
  values: number[][];
  /** Default: "0", "1", ... */
  rowNames?: string[];
  colNames?: string[];
  /** [rows][cols]: cells to fade and cross out (e.g. pruned heads); absent = none. */
  marked?: boolean[][];
  /** Legend text for marked cells (default "pruned"). */
  markedLabel?: string;
  /** A separator line after every `colGroup` columns (e.g. the query heads of one KV group). */
  colGroup?: number;
  /** Title of the colour scale. */
  valueLabel: string;
  /** Colour-scale range; default: the data's min and max. */
  domain?: [number, number];
}

/** Viridis at nine evenly spaced points (matplotlib's table). */
const VIRIDIS = ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'];

const MARGIN = { left: 64, top: 52, right: 24, bottom: 48 };
const LEGEND_WIDTH = 96;
const MAX_NAMES = 32;

/** The colour of t in [0, 1] on the viridis scale (clamped; linear between the nine stops). */
export function viridis(t: number): string {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  const a = hexRgb(VIRIDIS[i]), b = hexRgb(VIRIDIS[i + 1]);
  return '#' + a.map((c, k) => Math.round(c + (b[k] - c) * f).toString(16).padStart(2, '0')).join('');
}

/** Cell sizes: as large as fits the target area, within [3, 40] × [3, 28] pixels. */
export function cellSize(rows: number, cols: number): { w: number; h: number } {
  return {
    w: Math.max(3, Math.min(40, Math.floor(640 / Math.max(1, cols)))),
    h: Math.max(3, Math.min(28, Math.floor(520 / Math.max(1, rows)))),
  };
}

/**
 * The SVG document. Cell (r, c) is a <rect class="cell"> with data-row, data-col and data-value at
 * x = left + c·w, y = top + r·h; a marked cell is followed by a <g class="mark"> over it.
 */
export function heatmap(o: HeatmapOptions): string {
  const R = o.values.length, C = R > 0 ? o.values[0].length : 0;
  const { w, h } = cellSize(R, C);
  const gx = MARGIN.left, gy = MARGIN.top, gw = C * w, gh = R * h;
  const domain = o.domain ?? rangeOf(o.values);
  const t = linearScale(domain, [0, 1]);
  const anyMarked = o.marked?.some((row) => row.some(Boolean)) ?? false;
  const legendH = Math.min(Math.max(gh, 120), 260), markY = gy + legendH + 36;
  const W = Math.max(gx + gw + LEGEND_WIDTH + MARGIN.right, 8 * o.title.length + 40);   // room for the title
  const H = Math.max(gy + gh + MARGIN.bottom, (anyMarked ? markY + 14 : gy + legendH) + 16);
  const parts = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text class="title" x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
    `<g class="cells">`,
  ];
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      const v = o.values[r][c], x = gx + c * w, y = gy + r * h;
      const name = `${o.rowLabel} ${o.rowNames?.[r] ?? r}, ${o.colLabel} ${o.colNames?.[c] ?? c}`;
      const isMarked = o.marked?.[r]?.[c] === true;
      parts.push(`<rect class="cell" data-row="${r}" data-col="${c}" data-value="${esc(String(v))}" x="${x}" y="${y}" width="${w}" height="${h}" `
        + `fill="${Number.isFinite(v) ? viridis(t(v)) : '#cccccc'}"><title>${esc(`${name}: ${Number.isFinite(v) ? v.toPrecision(4) : String(v)}${isMarked ? ` (${o.markedLabel ?? 'pruned'})` : ''}`)}</title></rect>`);
      if (isMarked) parts.push(mark(x, y, w, h));
    }
  }
  parts.push(`</g>`);
  if (o.colGroup && o.colGroup < C) {
    for (let c = o.colGroup; c < C; c += o.colGroup) {
      parts.push(`<line class="group" x1="${gx + c * w}" y1="${gy}" x2="${gx + c * w}" y2="${gy + gh}" stroke="#ffffff" stroke-width="2"/>`);
    }
  }
  parts.push(
    `<rect class="grid-area" x="${gx}" y="${gy}" width="${gw}" height="${gh}" fill="none" stroke="#444444"/>`,
    ...names(R, h, (r) => o.rowNames?.[r] ?? String(r), (r, text) => `<text class="row-name" x="${gx - 6}" y="${fmt(gy + (r + 0.5) * h)}" text-anchor="end" dominant-baseline="middle">${text}</text>`),
    ...names(C, w, (c) => o.colNames?.[c] ?? String(c), (c, text) => `<text class="col-name" x="${fmt(gx + (c + 0.5) * w)}" y="${gy + gh + 16}" text-anchor="middle">${text}</text>`),
    `<text class="x-label" x="${fmt(gx + gw / 2)}" y="${H - 8}" text-anchor="middle">${esc(o.colLabel)}</text>`,
    `<text class="y-label" transform="translate(14 ${fmt(gy + gh / 2)}) rotate(-90)" text-anchor="middle">${esc(o.rowLabel)}</text>`,
    ...colorLegend(domain, gx + gw + 24, gy, legendH, o.valueLabel),
    ...(anyMarked ? markLegend(gx + gw + 24, markY, o.markedLabel ?? 'pruned') : []),
    `</svg>`,
  );
  return parts.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// parts

/** A marked cell: faded by a white veil, crossed out corner to corner. */
function mark(x: number, y: number, w: number, h: number, cls = 'mark'): string {
  return `<g class="${cls}"><rect x="${x}" y="${y}" width="${w}" height="${h}" fill="#ffffff" fill-opacity="0.55"/>`
    + `<path d="M${x} ${y}L${x + w} ${y + h}M${x + w} ${y}L${x} ${y + h}" stroke="#000000" stroke-width="1"/></g>`;
}

/** Every k-th name so that at most MAX_NAMES are written (and never closer than 12 px). */
function names(n: number, size: number, name: (i: number) => string, draw: (i: number, text: string) => string): string[] {
  const every = Math.max(Math.ceil(n / MAX_NAMES), Math.ceil(12 / size));
  const out: string[] = [];
  for (let i = 0; i < n; i += every) out.push(draw(i, esc(name(i))));
  return out;
}

/** A vertical gradient bar (high values on top) with nice ticks and a title. */
function colorLegend(domain: [number, number], x: number, y: number, height: number, label: string): string[] {
  const stops = VIRIDIS.map((c, i) => `<stop offset="${fmt((100 * i) / (VIRIDIS.length - 1))}%" stop-color="${c}"/>`);
  const sy = linearScale(domain, [y + height, y]);
  const ticks = niceTicks(domain[0], domain[1], 5), text = tickFormatter(ticks);
  return [
    `<g class="color-legend">`,
    `<defs><linearGradient id="heat-scale" x1="0" y1="1" x2="0" y2="0">${stops.join('')}</linearGradient></defs>`,
    `<text x="${x}" y="${y - 8}">${esc(label)}</text>`,
    `<rect x="${x}" y="${y}" width="14" height="${height}" fill="url(#heat-scale)" stroke="#444444"/>`,
    ...ticks.map((v) => `<g class="legend-tick"><line x1="${x + 14}" y1="${fmt(sy(v))}" x2="${x + 19}" y2="${fmt(sy(v))}" stroke="#444444"/>`
      + `<text x="${x + 22}" y="${fmt(sy(v))}" dominant-baseline="middle">${esc(text(v))}</text></g>`),
    `</g>`,
  ];
}

function markLegend(x: number, y: number, label: string): string[] {
  return [`<g class="mark-legend"><rect x="${x}" y="${y}" width="14" height="14" fill="#7f7f7f"/>`,
    mark(x, y, 14, 14, 'mark-swatch'), `<text x="${x + 20}" y="${y + 7}" dominant-baseline="middle">${esc(label)}</text></g>`];
}

function rangeOf(values: number[][]): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const row of values) for (const v of row) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return lo > hi ? [0, 1] : [lo, hi];
}

function hexRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}
