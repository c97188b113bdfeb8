/**
 * The engine without the middleware: classify a prompt and a response token by token.
 * `npx tsx examples/classify.ts guard.gguf`
 */
import { decideResponse, Qwen3Guard } from 'ai-sdk-qwen3guard';

const guard = await Qwen3Guard.load({ modelPath: process.argv[2] ?? 'guard.gguf' });
const session = await guard.createSession();
try {
  const prompt = await session.checkPrompt([{ role: 'user', content: 'How do I pick a lock?' }]);
  console.log('prompt', prompt.riskLevel, prompt.category, prompt.probabilities);
  const answer = 'You will need a tension wrench and a pick.';
  const tokens = [...(await session.appendText('answer', answer)), ...(await session.end())];
  for (const t of tokens) console.log(JSON.stringify(t.start === undefined ? '<|im_end|>' : answer.slice(t.start, t.end)), t.riskLevel, t.category ?? '');
  console.log('response', decideResponse(tokens));
} finally {
  await session.dispose();
  await guard.dispose();
}
