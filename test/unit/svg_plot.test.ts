// svg_plot: well-formed XML (checked by the small strict parser in test/xml_check.ts), points
// mapped linearly onto the plot area with y pointing up, nice ticks, escaping, broken lines at
// non-finite values, and a legend entry per series.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linePlot, niceTicks, linearScale, downsample } from '../../src/report/svg_plot.ts';
import { assertWellFormed } from '../xml_check.ts';

const pts = (s: string) => s.trim().split(/\s+/).map((p) => p.split(',').map(Number) as [number, number]);

test('the checker itself rejects broken XML', () => {
  assert.throws(() => assertWellFormed('<svg><g></svg>'));
  assert.throws(() => assertWellFormed('<svg><text>a < b</text></svg>'));
  assert.throws(() => assertWellFormed('<svg><text>R&D</text></svg>'));
  assert.throws(() => assertWellFormed('<svg x=1></svg>'));
  assert.doesNotThrow(() => assertWellFormed('<?xml version="1.0"?>\n<svg a="1"><text>a &lt; b</text><g/></svg>'));
});

test('data points land on the plot area: domain corners on its corners, y upwards', () => {
  const svg = linePlot({
    title: 't', xLabel: 'x', yLabel: 'y', width: 500, height: 300, xDomain: [0, 10], yDomain: [2, 4],
    series: [{ name: 'a', points: [[0, 2], [5, 3], [10, 4], [2.5, 2.5]] }],
  });
  const els = assertWellFormed(svg);
  const area = els.find((e) => e.attrs.class === 'plot-area')!.attrs;
  const [x, y, w, h] = [area.x, area.y, area.width, area.height].map(Number);
  const line = pts(els.find((e) => e.name === 'polyline')!.attrs.points);
  assert.deepEqual(line[0], [x, y + h]);                       // (0, 2): bottom left
  assert.deepEqual(line[1], [x + w / 2, y + h / 2]);           // (5, 3): centre
  assert.deepEqual(line[2], [x + w, y]);                       // (10, 4): top right
  assert.deepEqual(line[3], [x + w / 4, y + (3 * h) / 4]);     // (2.5, 2.5)
});

test('axes have nice ticks with labels inside the data range; labels and title are present', () => {
  const svg = linePlot({ title: 'Loss', xLabel: 'step', yLabel: 'nats', series: [{ name: 'train', points: [[1, 3.7], [200, 2.13]] }] });
  const els = assertWellFormed(svg);
  const xt = els.filter((e) => e.name === 'g' && e.attrs.class === 'x-tick').length;
  const yt = els.filter((e) => e.name === 'g' && e.attrs.class === 'y-tick').length;
  assert.ok(xt >= 3 && xt <= 11 && yt >= 3 && yt <= 11, `${xt} x ticks, ${yt} y ticks`);
  assert.match(svg, />Loss<\/text>/);
  assert.match(svg, />step<\/text>/);
  assert.match(svg, />nats<\/text>/);
  assert.match(svg, />200<\/text>/);   // the x domain ends on a tick at or after the last point
});

test('niceTicks steps by 1, 2 or 5 times a power of ten; linearScale maps ends to ends', () => {
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(2.13, 3.7), [2.2, 2.4, 2.6, 2.8, 3, 3.2, 3.4, 3.6]);
  assert.deepEqual(niceTicks(0, 1e-3, 4), [0, 0.0002, 0.0004, 0.0006, 0.0008, 0.001]);
  assert.deepEqual(niceTicks(-50, 50, 2), [-50, 0, 50]);
  const s = linearScale([10, 20], [100, 0]);
  assert.equal(s(10), 100);
  assert.equal(s(20), 0);
  assert.equal(s(12.5), 75);
  assert.equal(linearScale([1, 1], [0, 8])(1), 4);
});

test('several series get distinct colours and a legend entry each; text is escaped', () => {
  const svg = linePlot({
    title: 'a <b> & "c"', xLabel: 'x', yLabel: 'y',
    series: [{ name: 'train & co', points: [[0, 1], [1, 2]] }, { name: 'val<1>', points: [[0, 2], [1, 1]], dashed: true, markers: true }],
  });
  const els = assertWellFormed(svg);
  const lines = els.filter((e) => e.name === 'polyline');
  assert.equal(lines.length, 2);
  assert.notEqual(lines[0].attrs.stroke, lines[1].attrs.stroke);
  assert.equal(lines[1].attrs['stroke-dasharray'], '6 4');
  assert.equal(els.filter((e) => e.name === 'circle').length, 2, 'markers on the second series only');
  assert.match(svg, /a &lt;b&gt; &amp; &quot;c&quot;/);
  assert.match(svg, /<text[^>]*>train &amp; co<\/text>/);
  assert.match(svg, /<text[^>]*>val&lt;1&gt;<\/text>/);
});

test('non-finite values split a line; a lone point becomes a dot; an empty plot is still valid', () => {
  const svg = linePlot({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: [[0, 1], [1, 2], [2, NaN], [3, 1], [4, 2], [5, Infinity], [6, 3]] }] });
  const els = assertWellFormed(svg);
  assert.deepEqual(els.filter((e) => e.name === 'polyline').map((e) => pts(e.attrs.points).length), [2, 2]);
  assert.equal(els.filter((e) => e.name === 'circle').length, 1);
  assert.doesNotMatch(svg, /NaN|Infinity/);
  assert.doesNotThrow(() => assertWellFormed(linePlot({ title: 'empty', xLabel: 'x', yLabel: 'y', series: [] })));
  assert.doesNotThrow(() => assertWellFormed(linePlot({ title: 'flat', xLabel: 'x', yLabel: 'y', series: [{ name: 'c', points: [[0, 5], [1, 5]] }] })));
});

test('downsample keeps both ends and evenly spaced points', () => {
  const p = Array.from({ length: 101 }, (_, i) => [i, i * i] as [number, number]);
  const d = downsample(p, 11);
  assert.equal(d.length, 11);
  assert.deepEqual(d.map((q) => q[0]), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
  assert.equal(downsample(p, 500), p);
});
