import fs from 'node:fs';

/**
 * Debian's Chromium for the browser checks (report card screenshot, the `serve` page flow). Locally a
 * missing Chromium skips those tests; under `CI=true` it fails them, so CI cannot pass without having
 * rendered the pages. CHROMIUM=/path overrides the binary.
 */
export function findChromium(): string | null {
  const cands = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  return cands.find((p): p is string => !!p && fs.existsSync(p)) ?? null;
}

export const requireBrowser = process.env.CI === 'true' || process.env.CI === '1';

/** `test` when Chromium is there or CI demands it (then a missing one fails the test), else `test.skip`. */
export function browserTest(): jest.It {
  return findChromium() || requireBrowser ? test : test.skip;
}

/** The Chromium binary, or a failure that says how to install it (only reached when CI demands it). */
export function chromiumOrFail(): string {
  const c = findChromium();
  if (!c) throw new Error('CI=true but Chromium is missing: apt-get install -y chromium (or set CHROMIUM)');
  return c;
}
