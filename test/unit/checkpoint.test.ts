// Checkpoint folders: single-file and sharded save -> open round trips, index safety (no paths
// out of the folder), missing pieces, stale layouts and tokenizer file copying.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { KompresorError } from '../../src/errors.ts';
import { openCheckpoint, saveCheckpoint, type SaveTensor } from '../../src/io/checkpoint.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { randn, throwsWith, tempDir } from '../helpers.ts';

const CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 16, hidden_size: 8, num_hidden_layers: 1,
  num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 12, hidden_act: 'silu', rms_norm_eps: 1e-5,
  tie_word_embeddings: false, torch_dtype: 'float32',
};

let tmp: string;
before(() => { tmp = tempDir('kompresor-ckpt-'); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function fresh(name: string): string {
  return fs.mkdtempSync(path.join(tmp, `${name}-`));
}

/** The tensors of CONFIG's tiny Llama, in model order, with seeded values. */
function tinyTensors(): SaveTensor[] {
  const shapes: [string, number[]][] = [
    ['model.embed_tokens.weight', [16, 8]],
    ['model.layers.0.input_layernorm.weight', [8]],
    ['model.layers.0.self_attn.q_proj.weight', [8, 8]],
    ['model.layers.0.self_attn.k_proj.weight', [4, 8]],
    ['model.layers.0.self_attn.v_proj.weight', [4, 8]],
    ['model.layers.0.self_attn.o_proj.weight', [8, 8]],
    ['model.layers.0.post_attention_layernorm.weight', [8]],
    ['model.layers.0.mlp.gate_proj.weight', [12, 8]],
    ['model.layers.0.mlp.up_proj.weight', [12, 8]],
    ['model.layers.0.mlp.down_proj.weight', [8, 12]],
    ['model.norm.weight', [8]],
    ['lm_head.weight', [16, 8]],
  ];
  return shapes.map(([name, shape], i) => ({ name, shape, data: randn(shape.reduce((a, b) => a * b, 1), 100 + i) }));
}


function dataOf(t: SaveTensor): Float32Array {
  return typeof t.data === 'function' ? t.data() : t.data;
}

describe('save -> open', () => {
  test('single file: every tensor back exactly, config normalised and kept raw, no temp files', () => {
    const dir = fresh('single');
    const ts = tinyTensors();
    const written = saveCheckpoint(dir, CONFIG, ts);
    assert.deepEqual(written, ['model.safetensors', 'config.json']);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
    const ck = openCheckpoint(dir);
    assert.deepEqual(ck.rawConfig, CONFIG);
    assert.deepEqual([ck.config.numKvHeads, ck.config.headDim, ck.config.intermediateSize], [1, 4, 12]);
    assert.deepEqual([...ck.tensors.keys()].sort(), ts.map((t) => t.name).sort());
    for (const t of ts) assert.deepEqual(ck.read(t.name), dataOf(t), t.name);
    const out = new Float32Array(8);
    assert.equal(ck.read('model.norm.weight', out), out);
  });

  test('sharded: names, index (total_size, sorted weight_map), round trip in BF16', () => {
    const dir = fresh('sharded');
    const ts = tinyTensors();
    // BF16: embed is 256 B, the limit of 300 B forces several shards, layers kept in order
    saveCheckpoint(dir, CONFIG, ts, { maxShardBytes: 300, dtype: 'BF16' });
    const files = fs.readdirSync(dir).sort();
    const shards = files.filter((f) => f.startsWith('model-'));
    assert.ok(shards.length >= 3, files.join(','));
    const n = String(shards.length).padStart(5, '0');
    assert.deepEqual(shards, shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${n}.safetensors`));
    assert.ok(!files.includes('model.safetensors'));
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    const total = ts.reduce((s, t) => s + dataOf(t).length * 2, 0);
    assert.deepEqual(index.metadata, { total_size: total });
    assert.deepEqual(Object.keys(index.weight_map), ts.map((t) => t.name).sort());
    assert.equal(index.weight_map['model.embed_tokens.weight'], shards[0]);
    assert.equal(index.weight_map['lm_head.weight'], shards[shards.length - 1]);
    const ck = openCheckpoint(dir);
    assert.equal(ck.tensors.size, ts.length);
    for (const t of ts) {
      const got = ck.read(t.name), want = dataOf(t);
      assert.equal(ck.tensors.get(t.name)!.info.dtype, 'BF16');
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= Math.abs(want[i]) * 2 ** -8, `${t.name}[${i}]`);
    }
  });

  test('re-saving in the other layout removes the old weight files', () => {
    const dir = fresh('relayout');
    saveCheckpoint(dir, CONFIG, tinyTensors(), { maxShardBytes: 600 });
    assert.ok(fs.existsSync(path.join(dir, 'model.safetensors.index.json')));
    const ts = tinyTensors().map((t) => ({ ...t, data: new Float32Array(dataOf(t).length).fill(0.5) }));
    saveCheckpoint(dir, CONFIG, ts);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
    assert.deepEqual([...openCheckpoint(dir).read('model.norm.weight')], new Array(8).fill(0.5));
    saveCheckpoint(dir, CONFIG, ts, { maxShardBytes: 600 });
    assert.ok(!fs.existsSync(path.join(dir, 'model.safetensors')));
  });

  test('tokenizer files are copied when present, others skipped', () => {
    const src = fresh('toksrc'), dir = fresh('tokdst');
    fs.writeFileSync(path.join(src, 'tokenizer.json'), '{"x": 1}');
    fs.writeFileSync(path.join(src, 'chat_template.jinja'), '{{ messages }}');
    fs.writeFileSync(path.join(src, 'unrelated.txt'), 'no');
    const written = saveCheckpoint(dir, CONFIG, tinyTensors(), { tokenizerFrom: src });
    assert.deepEqual(written.slice(-2), ['tokenizer.json', 'chat_template.jinja']);
    assert.equal(fs.readFileSync(path.join(dir, 'chat_template.jinja'), 'utf8'), '{{ messages }}');
    assert.ok(!fs.existsSync(path.join(dir, 'unrelated.txt')));
    assert.ok(!fs.existsSync(path.join(dir, 'tokenizer.model')));
  });
});

describe('opening refuses', () => {
  /** A folder with config.json, one real shard, and the given index weight_map. */
  function indexed(name: string, weightMap: Record<string, string>): string {
    const dir = fresh(name);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CONFIG));
    writeSafetensors(path.join(dir, 'model-00001-of-00001.safetensors'), [{ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array(2) }]);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    return dir;
  }

  test('an index naming ../evil.safetensors', () => {
    const dir = indexed('evil', { a: 'model-00001-of-00001.safetensors', b: '../evil.safetensors' });
    writeSafetensors(path.join(dir, '..', 'evil.safetensors'), [{ name: 'b', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
    throwsWith(() => openCheckpoint(dir), 'checkpoint_index', /"\.\.\/evil\.safetensors"/, /shard files must be inside the model folder/, /found a path leaving the folder/);
  });

  test('an index naming /etc/passwd', () => {
    const dir = indexed('abs', { a: '/etc/passwd' });
    throwsWith(() => openCheckpoint(dir), 'checkpoint_index', /"\/etc\/passwd"/, /found an absolute path/);
  });

  test('a shard that is a symlink leading out of the folder', () => {
    const dir = indexed('link', { a: 'model-00001-of-00001.safetensors', b: 'inner.safetensors' });
    const outside = path.join(tmp, 'outside.safetensors');
    writeSafetensors(outside, [{ name: 'b', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
    fs.symlinkSync(outside, path.join(dir, 'inner.safetensors'));
    throwsWith(() => openCheckpoint(dir), 'checkpoint_index', /found a symlink leading out of the folder/);
  });

  test('a missing shard', () => {
    const dir = indexed('missing', { a: 'model-00001-of-00001.safetensors', b: 'model-00002-of-00002.safetensors' });
    throwsWith(() => openCheckpoint(dir), 'file_not_found', /model-00002-of-00002\.safetensors: every shard named in model\.safetensors\.index\.json must exist/, /Hint: the download is incomplete/);
  });

  test('an index tensor absent from its shard', () => {
    const dir = indexed('absent', { a: 'model-00001-of-00001.safetensors', zz: 'model-00001-of-00001.safetensors' });
    throwsWith(() => openCheckpoint(dir), 'checkpoint_index', /weight_map\["zz"\]/, /expected "zz" in model-00001-of-00001\.safetensors/);
  });

  test('a malformed weight_map', () => {
    const dir = indexed('malformed', {});
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: ['a'] }));
    throwsWith(() => openCheckpoint(dir), 'checkpoint_index', /weight_map must map tensor names to shard file names/, /found \["a"\]/);
  });

  test('a missing folder, config or weights', () => {
    throwsWith(() => openCheckpoint(path.join(tmp, 'nope')), 'file_not_found', /nope: the model folder must exist; found no such folder/, /Hint: pass a local Hugging Face model folder/);
    const noConfig = fresh('noconfig');
    throwsWith(() => openCheckpoint(noConfig), 'file_not_found', /config\.json: the file must exist/, /Hint: every Hugging Face model folder has a config\.json/);
    const noWeights = fresh('noweights');
    fs.writeFileSync(path.join(noWeights, 'config.json'), JSON.stringify(CONFIG));
    throwsWith(() => openCheckpoint(noWeights), 'file_not_found', /must hold model\.safetensors or model\.safetensors\.index\.json; found neither/);
  });

  test('an unsupported config surfaces from normalisation', () => {
    const dir = fresh('badcfg');
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...CONFIG, hidden_act: 'gelu' }));
    throwsWith(() => openCheckpoint(dir), 'config_unsupported', /config\.json: hidden_act/);
  });

  test('reading a tensor the checkpoint lacks', () => {
    const dir = fresh('lacks');
    saveCheckpoint(dir, CONFIG, tinyTensors());
    throwsWith(() => openCheckpoint(dir).read('model.layers.7.mlp.up_proj.weight'), 'checkpoint_missing_tensor',
      /tensor "model\.layers\.7\.mlp\.up_proj\.weight": the tensor must be in the checkpoint; found 12 tensors without it/);
  });
});

// fuzz report D3 and D9: the symlink rule (src/io/checkpoint.ts symlinkAllowed)
describe('symlinks in model folders', () => {
  const FIXTURE = path.join(import.meta.dirname, '../fixtures/llama_tied_gqa');

  test('D3: a sharded Hugging Face hub snapshot (every file a symlink to ../../blobs/<hash>) opens', () => {
    const hub = fresh('hub');
    fs.mkdirSync(path.join(hub, 'blobs'));
    fs.mkdirSync(path.join(hub, 'snapshots', 'rev'), { recursive: true });
    fs.copyFileSync(path.join(FIXTURE, 'model.safetensors'), path.join(hub, 'blobs', 'w'));
    fs.copyFileSync(path.join(FIXTURE, 'config.json'), path.join(hub, 'blobs', 'c'));
    const names = [...openCheckpoint(FIXTURE).tensors.keys()];
    fs.writeFileSync(path.join(hub, 'blobs', 'i'), JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(names.map((n) => [n, 'model-00001-of-00001.safetensors'])) }));
    const snap = path.join(hub, 'snapshots', 'rev');
    fs.symlinkSync('../../blobs/w', path.join(snap, 'model-00001-of-00001.safetensors'));
    fs.symlinkSync('../../blobs/c', path.join(snap, 'config.json'));
    fs.symlinkSync('../../blobs/i', path.join(snap, 'model.safetensors.index.json'));
    const ck = openCheckpoint(snap);
    assert.deepEqual([...ck.tensors.keys()].sort(), names.sort());
    assert.deepEqual(ck.read(names[0]), openCheckpoint(FIXTURE).read(names[0]));
    // the same layout outside a snapshots/ folder is still refused: only a hub cache's blobs/ is trusted
    const plain = fresh('plain');
    fs.mkdirSync(path.join(plain, 'blobs'));
    fs.mkdirSync(path.join(plain, 'x', 'rev'), { recursive: true });
    for (const f of ['w', 'c', 'i']) fs.copyFileSync(path.join(hub, 'blobs', f), path.join(plain, 'blobs', f));
    fs.symlinkSync('../../blobs/w', path.join(plain, 'x', 'rev', 'model-00001-of-00001.safetensors'));
    fs.copyFileSync(path.join(hub, 'blobs', 'c'), path.join(plain, 'x', 'rev', 'config.json'));
    fs.copyFileSync(path.join(hub, 'blobs', 'i'), path.join(plain, 'x', 'rev', 'model.safetensors.index.json'));
    throwsWith(() => openCheckpoint(path.join(plain, 'x', 'rev')), 'checkpoint_index', /found a symlink leading out of the folder/);
  });

  test('D9: a tokenizer-side file that is a symlink out of the folder is refused at opening, and never copied', () => {
    const dir = fresh('sym');
    fs.cpSync(FIXTURE, dir, { recursive: true });
    const secret = path.join(fresh('secret'), 'id_rsa');
    fs.writeFileSync(secret, 'PRIVATE KEY');
    fs.symlinkSync(secret, path.join(dir, 'special_tokens_map.json'));
    throwsWith(() => openCheckpoint(dir), 'tokenizer_invalid',
      /special_tokens_map\.json: files copied out of a model folder must be inside it; expected a file in .*, found a symlink to .*id_rsa\. Hint: outputs get published/);
    const out = path.join(fresh('out'), 'copy');
    throwsWith(() => saveCheckpoint(out, CONFIG, [], { tokenizerFrom: dir }), 'tokenizer_invalid', /files copied out of a model folder must be inside it/);
    assert.equal(fs.existsSync(out), false, 'nothing written');
  });
});

// fuzz report D4: absurd sizes crashed with stacks or a heap OOM (1e9 layers: 49 s, 4.6 GB)
describe('config sizes against the weights, before any allocation', () => {
  const FIXTURE = path.join(import.meta.dirname, '../fixtures/llama_tied_gqa');
  const withConfig = (edit: Record<string, unknown>) => {
    const dir = fresh('cfg');
    fs.cpSync(FIXTURE, dir, { recursive: true });
    const c = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...c, ...edit }));
    return dir;
  };

  test('sizes beyond any real model are refused by name, at once', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ num_hidden_layers: 1e9 }, /config\.json: num_hidden_layers: num_hidden_layers must be at most 4096 \(larger than any real model\); expected at most 4096, found 1000000000\.$/],
      [{ hidden_size: 2 ** 40 }, /config\.json: hidden_size: hidden_size must be at most 131072/],
      [{ vocab_size: 2 ** 45 }, /vocab_size must be at most 16777216/],
      [{ intermediate_size: 2 ** 30 }, /intermediate_size must be at most 1048576/],
      [{ num_attention_heads: 2 ** 30, num_key_value_heads: 2 ** 30 }, /num_attention_heads must be at most 4096/],
    ];
    for (const [edit, re] of cases) {
      const t0 = performance.now();
      throwsWith(() => openCheckpoint(withConfig(edit)), 'config_invalid', re);
      assert.ok(performance.now() - t0 < 2000, JSON.stringify(edit));
    }
  });

  test('sizes within the limits but not those of the weights name the key and the tensor', () => {
    throwsWith(() => openCheckpoint(withConfig({ num_hidden_layers: 4000 })), 'config_invalid',
      /config\.json: num_hidden_layers: config\.json's sizes must match the weights; expected 4000 layers, found weights for 2 \(model\.layers\.0-1\)\./);
    throwsWith(() => openCheckpoint(withConfig({ vocab_size: 100000 })), 'config_invalid',
      /config\.json: vocab_size, hidden_size: config\.json's sizes must match the weights; expected model\.embed_tokens\.weight of shape \[100000,32\], found \[\d+,32\]/);
    throwsWith(() => openCheckpoint(withConfig({ intermediate_size: 50000 })), 'config_invalid', /intermediate_size, hidden_size: .*expected model\.layers\.0\.mlp\.gate_proj\.weight of shape \[50000,32\]/);
  });
});
