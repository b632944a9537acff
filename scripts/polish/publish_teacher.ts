// Publishes the demo's Polish teacher (issue 7) as the committed checkpoint models/polish-teacher:
// the final weights of the teacher's SFT run, stored as bfloat16 (half the bytes of float32, the
// dtype Bielik ships in), with its tokenizer, the special-token ids in config.json and
// generation_config.json, and a model card (README.md) whose numbers are read from the runs'
// metrics.jsonl files, so retraining and re-publishing rewrites the card with the new figures.
//
//   node --import tsx scripts/polish/publish_teacher.ts [--pretrain runs/polish/teacher/run]
//        [--sft runs/polish/teacher/sft] [--out models/polish-teacher]
import fs from 'node:fs';
import nodePath from 'node:path';
import { loadModel, saveModel } from '../../src/model/load.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { readMetrics, type MetricsLine } from '../../src/train/metrics.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const pretrain = arg('--pretrain', 'runs/polish/teacher/run');
const sft = arg('--sft', 'runs/polish/teacher/sft');
const out = arg('--out', 'models/polish-teacher');

const { model, config } = await loadModel(nodePath.join(sft, 'final'));
const tok = loadTokenizer(nodePath.join(sft, 'final'));
const ids = (t: string) => { const id = tok.tokenToId(t); if (id === undefined) throw new Error(`the tokenizer has no ${t}`); return id; };
const eos = ids('<|im_end|>'), pad = ids('<|endoftext|>');
const published = { ...config, bos_token_id: pad, eos_token_id: eos, pad_token_id: pad, torch_dtype: 'bfloat16' };
fs.mkdirSync(out, { recursive: true });
saveModel(model, out, published, { dtype: 'BF16', tokenizerFrom: nodePath.join(sft, 'final') });
fs.writeFileSync(nodePath.join(out, 'generation_config.json'),
  JSON.stringify({ bos_token_id: pad, eos_token_id: eos, pad_token_id: pad }, null, 2) + '\n');

const num = (v: unknown) => (typeof v === 'number' ? v : NaN);
const trainRows = (rows: MetricsLine[]) => rows.filter((r) => r.split === undefined || r.split === 'train');
const lastVal = (rows: MetricsLine[]) => num(rows.filter((r) => r.split === 'validation').at(-1)?.loss);
const pre = readMetrics(nodePath.join(pretrain, 'metrics.jsonl'));
const ft = readMetrics(nodePath.join(sft, 'metrics.jsonl'));
const card = {
  params: model.params.length,
  pretrain: { steps: num(trainRows(pre).at(-1)?.step), tokens: num(trainRows(pre).at(-1)?.tokens), validation_loss: lastVal(pre) },
  sft: { steps: num(trainRows(ft).at(-1)?.step), tokens: num(trainRows(ft).at(-1)?.tokens), validation_loss: lastVal(ft) },
};
fs.writeFileSync(nodePath.join(out, 'card.json'), JSON.stringify(card, null, 2) + '\n');
fs.writeFileSync(nodePath.join(out, 'README.md'), modelCard(card));
console.log(`published ${out}: ${card.params.toLocaleString('en-US')} parameters (bf16); pretraining ${card.pretrain.steps} steps, `
  + `${card.pretrain.tokens.toLocaleString('en-US')} tokens, validation loss ${card.pretrain.validation_loss.toFixed(3)}; `
  + `SFT ${card.sft.steps} steps, validation loss ${card.sft.validation_loss.toFixed(3)}`);

function modelCard(c: typeof card): string {
  const h = published as Record<string, unknown>;
  return `---
language: pl
license: gpl-3.0
library_name: transformers
pipeline_tag: text-generation
---
# polish-teacher: the teacher of Kompresor's demo

A ${(c.params / 1e6).toFixed(1)}M-parameter \`MistralForCausalLM\` (hidden ${h.hidden_size}, ${h.num_hidden_layers} layers,
${h.num_attention_heads} query / ${h.num_key_value_heads} KV heads of ${h.head_dim}, MLP ${h.intermediate_size}, tied embeddings,
a ${h.vocab_size}-token byte-level BPE with a ChatML template), trained from scratch by \`kompresor train\` on a
Polish corpus built from Debian packages (fortunes-pl, manpages-pl, libreoffice-help-pl; see
docs/polish-corpus.md), then briefly SFT'd by \`kompresor sft\` on Polish instruction data the project
generates. \`npm run demo\` compresses it the Bielik-Minitron way (recipes/bielik-minitron-mini.yaml).

| stage | steps | tokens | validation loss (nats/token) |
|---|---|---|---|
| pretraining | ${c.pretrain.steps} | ${c.pretrain.tokens.toLocaleString('en-US')} | ${c.pretrain.validation_loss.toFixed(3)} |
| SFT | ${c.sft.steps} | ${c.sft.tokens.toLocaleString('en-US')} | ${c.sft.validation_loss.toFixed(3)} (completion tokens) |

Weights are stored as bfloat16 (the runs train in float32). It is a small model on a small corpus:
its Polish is recognisable but not fluent, and it knows little beyond Linux manuals, LibreOffice help
and fortunes.

Retrain and republish (about 35 minutes on 2 cores):

    bash scripts/polish/train_teacher.sh

Licence: the training text is GPL-2+ (fortunes-pl), GPL-3+ (manpages-pl) and MPL-2.0
(libreoffice-help-pl); the weights are offered under GPL-3.0, the most restrictive of the three.
`;
}
