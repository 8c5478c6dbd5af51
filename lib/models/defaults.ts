/**
 * Model-level defaults, one reason each (ARCHITECTURE principle 9): the architecture fields a registry
 * config may leave out, and the optimizer and loss settings `ClipModel` uses when a caller gives none.
 * The training schema (lib/train/schema.ts) takes its optimizer defaults from here, so there is one value
 * for each. The native core has no defaults: TypeScript sends every field (see {@link completeModelConfig}).
 */

/** Vision-tower fields a config may omit (OpenAI CLIP's layout unless the comment says otherwise). */
export const VISION_DEFAULTS = Object.freeze({
  patchSize: 32, // ViT-B/32's patch; unused by ResNet towers
  width: 768, // ViT-B's width; unused by ResNet towers
  layers: 12, // ViT-B's depth; unused by ResNet towers
  heads: 12, // ViT-B's heads; unused by ResNet towers
  mlpRatio: 4, // every CLIP and timm ViT uses a 4× MLP
  act: 'quick_gelu' as 'quick_gelu' | 'gelu', // OpenAI CLIP's activation; timm towers say "gelu"
  patchBias: false, // OpenAI's patch convolution has no bias (timm's has one)
  lnPre: true, // OpenAI normalises before the transformer (timm does not)
  layerNormEps: 1e-5, // PyTorch's LayerNorm default, as OpenAI (timm: 1e-6)
  resnetLayers: [3, 4, 6, 3] as number[], // RN50's stages; unused by ViT towers
  resnetWidth: 64, // RN50's stem width; unused by ViT towers
  attnPoolHeads: 32, // RN50's attention-pool heads; unused by ViT towers
  batchnormTrain: false, // fine-tuning keeps the pretrained BatchNorm statistics frozen
});

/** Text-tower fields a config may omit. */
export const TEXT_DEFAULTS = Object.freeze({
  mlpRatio: 4, // CLIP's text transformer uses a 4× MLP
  act: 'quick_gelu' as 'quick_gelu' | 'gelu', // OpenAI CLIP's activation; BERT towers say "gelu"
  intermediateSize: 3072, // BERT-base's feed-forward width; unused by causal towers
  maxPosition: 512, // BERT-base's position table; unused by causal towers
  typeVocabSize: 2, // BERT's two segment types; unused by causal towers
  padId: 0, // BERT's [PAD] id; unused by causal towers
  pooling: 'cls' as 'cls' | 'mean', // BERT towers pool the [CLS] token (PubMedBERT, CXR-BERT)
  layerNormEps: 1e-12, // BERT's LayerNorm epsilon; unused by causal towers
  proj: 'linear' as 'linear' | 'mlp', // a single projection matrix, as OpenAI CLIP
  projHidden: 0, // 0: (width + embedDim) / 2 for the "mlp" projection
});

/** CLIP's initial logit scale 1/0.07, stored as its log. */
export const LOGIT_SCALE_INIT = Math.log(1 / 0.07); // CLIP's temperature 0.07 at initialisation

/** The optimizer when `configureOptimizer` is given only a kind; also the training schema's defaults. */
export const OPTIMIZER_DEFAULTS = Object.freeze({
  lr: 1e-3, // right for the tiny model from scratch (measured); use ~1e-5 to fine-tune a pretrained CLIP
  weightDecay: 0.1, // CLIP-style decoupled decay (never on norms, biases, embeddings, logit scale)
  betas: [0.9, 0.98] as [number, number], // CLIP's betas: stable with large contrastive batches
  eps: 1e-6, // CLIP's eps
  momentum: 0.9, // CheXzero's SGD momentum, when kind is sgd
  nesterov: false, // plain momentum, as CheXzero
});

/** The loss when a step, `evalLoss` or `contrastiveLoss` is given none (plain CLIP). */
export const LOSS_DEFAULTS = Object.freeze({
  kind: 'clip' as 'clip' | 'relaxed', // no loss given: the standard CLIP loss
  alpha: 1, // α = 1 is plain CLIP (no relaxation)
  variant: 'clamp-diag' as 'clamp-diag' | 'clamp-numerator' | 'margin', // zero gradient for positives above α (METHOD.md default)
  alphaMomentum: 0.9, // `alpha: {quantile}`: EMA momentum of the running quantile (about the last 10 batches)
  margin: 0.1, // margin variant: m in cosine units (used only with variant "margin")
  labelSmoothing: 0, // exact one-hot targets, as CLIP
});
