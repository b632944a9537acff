// A dependency-free SVG bar chart for reports (per-layer importance, with the layers a plan drops
// highlighted): one bar per value, in order, on a linear y axis that always includes 0 (so
// negative values, e.g. a loss that fell when a layer was skipped, hang below the baseline).
// Same frame, ticks and escaping as svg_plot.ts; output is a standalone, well-formed SVG document.
// Limits: one series; with many bars only every k-th label is written (each bar keeps a <title>).
import { PALETTE, niceAxis, linearScale, yTicks, esc, fmt, type Area } from './svg_plot.ts';

export interface Bar {
  label: string;
  value: number;
  /** Drawn in the highlight colour (e.g. a layer the plan drops). */
  highlight?: boolean;
}

export interface BarChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  bars: Bar[];
  width?: number;
  height?: number;
  color?: string;
  highlightColor?: string;
  /** Legend names of plain and highlighted bars, e.g. ['kept', 'dropped']; no legend when absent. */
  legend?: [plain: string, highlighted: string];
  /** Fixed y range; default: the data and 0, widened to nice ticks. */
  yDomain?: [number, number];
}

const MARGIN = { left: 64, right: 24, top: 36, bottom: 46 };
/** With a legend, the plot starts lower: the legend is one row between the title and the plot. */
const LEGEND_ROW = 20;
/** At most this many x labels; with more bars, every k-th one is labelled. */
const MAX_LABELS = 32;

/**
 * The SVG document. Each bar is a <rect class="bar"> (class "bar highlight" when highlighted)
 * with data-index and data-value, spanning 80% of its slot of the <rect class="plot-area">,
 * from y = 0 to its value.
 */
export function barChart(o: BarChartOptions): string {
  const W = o.width ?? 720, H = o.height ?? 360;
  const top = MARGIN.top + (o.legend ? LEGEND_ROW : 0);
  const area: Area = { x: MARGIN.left, y: top, width: W - MARGIN.left - MARGIN.right, height: H - top - MARGIN.bottom };
  const finite = o.bars.map((b) => b.value).filter(Number.isFinite);
  const yAxis = niceAxis([0, ...finite], o.yDomain);
  const sy = linearScale(yAxis.domain, [area.y + area.height, area.y]);
  const color = o.color ?? PALETTE[0], highlight = o.highlightColor ?? PALETTE[1];
  const parts = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text class="title" x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
    ...yTicks(yAxis.ticks, sy, area),
    `<rect class="plot-area" x="${area.x}" y="${area.y}" width="${area.width}" height="${area.height}" fill="none" stroke="#444444"/>`,
    `<g class="bars">`,
    ...bars(o.bars, area, sy, color, highlight),
    `</g>`,
    `<line class="baseline" x1="${area.x}" y1="${fmt(sy(0))}" x2="${area.x + area.width}" y2="${fmt(sy(0))}" stroke="#444444"/>`,
    ...xLabels(o.bars, area),
    `<text class="x-label" x="${fmt(area.x + area.width / 2)}" y="${H - 8}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text class="y-label" transform="translate(14 ${fmt(area.y + area.height / 2)}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
    ...(o.legend ? legend(o.legend, [color, highlight], area) : []),
    `</svg>`,
  ];
  return parts.join('\n') + '\n';
}

/** Left edge and width of bar i of n: the middle 80% of its slot. */
export function barSlot(i: number, n: number, a: Area): { x: number; width: number } {
  const slot = a.width / Math.max(1, n);
  return { x: a.x + slot * (i + 0.1), width: slot * 0.8 };
}

function bars(list: Bar[], a: Area, sy: (v: number) => number, color: string, highlight: string): string[] {
  const y0 = sy(0);
  return list.map((b, i) => {
    const { x, width } = barSlot(i, list.length, a);
    const v = Number.isFinite(b.value) ? b.value : 0;   // a non-finite value draws nothing
    const top = Math.min(y0, sy(v)), height = Math.abs(sy(v) - y0);
    return `<rect class="bar${b.highlight ? ' highlight' : ''}" data-index="${i}" data-value="${esc(String(b.value))}" `
      + `x="${fmt(x)}" y="${fmt(top)}" width="${fmt(width)}" height="${fmt(height)}" fill="${esc(b.highlight ? highlight : color)}">`
      + `<title>${esc(`${b.label}: ${b.value.toPrecision(4)}`)}</title></rect>`;
  });
}

function xLabels(list: Bar[], a: Area): string[] {
  const every = Math.ceil(list.length / MAX_LABELS), bottom = a.y + a.height;
  const out: string[] = [];
  for (let i = 0; i < list.length; i += every) {
    const { x, width } = barSlot(i, list.length, a);
    out.push(`<text class="x-tick" x="${fmt(x + width / 2)}" y="${bottom + 16}" text-anchor="middle">${esc(list[i].label)}</text>`);
  }
  return out;
}

/** One row above the plot area, right-aligned: a swatch and a name per entry. */
function legend(names: [string, string], colors: [string, string], a: Area): string[] {
  const widths = names.map((n) => 24 + n.length * 7 + 12);
  let x = a.x + a.width - widths.reduce((s, w) => s + w, 0);
  const y = a.y - LEGEND_ROW / 2 - 2;
  return [
    `<g class="legend">`,
    ...names.map((n, i) => {
      const item = `<rect x="${x}" y="${y - 5}" width="18" height="10" fill="${esc(colors[i])}"/>`
        + `<text x="${x + 24}" y="${y}" dominant-baseline="middle">${esc(n)}</text>`;
      x += widths[i];
      return item;
    }),
    `</g>`,
  ];
}
