/**
 * `predict --heatmaps DIR`: one PNG overlay per image and label (the image as the model saw it in grey,
 * the label's Grad-CAM map in viridis, the probability in the corner, the caveat along the bottom), plus
 * `heatmaps.json` (what was written, the method) and `index.html` (every overlay on one page). Every file
 * is written atomically.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';
import { decodeToBase, finishImage } from '../data/images';
import { writeFileAtomic, writeFileAtomicAsync } from '../util/atomic';
import { HEATMAP_CAVEAT, renderOverlayPng } from '../infer/heatmap';
import { labelSaliency } from '../infer/saliency';
import type { ZeroShotModel } from '../infer/zeroShotModel';

/** One image to explain. */
export interface HeatmapItem {
  id: string;
  path: string;
}

/** Options of {@link writeHeatmaps}. */
export interface HeatmapOptions {
  /** Output folder (created). */
  dir: string;
  /** Labels to explain (already resolved against the prompt set). */
  labels: string[];
  /** Opacity of the map over the image. Default 0.5. */
  opacity?: number;
  /** Called after every batch with (images done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** What {@link writeHeatmaps} wrote. */
export interface HeatmapResult {
  dir: string;
  /** Overlays written (images × labels). */
  files: number;
  /** The activation Grad-CAM used. */
  layer: string;
  /** `heatmaps.json` and `index.html`. */
  index: string;
  html: string;
  /** Images that could not be decoded now (they were scored before), with reasons. */
  failed: Array<{ id: string; reason: string }>;
}

/** A file-name-safe form of an id or a label (letters, digits, `.`, `_`, `-`). */
export function fileSlug(s: string): string {
  const t = s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '');
  return t === '' ? '_' : t.slice(0, 120);
}

/**
 * Writes the overlays of `items` × `labels` into `dir`, in batches of the model's batch size; names are
 * `<id>.<label>.png` (made file-name safe; a clash gets `-2`, `-3`, ...).
 * @throws CxrError E_IO (cannot create or write), the model's errors.
 */
export async function writeHeatmaps(zm: ZeroShotModel, items: HeatmapItem[], o: HeatmapOptions): Promise<HeatmapResult> {
  const dir = path.resolve(o.dir);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new CxrError('E_IO', `cannot create ${dir}: ${(e as Error).message}`, { path: dir });
  }
  const S = zm.image.size;
  const plane = S * S;
  const used = new Set<string>();
  const stem = (id: string): string => {
    const base = fileSlug(id.replace(/\.(png|jpe?g|dcm|dicom)$/i, ''));
    let s = base;
    for (let k = 2; used.has(s); k++) s = `${base}-${k}`;
    used.add(s);
    return s;
  };
  const entries: Array<{ id: string; path: string; files: Record<string, { file: string; probability: number }> }> = [];
  const failed: HeatmapResult['failed'] = [];
  let files = 0;
  let layer = '';
  for (let a = 0; a < items.length; a += zm.batchSize) {
    const chunk = items.slice(a, a + zm.batchSize);
    const greys: Float32Array[] = [];
    const ok: HeatmapItem[] = [];
    for (const it of chunk) {
      try {
        greys.push(await decodeToBase(it.path, S, zm.image.geometry ?? 'pad'));
        ok.push(it);
      } catch (e) {
        failed.push({ id: it.id, reason: `${(e as { code?: string }).code ?? 'E_DATA'}: ${(e as Error).message}` });
      }
    }
    if (ok.length > 0) {
      const x = new Float32Array(ok.length * 3 * plane);
      greys.forEach((g, i) => finishImage(g, zm.image, 0, x, i * 3 * plane));
      const maps = await labelSaliency(zm, x, ok.length, o.labels);
      for (let i = 0; i < ok.length; i++) {
        const s = stem(ok[i].id);
        const e = { id: ok[i].id, path: ok[i].path, files: {} as Record<string, { file: string; probability: number }> };
        for (const m of maps) {
          layer = m.layer;
          const name = `${s}.${fileSlug(m.label)}.png`;
          const png = await renderOverlayPng({ grey: greys[i], map: m.maps.subarray(i * plane, (i + 1) * plane), size: S, label: m.label, probability: m.probabilities[i], ...(o.opacity !== undefined ? { opacity: o.opacity } : {}) });
          await writeFileAtomicAsync(path.join(dir, name), png);
          e.files[m.label] = { file: name, probability: m.probabilities[i] };
          files++;
        }
        entries.push(e);
      }
    }
    o.onProgress?.(Math.min(items.length, a + chunk.length), items.length);
  }
  const index = path.join(dir, 'heatmaps.json');
  writeFileAtomic(
    index,
    JSON.stringify(
      {
        caveat: `The maps are an ${HEATMAP_CAVEAT}: they show which pixels raised the label's zero-shot score in this model, not where a finding is.`,
        method: 'Grad-CAM (Selvaraju et al. 2017) of the zero-shot logit t·(cos(image, positive prompts) − cos(image, negative prompts)); ViT towers: the patch tokens entering the last block (Chefer et al. 2021)',
        layer,
        checkpoint: zm.checkpoint,
        checkpointHash: zm.checkpointHash,
        prompts: zm.prompts.name,
        temperature: zm.temperature,
        imageSize: S,
        labels: o.labels,
        images: entries,
        failed,
      },
      null,
      2,
    ) + '\n',
  );
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const html = path.join(dir, 'index.html');
  writeFileAtomic(
    html,
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>cxr-train heatmaps</title>
<style>body{font:14px system-ui,sans-serif;margin:16px;background:#f4f6fa}figure{display:inline-block;margin:6px;background:#fff;padding:6px;border:1px solid #d8dce4}figure img{width:256px;height:256px;display:block}figcaption{font-size:12px;max-width:256px}</style></head><body>
<h1>Saliency heatmaps</h1><p><strong>${esc(HEATMAP_CAVEAT)}.</strong> Grad-CAM of each label's zero-shot score (${esc(layer)}); checkpoint ${esc(path.basename(path.resolve(zm.checkpoint)))}, prompts ${esc(zm.prompts.name)}.</p>
${entries.map((e) => `<section><h2 style="font-size:15px">${esc(e.id)}</h2>${Object.entries(e.files).map(([l, f]) => `<figure><img src="${encodeURI(f.file)}" alt="${esc(l)} heatmap of ${esc(e.id)}"><figcaption>${esc(l)}: p = ${f.probability.toFixed(3)}</figcaption></figure>`).join('')}</section>`).join('\n')}
</body></html>\n`,
  );
  return { dir, files, layer, index, html, failed };
}
