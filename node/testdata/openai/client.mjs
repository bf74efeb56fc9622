// Usage: node client.mjs BASE_URL [PREFIX]
//
// Asks a Strata node's OpenAI-compatible API, through the official openai
// client, for a non-streamed and a streamed greedy completion of the empty
// prompt (200 tokens), and a chat completion, and prints one JSON object
// with what came back. PREFIX is the folder whose node_modules holds
// openai (as `npm install --prefix PREFIX` makes it), when it is not
// beside this script.
import { createRequire } from "node:module";
import path from "node:path";

const [baseURL, prefix] = process.argv.slice(2);
if (!baseURL) {
  console.error("usage: node client.mjs BASE_URL [PREFIX]");
  process.exit(2);
}
const require = createRequire(prefix ? path.join(path.resolve(prefix), "resolve.js") : import.meta.url);
const mod = require("openai");
const OpenAI = mod.OpenAI ?? mod.default ?? mod;

const client = new OpenAI({ baseURL, apiKey: "none", maxRetries: 0, timeout: 60_000 });
const models = await client.models.list();
const model = models.data[0].id;
const params = { model, prompt: "", temperature: 0, max_tokens: 200 };

const plain = await client.completions.create(params);

let text = "";
let finish = null;
let usage = null;
let chunks = 0;
const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) {
  chunks++;
  for (const c of chunk.choices) {
    text += c.text;
    if (c.finish_reason) finish = c.finish_reason;
  }
  if (chunk.usage) usage = chunk.usage;
}

let chatText = "";
const chatStream = await client.chat.completions.create({
  model, temperature: 0, max_tokens: 20, stream: true,
  messages: [{ role: "user", content: "Tell me a story." }],
});
for await (const chunk of chatStream) {
  for (const c of chunk.choices) chatText += c.delta?.content ?? "";
}
const chat = await client.chat.completions.create({
  model, temperature: 0, max_tokens: 20,
  messages: [{ role: "user", content: "Tell me a story." }],
});

let errorStatus = 0;
try {
  await client.completions.create({ ...params, model: "no-such-model" });
} catch (e) {
  errorStatus = e.status ?? -1;
}

console.log(JSON.stringify({
  model,
  plain: { text: plain.choices[0].text, finish: plain.choices[0].finish_reason, usage: plain.usage },
  stream: { text, finish, usage, chunks },
  chat: { text: chat.choices[0].message.content, streamed: chatText, finish: chat.choices[0].finish_reason },
  errorStatus,
}));
