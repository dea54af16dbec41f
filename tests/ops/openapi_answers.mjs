// Validates recorded answers of the broker against docs/openapi.yaml (ops_test records them from a
// running broker): each answer's status must be documented for its operation, with its media type;
// its body must validate against that response's JSON Schema (Ajv, JSON Schema 2020-12 as OpenAPI
// 3.1 uses it, formats checked); a response documented without content must have no body; and every
// header the response documents as required must be there.
//
//   node tests/ops/openapi_answers.mjs OPENAPI_YAML ANSWERS_JSON
//
// ANSWERS_JSON: [{"method": "get", "path": "/token/{userId}", "status": 200,
//                 "content_type": "application/json", "headers": {"x-request-id": "..."},
//                 "body": "..."}, ...] (header names in lower case, the body as received).
// Prints one line per answer; exits 1 when any fails.
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const [docPath, answersPath] = process.argv.slice(2);
if (!docPath || !answersPath) {
  console.error('usage: openapi_answers.mjs OPENAPI_YAML ANSWERS_JSON');
  process.exit(2);
}
const doc = parse(readFileSync(docPath, 'utf8'));
const answers = JSON.parse(readFileSync(answersPath, 'utf8'));

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
const id = 'https://token-broker.invalid/openapi.json';
ajv.addSchema({ ...doc, $id: id });

const pointer = (...parts) => '/' + parts.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
const resolve = (node) => {
  while (node && node.$ref) {
    node = node.$ref
      .replace(/^#\//, '')
      .split('/')
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((n, k) => n?.[k], doc);
  }
  return node;
};

let failed = 0;
for (const a of answers) {
  const what = `${a.method.toUpperCase()} ${a.path} ${a.status}`;
  const problems = [];
  const operation = doc.paths?.[a.path]?.[a.method];
  const response = resolve(operation?.responses?.[String(a.status)]);
  if (!response) {
    problems.push('status not documented for this operation');
  } else {
    const mediaType = (a.content_type ?? '').split(';')[0].trim();
    if (!response.content) {
      if (a.body) problems.push('documented without a body, but has one');
    } else if (!response.content[mediaType]) {
      problems.push(`media type ${mediaType || '(none)'} not documented (${Object.keys(response.content).join(', ')})`);
    } else {
      // The schema as a fragment of the whole document, so that its $refs resolve.
      const ref = `${id}#${pointer('paths', a.path, a.method, 'responses', a.status)}`;
      const schemaRef = operation.responses[String(a.status)].$ref
        ? `${id}#${operation.responses[String(a.status)].$ref.slice(1)}${pointer('content', mediaType, 'schema')}`
        : `${ref}${pointer('content', mediaType, 'schema')}`;
      const validate = ajv.getSchema(schemaRef);
      let body = a.body;
      if (mediaType === 'application/json') {
        try {
          body = JSON.parse(a.body);
        } catch (e) {
          problems.push(`body is not JSON: ${e.message}`);
        }
      }
      if (!problems.length && !validate(body))
        problems.push(...validate.errors.map((e) => `${e.instancePath || '(body)'} ${e.message}`));
    }
    for (const [name, header] of Object.entries(response.headers ?? {}))
      if (resolve(header).required && !(name.toLowerCase() in (a.headers ?? {})))
        problems.push(`required header ${name} missing`);
  }
  if (problems.length) {
    ++failed;
    console.log(`FAIL ${what}: ${problems.join('; ')}`);
  } else {
    console.log(`ok   ${what}`);
  }
}
console.log(`${answers.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
