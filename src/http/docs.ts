/**
 * `/docs`: a self-contained HTML rendering of the OpenAPI document (no CDN,
 * no script: the service may run where the network is closed). Rendered on
 * the server from the same document `/docs/json` serves.
 */

interface OpenApiDoc {
  info?: { title?: string; version?: string; description?: string };
  paths?: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown>; securitySchemes?: Record<string, { description?: string }> };
}

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; required?: boolean; description?: string; schema?: unknown }>;
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: unknown }> }>;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);

/** Inline `code` spans of the descriptions, after escaping. */
const prose = (text: string | undefined) => (text ? escapeHtml(text).replace(/`([^`]+)`/g, '<code>$1</code>') : '');

const json = (value: unknown) => `<pre>${escapeHtml(JSON.stringify(value, null, 2))}</pre>`;

function schemaName(schema: unknown): string {
  const ref = (schema as { $ref?: string } | undefined)?.$ref;
  if (ref) {
    const name = ref.split('/').pop() ?? ref;
    return `<a href="#schema-${escapeHtml(name)}">${escapeHtml(name)}</a>`;
  }
  const type = (schema as { type?: unknown } | undefined)?.type;
  return escapeHtml(Array.isArray(type) ? type.join(' | ') : String(type ?? 'any'));
}

function renderOperation(method: string, path: string, op: Operation): string {
  const anchor = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, '-');
  const params = (op.parameters ?? [])
    .map(
      (p) =>
        `<tr><td><code>${escapeHtml(p.name)}</code></td><td>${escapeHtml(p.in)}</td><td>${p.required ? 'yes' : ''}</td><td>${schemaName(p.schema)}</td><td>${prose(p.description ?? (p.schema as { description?: string })?.description)}</td></tr>`,
    )
    .join('');
  const body = op.requestBody?.content?.['application/json']?.schema;
  const responses = Object.entries(op.responses ?? {})
    .map(
      ([status, r]) =>
        `<tr><td>${escapeHtml(status)}</td><td>${schemaName(r.content?.['application/json']?.schema)}</td><td>${prose(r.description)}</td></tr>`,
    )
    .join('');
  return `<section class="op" id="${anchor}">
<h3><span class="method ${method}">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h3>
<p>${prose(op.summary)}</p>${op.description ? `<p>${prose(op.description)}</p>` : ''}
<p class="auth">${op.security && op.security.length > 0 ? 'Needs a bearer token (or X-User-Id in AUTH_MODE=dev).' : 'No authentication.'}</p>
${params ? `<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th><th>type</th><th></th></tr>${params}</table>` : ''}
${body ? `<h4>Request body (application/json)</h4>${json(body)}` : ''}
<h4>Responses</h4><table><tr><th>status</th><th>body</th><th></th></tr>${responses}</table>
</section>`;
}

export function renderDocsPage(doc: OpenApiDoc): string {
  const ops: string[] = [];
  const toc: string[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const anchor = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, '-');
      toc.push(
        `<li><a href="#${anchor}"><span class="method ${method}">${method.toUpperCase()}</span> ${escapeHtml(path)}</a> ${prose(op.summary)}</li>`,
      );
      ops.push(renderOperation(method, path, op));
    }
  }
  const schemas = Object.entries(doc.components?.schemas ?? {})
    .map(([name, schema]) => `<section id="schema-${escapeHtml(name)}"><h3>${escapeHtml(name)}</h3>${json(schema)}</section>`)
    .join('\n');
  const title = escapeHtml(doc.info?.title ?? 'API');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#1d232a}
code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f4f6f8;padding:.6rem;overflow:auto;border-radius:4px}
table{border-collapse:collapse;margin:.3rem 0}td,th{border:1px solid #d5dbe1;padding:.2rem .5rem;text-align:left;vertical-align:top}
.op{border-top:1px solid #d5dbe1;padding-top:.5rem}.method{display:inline-block;min-width:4.2em;font-weight:600}
.get{color:#1a7f37}.post{color:#0b5cad}.put,.patch{color:#9a6700}.delete{color:#cf222e}.auth{color:#57606a;font-size:13px}
</style></head><body>
<h1>${title} <small>${escapeHtml(doc.info?.version ?? '')}</small></h1>
<p>${prose(doc.info?.description)}</p>
<p>Machine-readable OpenAPI 3 document: <a href="/docs/json">/docs/json</a>.</p>
<h2>Routes</h2><ul>${toc.join('')}</ul>
<h2>Operations</h2>
${ops.join('\n')}
<h2>Schemas</h2>
${schemas}
</body></html>`;
}
