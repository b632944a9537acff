// Jinja templates render in a worker with time, memory and size limits (src/io/template_sandbox.ts),
// fuzz report D5: a chat template `{% for i in range(300000000) %}x{% endfor %}` took the process
// down with a fatal V8 error after 2.4 GB; the same loop in an eval task's doc_to_text, a heap OOM.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { renderSandboxed, TEMPLATE_MAX_CHARS } from '../../src/io/template_sandbox.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { tempDir, throwsWith } from '../helpers.ts';

test('renders as the library does; errors come back as text', () => {
  assert.deepEqual(renderSandboxed('{{ name }}: {% for m in messages %}{{ m.content }};{% endfor %}', { name: 'Ala', messages: [{ content: 'a' }, { content: 'b' }] }), { out: 'Ala: a;b;' });
  assert.deepEqual(renderSandboxed('{{ raise_exception("no system role") }}', {}), { error: 'no system role' });
});

test('an output above the size limit is refused, and the worker keeps serving', () => {
  const grow = '{% set ns = namespace(x="x") %}{% for i in range(25) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}';
  assert.deepEqual(renderSandboxed(grow, {}), { error: `the output has ${2 ** 25} characters, more than the limit of ${TEMPLATE_MAX_CHARS}` });
  assert.deepEqual(renderSandboxed('{{ 1 + 1 }}', {}), { out: '2' });
});

test('a chat template that loops 3e8 times is stopped by the time or memory limit with one line; the next render works', () => {
  const dir = tempDir('kp-tpl-');
  const polish = path.join(import.meta.dirname, '../../models/polish-teacher');
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(polish, f), path.join(dir, f));
  const cfgPath = path.join(dir, 'tokenizer_config.json');
  fs.writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgPath, 'utf8')), chat_template: '{% for i in range(300000000) %}x{% endfor %}' }));
  const t0 = performance.now();
  throwsWith(() => loadTokenizer(dir).applyChatTemplate([{ role: 'user', content: 'hi' }]), 'chat_template',
    /tokenizer_config\.json: chat_template: the chat template must render these messages; found rendering took over 10 s or 256 MB \(the render was stopped\)\.$/);
  assert.ok(performance.now() - t0 < 30_000);
  assert.deepEqual(renderSandboxed('{{ 2 * 3 }}', {}), { out: '6' });
});
