import { blockKey, freezePrefixes } from '../../../lib/train/freeze';

// Parameter names as the native ViT/causal model reports them (OpenAI CLIP keys), two blocks per tower.
const vit = [
  'positional_embedding', 'text_projection', 'logit_scale', 'visual.class_embedding', 'visual.positional_embedding', 'visual.proj',
  'visual.conv1.weight', 'visual.ln_pre.weight', 'visual.ln_pre.bias',
  'visual.transformer.resblocks.0.ln_1.weight', 'visual.transformer.resblocks.0.attn.in_proj_weight',
  'visual.transformer.resblocks.1.ln_1.weight', 'visual.transformer.resblocks.1.attn.in_proj_weight',
  'visual.ln_post.weight', 'visual.ln_post.bias', 'token_embedding.weight',
  'transformer.resblocks.0.ln_1.weight', 'transformer.resblocks.1.ln_1.weight', 'ln_final.weight', 'ln_final.bias',
];
const matches = (prefixes: string[], name: string) => prefixes.some((p) => name.startsWith(p));

describe('freezePrefixes', () => {
  test('false freezes nothing; true freezes a whole tower but never the logit scale', () => {
    expect(freezePrefixes(vit, { image: false, text: false })).toEqual([]);
    const img = freezePrefixes(vit, { image: true, text: false });
    for (const n of vit) expect(matches(img, n)).toBe(n.startsWith('visual.'));
    const txt = freezePrefixes(vit, { image: false, text: true });
    for (const n of vit) expect(matches(txt, n)).toBe(!n.startsWith('visual.') && n !== 'logit_scale');
  });

  test('N keeps the last N blocks and the head trainable, freezes stem and earlier blocks', () => {
    const p = freezePrefixes(vit, { image: 1, text: false });
    const frozen = vit.filter((n) => matches(p, n));
    expect(frozen.sort()).toEqual(
      ['visual.class_embedding', 'visual.positional_embedding', 'visual.conv1.weight', 'visual.ln_pre.weight', 'visual.ln_pre.bias',
        'visual.transformer.resblocks.0.ln_1.weight', 'visual.transformer.resblocks.0.attn.in_proj_weight'].sort(),
    );
    // Text: block 0 and the embeddings frozen, block 1, ln_final and the projection trainable.
    const t = freezePrefixes(vit, { image: false, text: 1 });
    expect(vit.filter((n) => matches(t, n)).sort()).toEqual(['positional_embedding', 'token_embedding.weight', 'transformer.resblocks.0.ln_1.weight'].sort());
  });

  test('block prefixes end with a dot so block 1 does not catch block 10', () => {
    const names = Array.from({ length: 12 }, (_, i) => `visual.transformer.resblocks.${i}.w`);
    const p = freezePrefixes(names, { image: 11, text: false });
    expect(p).toEqual(['visual.transformer.resblocks.0.']);
    expect(names.filter((n) => matches(p, n))).toEqual(['visual.transformer.resblocks.0.w']);
  });

  test('ResNet stages and BERT layers are counted in order', () => {
    expect(blockKey('visual.layer2.1.conv1.weight')).toEqual({ key: 'visual.layer2.1.', order: [2, 1] });
    expect(blockKey('text.encoder.layer.3.attention.self.query.weight')).toEqual({ key: 'text.encoder.layer.3.', order: [3] });
    const rn = ['visual.conv1.weight', 'visual.layer1.0.a', 'visual.layer1.1.a', 'visual.layer2.0.a', 'visual.attnpool.c_proj.weight'];
    const p = freezePrefixes(rn, { image: 2, text: false });
    expect(rn.filter((n) => matches(p, n))).toEqual(['visual.conv1.weight', 'visual.layer1.0.a']);
  });

  test('more blocks than the tower has is E_CONFIG', () => {
    expect(() => freezePrefixes(vit, { image: 3, text: false })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});
