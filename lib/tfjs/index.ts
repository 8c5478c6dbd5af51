/**
 * The TensorFlow.js variant of cxr-train: the same CLIP model, losses and AdamW step as the native core,
 * for side-by-side comparison and cross-checking. Importing this module loads nothing from
 * `@tensorflow/*`; the first model or loss call does.
 */
export { TfClipModel, tfParameterSpecs, noWeightDecay } from './model';
export type { TfModelOptions, TfOptimizerOptions, TfStepOptions, TfStepResult, TfTrainBatch } from './model';
export { tfContrastiveLoss, tfContrastiveLossTensor } from './loss';
export type { TfLossResult } from './loss';
export { loadTf, useBackend, resolveBackendName, tfjsAvailable, tfjsNodeAvailable, tfjsWasmAvailable } from './backend';
export type { Tf, TfBackendName } from './backend';
