/**
 * The admin page's stylesheet and script, served from /admin/assets/ (the
 * page's Content-Security-Policy allows only same-origin scripts and styles:
 * no CDN, no inline code). Kept as strings so the built package carries them.
 */

export const ADMIN_CSS = `
:root { color-scheme: light dark; --ok: #2e8540; --bad: #c62828; --warn: #e0a100; --info: #1f6fb2; --muted: #9aa0a6; --bg: Canvas; --fg: CanvasText; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; justify-content: space-between; align-items: center; padding: .6rem 1rem; border-bottom: 1px solid #8884; }
header h1 { font-size: 1.1rem; margin: 0; } header a { color: inherit; text-decoration: none; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: .8rem; padding: .8rem 1rem; }
.stamp { grid-column: 1 / -1; margin: 0; color: var(--muted); font-size: .85rem; }
.panel { border: 1px solid #8884; border-radius: 6px; padding: .4rem .9rem .8rem; overflow-x: auto; }
.panel h2 { font-size: 1rem; margin: .4rem 0 .6rem; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0; }
th, td { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #8883; vertical-align: top; }
.num { text-align: right; font-variant-numeric: tabular-nums; } td.num { white-space: nowrap; }
#runs { grid-column: 1 / -1; }
svg.chart { max-width: 100%; height: auto; }
.path { font-family: ui-monospace, monospace; font-size: .85em; word-break: break-all; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 .4rem; border-radius: 3px; color: #fff; background: var(--muted); }
.badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); } .badge.warn { background: var(--warn); color: #000; } .badge.info { background: var(--info); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem .8rem; margin: 0 0 .5rem; } dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
svg.chart rect.track { fill: #8882; } svg.chart rect.frame { fill: none; stroke: #8884; }
svg.chart .ok { fill: var(--ok); } svg.chart .bad { fill: var(--bad); } svg.chart .warn { fill: var(--warn); } svg.chart .info { fill: var(--info); } svg.chart .muted { fill: var(--muted); }
svg.chart path.line { fill: none; stroke-width: 2; } svg.chart path.ok { stroke: var(--ok); } svg.chart path.bad { stroke: var(--bad); } svg.chart path.info { stroke: var(--info); }
svg.chart text.axis { font-size: 10px; fill: var(--muted); }
.key::before { content: "■ "; } .key.ok::before { color: var(--ok); } .key.info::before { color: var(--info); } .key.bad::before { color: var(--bad); }
figure { margin: 0; } figcaption { font-size: .85em; color: var(--muted); }
progress.run-progress { width: 160px; }
.split { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: .8rem; }
.next-step { background: #1f6fb21a; padding: .4rem .6rem; border-radius: 4px; }
.login { max-width: 420px; } .login input { width: 100%; padding: .4rem; margin: .3rem 0 .6rem; }
.stale-banner { grid-column: 1 / -1; background: var(--warn); color: #000; padding: .3rem .6rem; border-radius: 4px; }
footer { padding: .6rem 1rem; color: var(--muted); font-size: .85rem; }
`;

/**
 * Refreshes the sections every few seconds, in place, while the tab is
 * visible. The page works without it; with it, an operator just watches.
 * Credentials travel in the session cookie the sign-in form set.
 */
export const ADMIN_JS = `
(() => {
  const main = document.getElementById('sections');
  const url = main && main.dataset.refresh;
  if (!url) return;
  const INTERVAL_MS = 3000;
  let failures = 0;
  async function refresh() {
    if (document.hidden) return;
    try {
      const response = await fetch(url, { credentials: 'same-origin', headers: { accept: 'text/html' } });
      if (response.status === 401 || response.status === 403) { window.location.assign('/admin'); return; }
      if (!response.ok) throw new Error('HTTP ' + response.status);
      main.innerHTML = await response.text();
      failures = 0;
    } catch (error) {
      failures += 1;
      if (!main.querySelector('.stale-banner')) {
        const banner = document.createElement('p');
        banner.className = 'stale-banner';
        banner.textContent = 'The server did not answer (' + error.message + '): showing the last data.';
        main.prepend(banner);
      }
    }
  }
  setInterval(refresh, INTERVAL_MS);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
})();
`;
