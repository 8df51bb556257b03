// Reads a site's Statuspage API with the `statuspage.io` client library
// (written and published by others, for Statuspage's own pages) and checks
// every document against the types the library declares, read from its
// own `.d.ts` files with the TypeScript compiler: every declared field
// present, of its declared type (strings, numbers, booleans, null, arrays,
// objects, and the values of its enums).
//
// Usage: node check.js BASE_URL
// Prints, on success, one JSON object: document → [[id, status], …] of
// the incidents or maintenances it lists (the page id and status
// indicator for the others); on failure, every mismatch, and exits 1.
//
// Where the library's declarations are narrower than what Statuspage
// itself serves, the check allows Statuspage's documented values, and
// says so below. Where the library requests the wrong document, the
// check requests the right one through the library's own HTTP client.

'use strict';

const path = require('path');
const ts = require('typescript');
const { Statuspage } = require('statuspage.io');

const base = process.argv[2];
if (!base) {
  console.error('usage: node check.js BASE_URL');
  process.exit(2);
}

const dist = path.join(path.dirname(require.resolve('statuspage.io')));
const declarations = path.join(dist, 'interfaces', 'API.d.ts');
const program = ts.createProgram([declarations], { strict: true, noEmit: true });
const checker = program.getTypeChecker();
const apiFile = program.getSourceFile(declarations);

// The `API` interface: each method's declared result type, Promise<T> → T.
function exported(file, name) {
  const module = checker.getSymbolAtLocation(file);
  const symbol = checker.getExportsOfModule(module).find((s) => s.name === name);
  if (!symbol) throw new Error(`${file.fileName} exports no ${name}`);
  return checker.getDeclaredTypeOfSymbol(symbol);
}
function resultOf(type, method) {
  const symbol = checker.getPropertyOfType(type, method);
  if (!symbol) throw new Error(`no method ${method} in ${checker.typeToString(type)}`);
  const signature = checker
    .getTypeOfSymbolAtLocation(symbol, apiFile)
    .getCallSignatures()[0];
  const promise = checker.getReturnTypeOfSignature(signature);
  return checker.getTypeArguments(promise)[0];
}
function memberType(type, name) {
  return checker.getTypeOfSymbolAtLocation(checker.getPropertyOfType(type, name), apiFile);
}

const api = exported(apiFile, 'API');
const incidentsApi = memberType(api, 'incidents');
const maintenancesApi = memberType(api, 'scheduledMaintenances');

// Statuspage serves `impact: "maintenance"` on maintenances and the
// maintenance statuses on their updates; the library's enums
// (IncidentImpact, IncidentStatus) omit them.
const MAINTENANCE_EXTRAS = {
  impact: ['maintenance'],
  status: ['scheduled', 'in_progress', 'verifying', 'completed'],
};

function describe(type) {
  return checker.typeToString(type);
}

// Appends to `errors` every way `value` does not fit `type`.
function check(value, type, where, errors, inMaintenance) {
  const flags = type.flags;
  if (type.isUnion()) {
    for (const member of type.types) {
      const found = [];
      check(value, member, where, found, inMaintenance);
      if (found.length === 0) return;
    }
    const field = where.split('.').pop();
    if (
      inMaintenance &&
      MAINTENANCE_EXTRAS[field] &&
      MAINTENANCE_EXTRAS[field].includes(value)
    ) {
      return;
    }
    errors.push(`${where}: ${JSON.stringify(value)} is not ${describe(type)}`);
    return;
  }
  if (flags & ts.TypeFlags.StringLiteral) {
    if (value !== type.value) errors.push(`${where}: ${JSON.stringify(value)} is not "${type.value}"`);
    return;
  }
  if (flags & ts.TypeFlags.String) {
    if (typeof value !== 'string') errors.push(`${where}: ${JSON.stringify(value)} is not a string`);
    return;
  }
  if (flags & ts.TypeFlags.Number) {
    if (typeof value !== 'number') errors.push(`${where}: ${JSON.stringify(value)} is not a number`);
    return;
  }
  if (flags & ts.TypeFlags.BooleanLiteral) {
    const expected = describe(type) === 'true';
    if (value !== expected) errors.push(`${where}: ${JSON.stringify(value)} is not ${expected}`);
    return;
  }
  if (flags & ts.TypeFlags.Boolean) {
    if (typeof value !== 'boolean') errors.push(`${where}: ${JSON.stringify(value)} is not a boolean`);
    return;
  }
  if (flags & ts.TypeFlags.Null) {
    if (value !== null) errors.push(`${where}: ${JSON.stringify(value)} is not null`);
    return;
  }
  if (flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
  if (checker.isArrayType(type)) {
    if (!Array.isArray(value)) {
      errors.push(`${where}: ${JSON.stringify(value)} is not an array`);
      return;
    }
    const element = checker.getTypeArguments(type)[0];
    value.forEach((item, index) =>
      check(item, element, `${where}[${index}]`, errors, inMaintenance),
    );
    return;
  }
  if (flags & ts.TypeFlags.Object || type.isIntersection()) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      errors.push(`${where}: ${JSON.stringify(value)} is not an object (${describe(type)})`);
      return;
    }
    const maintenance = inMaintenance || where.includes('scheduled_maintenances[');
    for (const property of checker.getPropertiesOfType(type)) {
      const name = property.name;
      const optional = (property.flags & ts.SymbolFlags.Optional) !== 0;
      if (!(name in value)) {
        if (!optional) errors.push(`${where}.${name}: missing (declared ${describe(checker.getTypeOfSymbolAtLocation(property, apiFile))})`);
        continue;
      }
      const declared = checker.getTypeOfSymbolAtLocation(property, apiFile);
      check(value[name], declared, `${where}.${name}`, errors, maintenance);
    }
    return;
  }
  errors.push(`${where}: cannot check type ${describe(type)} (flags ${flags})`);
}

async function main() {
  const statuspage = new Statuspage('herald');
  statuspage.setApiUrl(base);
  // The library's own HTTP client (axios, set up by the library), for the
  // two documents whose methods request `upcoming.json` instead (its
  // endpoint table maps `active` and `all` to that file).
  const client = statuspage.apiClient;
  const get = async (endpoint) => (await client.get(endpoint)).data;
  const documents = [
    ['summary.json', () => statuspage.api.getSummary(), resultOf(api, 'getSummary')],
    ['status.json', () => statuspage.api.getStatus(), resultOf(api, 'getStatus')],
    ['components.json', () => statuspage.api.getComponents(), resultOf(api, 'getComponents')],
    ['incidents.json', () => statuspage.api.incidents.getAll(), resultOf(incidentsApi, 'getAll')],
    [
      'incidents/unresolved.json',
      () => statuspage.api.incidents.getUnresolved(),
      resultOf(incidentsApi, 'getUnresolved'),
    ],
    [
      'scheduled-maintenances.json',
      () => get('/api/v2/scheduled-maintenances.json'),
      resultOf(maintenancesApi, 'getAll'),
    ],
    [
      'scheduled-maintenances/upcoming.json',
      () => statuspage.api.scheduledMaintenances.getUpcoming(),
      resultOf(maintenancesApi, 'getUpcoming'),
    ],
    [
      'scheduled-maintenances/active.json',
      () => get('/api/v2/scheduled-maintenances/active.json'),
      resultOf(maintenancesApi, 'getActive'),
    ],
  ];
  const errors = [];
  const listed = {};
  for (const [name, fetch, type] of documents) {
    const value = await fetch();
    check(value, type, name, errors, false);
    const list = value.incidents || value.scheduled_maintenances;
    if (list) {
      listed[name] = list.map((item) => [item.id, item.status]);
    } else if (value.status) {
      listed[name] = [[value.page.id, value.status.indicator]];
    } else {
      listed[name] = (value.components || []).map((item) => [item.id, item.status]);
    }
  }
  if (errors.length > 0) {
    console.error(errors.join('\n'));
    process.exit(1);
  }
  console.log(JSON.stringify(listed));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
