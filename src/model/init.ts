// Random initialisation as Hugging Face's _init_weights does for these architectures:
// linear and embedding weights ~ N(0, initializer_range), biases 0, RMSNorm weights 1.
import type { Decoder } from './decoder.ts';
import { Rng } from './sampling.ts';

export function initWeights(model: Decoder, seed: number, std = 0.02): void {
  const rng = new Rng(seed);
  const gauss = () => {
    const u = Math.max(rng.next(), 1e-12), v = rng.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  for (const s of model.layout.slots) {
    const view = model.params.view(s);
    if (s.name.endsWith('norm.weight')) view.fill(1);
    else if (s.name.endsWith('.bias')) view.fill(0);
    else for (let i = 0; i < view.length; i++) view[i] = std * gauss();
  }
}
