// Frozen tensors of a trainable model: named parts (the embeddings, the lm_head) that training
// leaves bit-identical. A frozen tensor has no gradient and no optimizer moments, so no memory is
// allocated for either: the gradient layout (trainableLayout) is the parameter layout with the
// frozen slots shrunk to size 0, which the decoder's gradient views read as empty arrays (the
// backward then skips them) and the optimizer skips.
//
// Parts: "embeddings" = model.embed_tokens.weight, "lm_head" = lm_head.weight. With tied
// embeddings the two are one tensor, so freezing either freezes it.
import type { ModelConfig } from '../io/hf_config.ts';
import type { ParameterLayout, TensorSlot } from './parameters.ts';

export const FREEZABLE_PARTS = ['embeddings', 'lm_head'] as const;
export type FreezablePart = typeof FREEZABLE_PARTS[number];

/** The HF tensor names a list of parts freezes on this config. */
export function frozenTensors(cfg: ModelConfig, parts: readonly FreezablePart[]): Set<string> {
  const out = new Set<string>();
  for (const p of parts) {
    if (p === 'embeddings' || cfg.tieWordEmbeddings) out.add('model.embed_tokens.weight');
    else out.add('lm_head.weight');
  }
  return out;
}

/**
 * The layout of the gradients (and moments): the parameter layout with every frozen slot of size
 * 0 at the place it would start, and the blocks shrunk accordingly. The same layout object when
 * nothing is frozen.
 */
export function trainableLayout(layout: ParameterLayout, frozen: ReadonlySet<string>): ParameterLayout {
  if (frozen.size === 0) return layout;
  const blockSizes = layout.blockSizes.map(() => 0), blockStarts: number[] = [];
  const slots: TensorSlot[] = [];
  let offset = 0, block = -1;
  for (const s of layout.slots) {
    while (block < s.block) { block++; blockStarts.push(offset); }
    const size = frozen.has(s.name) ? 0 : s.size;
    slots.push({ ...s, offset, size, blockOffset: blockSizes[s.block] });
    blockSizes[s.block] += size;
    offset += size;
  }
  while (blockStarts.length < blockSizes.length) blockStarts.push(offset);
  return { slots, byName: new Map(slots.map((s) => [s.name, s])), total: offset, blockSizes, blockStarts };
}
