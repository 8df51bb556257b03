// Checks herald's chat payloads with libraries the chat services' own
// people publish, not with herald's idea of them:
//
// - slack.json: each block against `KnownBlock` from `@slack/types`
//   (Slack's Node SDK types for Block Kit), with TypeScript's strict
//   checks, excess properties included. The top level is typed here, as
//   `chat.postMessage` documents it, since the SDK types no incoming
//   webhook body: `text`, `blocks`, `unfurl_links`, `unfurl_media`.
// - discord.json: as `RESTPostAPIWebhookWithTokenJSONBody` from
//   `discord-api-types` (v10), the body of "Execute Webhook".
// - teams.json: a `message` whose one attachment is an Adaptive Card,
//   parsed by Microsoft's `adaptivecards` library; any parse event
//   (error or warning) or validation issue fails.
//
// Usage: node check-chat.js DIR (holding slack.json, discord.json,
// teams.json). Prints "ok" and exits 0, or prints every problem and
// exits 1.

'use strict';

const fs = require('fs');
const path = require('path');
const ts = require('typescript');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node check-chat.js DIR');
  process.exit(2);
}
const read = (name) => fs.readFileSync(path.join(dir, name), 'utf8');
const problems = [];

// TypeScript: the payloads as typed constants in a source file that is
// only in memory, beside this script so that its imports resolve here.
const source = `
import type { KnownBlock } from '@slack/types';
import type { RESTPostAPIWebhookWithTokenJSONBody } from 'discord-api-types/v10';

interface SlackWebhookBody {
  text: string;
  blocks: KnownBlock[];
  unfurl_links?: boolean;
  unfurl_media?: boolean;
}

export const slack: SlackWebhookBody = ${read('slack.json')};
export const discord: RESTPostAPIWebhookWithTokenJSONBody = ${read('discord.json')};
`;
const file = path.join(__dirname, 'chat-payloads.ts');
const options = { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true };
const host = ts.createCompilerHost(options);
const getSourceFile = host.getSourceFile;
host.getSourceFile = (name, version, ...rest) =>
  name === file
    ? ts.createSourceFile(name, source, version)
    : getSourceFile.call(host, name, version, ...rest);
const fileExists = host.fileExists;
host.fileExists = (name) => name === file || fileExists.call(host, name);
const program = ts.createProgram([file], options, host);
for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
  const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
  let where = '';
  if (diagnostic.file && diagnostic.start !== undefined) {
    const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    where = `${path.basename(diagnostic.file.fileName)}:${line + 1}:${character + 1}: `;
  }
  problems.push(`${where}${text}`);
}

// Adaptive Cards: Microsoft's parser. It renders to the DOM, which Node
// lacks; parsing and validating need none.
const teams = JSON.parse(read('teams.json'));
if (teams.type !== 'message' || !Array.isArray(teams.attachments) || teams.attachments.length !== 1) {
  problems.push(`teams: not a message with one attachment: ${JSON.stringify(teams)}`);
} else {
  const attachment = teams.attachments[0];
  if (attachment.contentType !== 'application/vnd.microsoft.card.adaptive') {
    problems.push(`teams: attachment contentType ${attachment.contentType}`);
  }
  // The package's `lib/` is ES modules Node cannot load; its `dist/` is
  // the same library as one UMD bundle.
  const AC = require('adaptivecards/dist/adaptivecards.js');
  const card = new AC.AdaptiveCard();
  const context = new AC.SerializationContext();
  card.parse(attachment.content, context);
  for (let i = 0; i < context.eventCount; i++) {
    const event = context.getEventAt(i);
    problems.push(`teams: parse ${AC.ValidationPhase[event.phase]} ${AC.ValidationEvent[event.event]}: ${event.message}`);
  }
  const validation = card.validateProperties();
  for (const issue of validation.validationEvents) {
    problems.push(`teams: ${AC.ValidationEvent[issue.event]}: ${issue.message}`);
  }
  // What the parser made of it, read back: every element and action kept.
  const kept = card.toJSON();
  const count = (value) => (Array.isArray(value) ? value.length : 0);
  if (count(kept.body) !== count(attachment.content.body) || count(kept.actions) !== count(attachment.content.actions)) {
    problems.push(`teams: the parser kept ${JSON.stringify(kept)} of ${JSON.stringify(attachment.content)}`);
  }
}

if (problems.length > 0) {
  console.log(problems.join('\n'));
  process.exit(1);
}
console.log('ok');
