/**
 * The single page `cxr-train serve` shows: inline CSS and script, no external asset or URL (the server's
 * Content-Security-Policy forbids any), so it works offline and leaks nothing.
 */

/** The page's HTML. `title` is escaped. */
export function renderServePage(title = 'cxr-train'): string {
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f4f6fa}
header{background:#1d2330;color:#fff;padding:10px 20px}header h1{font-size:18px;margin:0}header .sub{color:#aab3c5;font-size:12px}
main{display:flex;flex-wrap:wrap;gap:18px;padding:18px 20px}
.panel{background:#fff;border:1px solid #d8dce4;border-radius:8px;padding:14px}
#left{flex:0 1 440px;min-width:300px}#right{flex:1 1 480px;min-width:320px}
#drop{border:2px dashed #9aa3b5;border-radius:8px;padding:26px 12px;text-align:center;color:#55607a;cursor:pointer}
#drop.over{border-color:#1f5fa8;background:#eef4fc;color:#1f5fa8}
#preview{margin-top:12px;max-width:100%;max-height:460px;display:none;background:#000;border-radius:4px}
#status{margin-top:8px;min-height:20px;color:#55607a}#status.err{color:#b02a1a;font-weight:600}
.bar-row{display:grid;grid-template-columns:190px 1fr 58px;align-items:center;gap:8px;margin:3px 0}
.bar-row .name{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.track{background:#eceef3;border-radius:3px;height:16px;position:relative}
.fill{background:#1f5fa8;height:100%;border-radius:3px}.fill.pos{background:#d9480f}
.tick{position:absolute;top:-2px;bottom:-2px;width:2px;background:#1d2330}
.val{text-align:right;font-variant-numeric:tabular-nums}
details{margin:0 0 6px 198px;font-size:12px;color:#55607a}summary{cursor:pointer}
.muted{color:#6a7385;font-size:12px}code{font:12px ui-monospace,Menlo,Consolas,monospace}
.bar-row{cursor:pointer}.bar-row:hover,.bar-row:focus{background:#eef4fc;outline:none}.bar-row.sel{background:#dde9f8}
#heat{display:none;margin-top:14px}#heatview{position:relative;display:inline-block;line-height:0;background:#000}
#heatview img{width:384px;max-width:100%;height:auto}#heatmap{position:absolute;left:0;top:0}
#heatcap{margin:6px 0;font-weight:600}.caveat{color:#8a4b00;font-size:12px}
</style></head><body>
<header><h1>${esc(title)}</h1><div class="sub" id="model">loading model information…</div></header>
<main>
<section class="panel" id="left">
<div id="drop" tabindex="0" role="button" aria-label="Choose or drop a chest X-ray">Drop a chest X-ray here (PNG, JPEG or DICOM)<br>or click to choose a file
<input id="file" type="file" accept=".png,.jpg,.jpeg,.dcm,.dicom,image/png,image/jpeg,application/dicom" hidden></div>
<img id="preview" alt="the uploaded image">
<div id="status"></div>
<div id="heat" aria-live="polite">
<div id="heatcap"></div>
<div id="heatview"><img id="heatbase" alt="the image as the model saw it"><img id="heatmap" alt="saliency map" style="opacity:0.5"></div>
<div><label for="opacity">Map opacity</label> <input id="opacity" type="range" min="0" max="100" value="50"> <span id="opval">50%</span></div>
<div class="caveat" id="caveat">Grad-CAM of the label's zero-shot score: an explanation aid, not a localisation claim.</div>
</div>
</section>
<section class="panel" id="right">
<h2 style="font-size:16px;margin:0 0 8px">Zero-shot probabilities</h2>
<div class="muted" id="legend">Per pathology: p = softmax over the positive and negative prompts' similarity to the image. Sorted, highest first. Click a label to see where the model looked (a heatmap: an explanation aid, not a localisation claim).</div>
<div id="bars" aria-live="polite"></div>
</section>
</main>
<script>
(function () {
  var info = null;
  var lastFile = null;
  var $ = function (id) { return document.getElementById(id); };
  function text(tag, s, cls) { var e = document.createElement(tag); e.textContent = s; if (cls) e.className = cls; return e; }
  function status(s, err) { var st = $('status'); st.textContent = s; st.className = err ? 'err' : ''; }
  fetch('api/info').then(function (r) { return r.json(); }).then(function (j) {
    info = j;
    $('model').textContent = j.checkpoint + ' · sha256 ' + j.checkpointHash.slice(0, 12) + ' · prompts ' + j.prompts.name + ' · ' + j.labels.length + ' labels · max upload ' + Math.round(j.maxUploadBytes / 1048576) + ' MB' + (j.thresholds ? ' · thresholds loaded' : '') + (j.calibration ? ' · probabilities calibrated (' + j.calibration.description + ')' : '');
  }).catch(function () { $('model').textContent = 'model information unavailable'; });
  function render(res) {
    var bars = $('bars');
    bars.textContent = '';
    res.labels.forEach(function (l) {
      var row = document.createElement('div'); row.className = 'bar-row'; row.setAttribute('data-label', l.label); row.setAttribute('data-p', String(l.probability));
      row.tabIndex = 0; row.setAttribute('role', 'button'); row.title = 'Show the heatmap of ' + l.label;
      row.addEventListener('click', function () { explain(l.label, row); });
      row.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); explain(l.label, row); } });
      var nm = text('div', l.label, 'name'); nm.title = l.label; row.appendChild(nm);
      var track = document.createElement('div'); track.className = 'track';
      var fill = document.createElement('div'); fill.className = 'fill' + (l.call === 1 ? ' pos' : ''); fill.style.width = (100 * l.probability).toFixed(1) + '%';
      track.appendChild(fill);
      if (typeof l.threshold === 'number') { var t = document.createElement('div'); t.className = 'tick'; t.style.left = (100 * l.threshold).toFixed(1) + '%'; t.title = 'threshold ' + l.threshold.toFixed(3); track.appendChild(t); }
      row.appendChild(track);
      row.appendChild(text('div', l.probability.toFixed(3), 'val'));
      bars.appendChild(row);
      var d = document.createElement('details');
      d.appendChild(text('summary', 'prompts'));
      d.appendChild(text('div', 'positive: ' + l.positive.join(' | ')));
      d.appendChild(text('div', 'negative: ' + l.negative.join(' | ')));
      bars.appendChild(d);
    });
  }
  function explain(label, row) {
    if (!lastFile) return;
    Array.prototype.forEach.call(document.querySelectorAll('.bar-row.sel'), function (r) { r.classList.remove('sel'); });
    row.classList.add('sel');
    status('Computing the heatmap of ' + label + '…');
    fetch('api/saliency?label=' + encodeURIComponent(label), { method: 'POST', headers: { 'Content-Type': lastFile.type || 'application/octet-stream' }, body: lastFile })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j, code: r.status }; }); })
      .then(function (x) {
        if (!x.ok) { status((x.j && x.j.error ? x.j.error.message : 'error') + ' (HTTP ' + x.code + ')', true); return; }
        $('heatbase').src = x.j.image;
        $('heatmap').src = x.j.map;
        $('heatcap').textContent = x.j.label + ': p = ' + x.j.probability.toFixed(3) + (x.j.empty ? ' (no positive evidence: the map is empty)' : '');
        $('heatcap').setAttribute('data-label', x.j.label);
        $('caveat').textContent = x.j.method + " of the label's zero-shot score on " + x.j.layer + ': an ' + x.j.caveat + '.';
        $('heat').style.display = 'block';
        status('Heatmap of ' + x.j.label + ' in ' + x.j.ms + ' ms');
      })
      .catch(function (e) { status('Request failed: ' + e, true); });
  }
  $('opacity').addEventListener('input', function () { var v = $('opacity').value; $('heatmap').style.opacity = String(v / 100); $('opval').textContent = v + '%'; });
  function send(file) {
    if (info && file.size > info.maxUploadBytes) { status('The file is ' + (file.size / 1048576).toFixed(1) + ' MB; the limit is ' + Math.round(info.maxUploadBytes / 1048576) + ' MB.', true); return; }
    var img = $('preview');
    var isDicom = /\\.(dcm|dicom)$/i.test(file.name) || file.type === 'application/dicom';
    if (!isDicom) { img.src = URL.createObjectURL(file); img.style.display = 'block'; } else { img.style.display = 'none'; }
    status('Scoring ' + file.name + '…');
    lastFile = file;
    $('heat').style.display = 'none';
    fetch('api/predict', { method: 'POST', headers: { 'Content-Type': file.type || 'application/octet-stream' }, body: file })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j, code: r.status }; }); })
      .then(function (x) {
        if (!x.ok) { status((x.j && x.j.error ? x.j.error.message : 'error') + ' (HTTP ' + x.code + ')', true); return; }
        if (x.j.preview) { img.src = x.j.preview; img.style.display = 'block'; }
        render(x.j);
        status(file.name + ': ' + x.j.image.width + '×' + x.j.image.height + ' ' + x.j.image.format + ', scored in ' + x.j.ms + ' ms');
      })
      .catch(function (e) { status('Request failed: ' + e, true); });
  }
  var drop = $('drop'), input = $('file');
  drop.addEventListener('click', function () { input.click(); });
  drop.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') input.click(); });
  input.addEventListener('change', function () { if (input.files && input.files[0]) send(input.files[0]); });
  ['dragenter', 'dragover'].forEach(function (ev) { drop.addEventListener(ev, function (e) { e.preventDefault(); drop.className = 'over'; }); });
  ['dragleave', 'drop'].forEach(function (ev) { drop.addEventListener(ev, function (e) { e.preventDefault(); drop.className = ''; }); });
  drop.addEventListener('drop', function (e) { var f = e.dataTransfer && e.dataTransfer.files[0]; if (f) send(f); });
})();
</script>
</body></html>
`;
}
