#!/usr/bin/env node
'use strict';
// Fine-tune with the Trainer API on the embedded synthetic data and listen to its events.
//   node examples/finetune.js [steps] [outDir]
// In your own project: require('cxr-train') instead of '../dist'.
const { Trainer, resolveTrainConfig } = require('../dist');

async function main() {
  const steps = Number(process.argv[2] || 200);
  const outDir = process.argv[3] || 'runs/example';
  const config = resolveTrainConfig([
    {
      config: {
        outDir,
        model: { name: 'test-vit' },
        data: { dataset: 'synthetic', synthetic: { n: 600 } },
        text: { mode: 'uniform' },
        loss: { kind: 'relaxed', alpha: 0.8 },
        maxSteps: steps,
        eval: { everySteps: Math.max(1, Math.floor(steps / 2)) },
      },
    },
  ]);
  const trainer = new Trainer(config);
  trainer.on('step', (e) => {
    if (e.step % Math.max(1, Math.floor(steps / 4)) === 0) console.log(`step ${e.step}: loss ${e.loss.toFixed(4)}, lr ${e.lr.toExponential(2)}`);
  });
  trainer.on('eval', (e) => console.log(`eval at step ${e.step}: macro AUROC ${e.macroAuroc.toFixed(4)}`));
  trainer.on('checkpoint', (e) => console.log(`checkpoint ${e.dir}`));
  const result = await trainer.fit();
  console.log(JSON.stringify({ status: result.status, steps: result.step, before: result.initialEval?.macroAuroc ?? null, after: result.finalEval?.macroAuroc ?? null, model: result.modelDir }));
  await trainer.dispose();
}

main().catch((e) => {
  console.error(e.code ? `${e.code}: ${e.message}` : e);
  process.exit(1);
});
