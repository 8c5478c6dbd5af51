/**
 * The training job (`cxr-train train`) as library functions: `resolveRun` layers the config file and the
 * overrides (over a resumed checkpoint's config when there is no file), `planTraining` is `--dry-run` (it
 * resolves the model, tokenizer, prompts and data without allocating the model), and `launchTraining` starts
 * the data-parallel workers of `--nproc`. The training loop itself is `train/Trainer`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';
import { resolveModelConfig } from '../models/registry';
import { isModelFolder } from '../models/modelFolder';
import type { ModelConfig } from '../models/config';
import { loadPromptSet } from '../text/prompts';
import { loadTokenizer } from '../text/tokenizer';
import { DEFAULT_CONFIG, defaultRunDir, overridesToConfig, readConfigFile, resolveTrainConfig } from '../train/config';
import type { TrainConfig } from '../train/config';
import { readCheckpoint, resolveResume } from '../train/checkpoints';
import { buildRunData } from '../train/data';
import { launchWorkers } from '../train/distributed';
import { ensureOutDir } from '../util/paths';

/** What a run would use, as {@link planTraining} resolved it. */
export interface TrainingPlan {
  model: { description: string; imageSize: number; contextLength: number; tokenizer: string };
  data: { dataset: string; root: string | null; trainSplit: string; valSplit: string; trainPairs: number; withReport: number; valImages: number };
  /** Optimizer steps per epoch (after gradient accumulation). */
  stepsPerEpoch: number;
  maxSteps: number | null;
  epochs: number | null;
  /** Steps the run takes: `maxSteps`, else `epochs × stepsPerEpoch`. */
  totalSteps: number;
  prompts: { name: string; labels: number };
}

/**
 * Checks a resolved config against its model, tokenizer, prompt set and data, reading the data but not
 * allocating the model.
 *
 * @throws CxrError E_CHECKPOINT (no model folder at `model.checkpoint`), E_CONFIG (tokenizer and model
 *   vocabulary disagree, unknown prompt set), and the data errors of the run's dataset.
 */
export async function planTraining(config: TrainConfig): Promise<TrainingPlan> {
  let description: string;
  let mcfg: ModelConfig;
  if (config.model.checkpoint) {
    const dir = fs.existsSync(path.join(config.model.checkpoint, 'model')) ? path.join(config.model.checkpoint, 'model') : config.model.checkpoint;
    if (!isModelFolder(dir)) throw new CxrError('E_CHECKPOINT', `model.checkpoint ${config.model.checkpoint}: no model folder there (model.safetensors + cxr-model.json)`);
    mcfg = JSON.parse(fs.readFileSync(path.join(dir, 'cxr-model.json'), 'utf8')).config;
    description = `${dir} (${mcfg.name ?? 'unnamed'})`;
  } else {
    mcfg = resolveModelConfig(config.model.name);
    description = config.model.name;
  }
  const tok = loadTokenizer({ kind: mcfg.tokenizer ?? (mcfg.text.type === 'bert' ? 'wordpiece' : 'clip-bpe'), path: config.model.tokenizer ?? undefined });
  tok.assertVocabSize(mcfg.text.vocabSize);
  const prompts = loadPromptSet(config.eval.promptSet);
  const data = await buildRunData(config);
  const stepsPerEpoch = Math.floor(Math.floor(data.train.samples.length / config.batchSize) / config.accumSteps);
  return {
    model: { description, imageSize: mcfg.vision.imageSize, contextLength: mcfg.text.contextLength, tokenizer: tok.kind },
    data: {
      dataset: config.data.dataset,
      root: config.data.root ?? null,
      trainSplit: config.data.trainSplit,
      valSplit: config.data.valSplit,
      trainPairs: data.train.samples.length,
      withReport: data.train.samples.filter((s) => s.report && s.report.trim()).length,
      valImages: data.val.samples.length,
    },
    stepsPerEpoch,
    maxSteps: config.maxSteps ?? null,
    epochs: config.epochs ?? null,
    totalSteps: config.maxSteps ?? (config.epochs ?? 0) * stepsPerEpoch,
    prompts: { name: prompts.name, labels: prompts.labels.length },
  };
}

/** What {@link resolveRun} takes: the CLI's `--config`, dotted-key overrides and `--resume`. */
export interface RunRequest {
  /** A YAML or JSON run config. */
  configFile?: string;
  /** Dotted config keys → YAML scalar strings (flags and `--set`), applied over the file. */
  overrides?: Record<string, string>;
  /** "auto" (newest checkpoint of the run folder, or a fresh start), a checkpoint or a run folder. */
  resume?: string;
}

/**
 * Resolves a run: defaults ← (a resumed checkpoint's config, when there is no file) ← file ← overrides.
 * `resumeDir` is the checkpoint to continue from, or null.
 *
 * @throws CxrError E_CONFIG (`--resume auto` without a run folder, invalid values), E_IO (`--out` or `--resume`
 *   naming a file), E_CHECKPOINT
 */
export function resolveRun(req: RunRequest): { config: TrainConfig; resumeDir: string | null } {
  const overrides = req.overrides ?? {};
  const file = req.configFile ? readConfigFile(req.configFile) : undefined;
  const layers = [
    { config: file, source: req.configFile },
    { config: overridesToConfig(overrides), source: 'flags' },
  ];
  let resumeDir: string | null = null;
  let base = DEFAULT_CONFIG;
  if (req.resume !== undefined) {
    const outGuess = (overrides.outDir ?? (file as { outDir?: string } | undefined)?.outDir ?? null) as string | null;
    if (req.resume === 'auto' && !outGuess) throw new CxrError('E_CONFIG', '--resume auto needs the run folder: pass --out DIR (or outDir in the config)');
    resumeDir = resolveResume(req.resume, outGuess ? path.resolve(outGuess) : null);
    if (resumeDir && !file) base = readCheckpoint(resumeDir).state.config;
  }
  const config = resolveTrainConfig(layers, base);
  // A run folder that is a file fails here, before data or model are touched.
  if (config.outDir !== null) ensureOutDir(config.outDir, '--out');
  return { config, resumeDir };
}

/** Launcher flags: consumed by `--nproc`, not passed on to the workers. */
const LAUNCH_FLAGS = ['nproc', 'nnodes', 'node-rank', 'master'];

/** argv without the launcher's flags (`--nproc 2`, `--nproc=2`). */
export function stripLaunchFlags(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(=.*)?$/.exec(args[i]);
    if (m && LAUNCH_FLAGS.includes(m[1])) {
      if (m[2] === undefined) i++;
      continue;
    }
    out.push(args[i]);
  }
  return out;
}

/** What {@link launchTraining} takes. */
export interface LaunchRequest {
  /** Worker processes on this machine. */
  nproc: number;
  /** Machines in the job (default 1). */
  nnodes?: number;
  /** This machine's index (default 0). */
  nodeRank?: number;
  /** "ADDR:PORT" of node 0 (needed with nnodes > 1). */
  master?: string;
  /** The script and its arguments, as the workers run them (launcher flags are removed here). */
  script: string;
  args: string[];
  /** True when `args` name the run folder already; else one absolute `--out` is added for every rank. */
  outGiven: boolean;
}

/**
 * Starts `nproc` workers of the same `train` command under torchrun's environment and waits for them.
 * Resolves when all exit cleanly.
 *
 * @throws CxrError E_CONFIG (batch not divisible by the processes, bad `master`), E_DIST (a worker failed;
 *   the message names its rank and how to resume)
 */
export async function launchTraining(config: TrainConfig, req: LaunchRequest): Promise<void> {
  const nnodes = req.nnodes ?? 1;
  const world = req.nproc * nnodes;
  if (Number.isInteger(world) && world > 0 && config.batchSize % world !== 0)
    throw new CxrError('E_CONFIG', `batchSize ${config.batchSize} is the batch over all processes and must be divisible by the ${world} processes`);
  const outDir = path.resolve(config.outDir ?? defaultRunDir());
  const args = stripLaunchFlags(req.args);
  if (!req.outGiven) args.push('--out', outDir);
  let masterAddr: string | undefined;
  let masterPort: number | undefined;
  if (req.master !== undefined) {
    const m = /^(.+):(\d+)$/.exec(req.master);
    if (!m) throw new CxrError('E_CONFIG', `--master wants ADDR:PORT, got "${req.master}"`);
    masterAddr = m[1];
    masterPort = Number(m[2]);
  }
  const r = await launchWorkers({ nproc: req.nproc, nnodes, nodeRank: req.nodeRank ?? 0, masterAddr, masterPort, args: [req.script, ...args] });
  if (r.failed) {
    const f = r.failed;
    throw new CxrError('E_DIST', `worker rank ${f.rank} (pid ${f.pid}) ${f.signal ? `was killed by ${f.signal}` : `exited with code ${f.code}`}; the job stopped. Resume with: cxr-train train --out ${outDir} --resume auto [--nproc N]`);
  }
}
