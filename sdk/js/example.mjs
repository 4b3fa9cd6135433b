// Rubin's OpenAI-compatible API from JavaScript, with the official `openai` npm package, unchanged.
//   cd sdk/js && npm install && RUBIN_URL=http://localhost:3000 RUBIN_API_KEY=rk-... node example.mjs
// Prints the models, one answer, then a streamed answer and its token usage (one JSON line each).
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.RUBIN_URL ?? "http://localhost:3000"}/v1`,
  apiKey: process.env.RUBIN_API_KEY,
  maxRetries: 0,
});

const models = await client.models.list();
const model = process.env.RUBIN_MODEL ?? models.data[0].id;
console.log(JSON.stringify({ models: models.data.map((m) => m.id) }));

const reply = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Say hello in one short sentence." }],
});
console.log(JSON.stringify({ answer: reply.choices[0].message.content, usage: reply.usage }));

const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Name three gemstones." }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let usage = null;
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
console.log(JSON.stringify({ streamed: text, usage }));

try {
  await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] });
} catch (error) {
  console.log(JSON.stringify({ error: { status: error.status, code: error.code } }));
}
