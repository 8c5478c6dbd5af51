import { CxrError } from '../errors';
import { ModelConfig, validateModelConfig } from './config';
import vitB32 from './configs/ViT-B-32.json';
import vitB16 from './configs/ViT-B-16.json';
import vitL14 from './configs/ViT-L-14.json';
import rn50 from './configs/RN50.json';
import rn101 from './configs/RN101.json';
import testVit from './configs/test-vit.json';
import testResnet from './configs/test-resnet.json';
import testBert from './configs/test-bert.json';

/** Named architectures (principle 8: configs are data). Tiny `test-*` variants sit beside the real ones. */
const REGISTRY: Record<string, unknown> = {
  'ViT-B/32': vitB32,
  'ViT-B/16': vitB16,
  'ViT-L/14': vitL14,
  RN50: rn50,
  RN101: rn101,
  'test-vit': testVit,
  'test-resnet': testResnet,
  'test-bert': testBert,
};

/** Names accepted by `createModel` / `--model`. "ViT-B-32" is accepted for "ViT-B/32". */
export function modelNames(): string[] {
  return Object.keys(REGISTRY);
}

/** Resolves a registry name or an inline config into a validated ModelConfig (E_CONFIG when unknown). */
export function resolveModelConfig(nameOrConfig: string | ModelConfig): ModelConfig {
  if (typeof nameOrConfig !== 'string') return validateModelConfig(nameOrConfig);
  const key = Object.keys(REGISTRY).find(
    (k) => k === nameOrConfig || k.replace('/', '-') === nameOrConfig || k.toLowerCase() === nameOrConfig.toLowerCase(),
  );
  if (!key) {
    throw new CxrError('E_CONFIG', `unknown model "${nameOrConfig}"; known models: ${modelNames().join(', ')}`);
  }
  return validateModelConfig(REGISTRY[key]);
}
