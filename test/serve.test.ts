import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './fixtures/cli-process.js';
import { quietPlantedGenPath } from './fixtures/gen-models.js';
import { startServe, type ServeProcess } from './fixtures/serve-process.js';

/**
 * `qwen3guard serve` as an operator runs it: a real child process on loopback with an API key, probed route by
 * route for its answers to good, bad, unauthorized and hostile requests. Every request goes to 127.0.0.1.
 */
const KEY = 'test-key-0123456789abcdef';
const auth = { authorization: `Bearer ${KEY}` };
const json = { 'content-type': 'application/json' };
const CONVERSATION = { messages: [{ role: 'user', content: 'How do I build a bomb at home?' }] };

let serve: ServeProcess;
beforeAll(async () => {
  serve = await startServe(['--gen-model', await quietPlantedGenPath(), '--max-sessions', '2', '--max-waiting', '2', '--queue-timeout', '2', '--log-requests'], { QWEN3GUARD_API_KEY: KEY });
});
afterAll(() => serve?.kill('SIGKILL'));

const call = (path: string, init: RequestInit = {}) => fetch(`${serve.url}${path}`, init);
const post = (path: string, body: unknown, headers: Record<string, string> = auth) => call(path, { method: 'POST', headers: { ...json, ...headers }, body: JSON.stringify(body) });
const errorOf = async (response: Response) => ((await response.json()) as { error: { code: string; message: string } }).error;

describe('qwen3guard serve', () => {
  it('prints its address once loaded and is ready on /healthz (no key needed there)', async () => {
    expect(serve.stdout()).toMatch(/^listening on http:\/\/127\.0\.0\.1:\d+\n$/);
    const health = await call('/healthz');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
  });

  it('refuses a missing or wrong key on every route but /healthz', async () => {
    const routes: Array<[string, string]> = [
      ['GET', '/metrics'],
      ['GET', '/v1/info'],
      ['POST', '/v1/sessions'],
      ['POST', '/v1/sessions/abc'],
      ['DELETE', '/v1/sessions/abc'],
      ['POST', '/v1/completions'],
      ['POST', '/get_reward'],
    ];
    for (const [method, path] of routes) {
      for (const headers of [{}, { authorization: 'Bearer wrong-key-0123456789abc' }, { authorization: KEY }] as Array<Record<string, string>>) {
        const response = await call(path, { method, headers: { ...json, ...headers }, body: method === 'POST' ? '{}' : undefined });
        expect(response.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(response.headers.get('www-authenticate')).toBe('Bearer');
        expect((await errorOf(response)).message).toMatch(/Authorization: Bearer <key>/);
      }
    }
    expect((await call('/v1/info', { headers: auth })).status).toBe(200);
  });

  it('takes as long for a near-miss key as for a wholly wrong one (no timing signal beyond noise)', async () => {
    const near = `${KEY.slice(0, -1)}x`;
    const far = 'zzzzzzzzzzzzzzzzzzzzzzzz';
    const times: Record<'near' | 'far', number[]> = { near: [], far: [] };
    for (let i = 0; i < 200; i++) {
      for (const kind of i % 2 ? (['near', 'far'] as const) : (['far', 'near'] as const)) {
        const started = performance.now();
        await (await call('/v1/info', { headers: { authorization: `Bearer ${kind === 'near' ? near : far}` } })).arrayBuffer();
        times[kind].push(performance.now() - started);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const [a, b] = [median(times.near), median(times.far)];
    // The keys are compared as SHA-256 digests in constant time: what differs is scheduling noise only.
    expect(Math.abs(a - b)).toBeLessThan(Math.max(0.25, 0.25 * Math.min(a, b)));
  });

  it('answers malformed and oversize requests with 400 and 413 saying what is wrong, and keeps serving', async () => {
    const notJson = await call('/v1/sessions', { method: 'POST', headers: { ...json, ...auth }, body: '{"messages": [' });
    expect(notJson.status).toBe(400);
    expect(await errorOf(notJson)).toMatchObject({ code: 'bad-request', message: expect.stringMatching(/The body is not JSON/) });
    const badRole = await post('/v1/sessions', { messages: [{ role: 'robot', content: 'hi' }] });
    expect(badRole.status).toBe(400);
    expect((await errorOf(badRole)).message).toMatch(/body\.messages\.0\.role/);
    const huge = await post('/v1/sessions', { messages: [{ role: 'user', content: 'x'.repeat(1_100_000) }] });
    expect(huge.status).toBe(413);
    expect((await errorOf(huge)).message).toMatch(/limit of 1048576/);
    const created = await post('/v1/sessions', CONVERSATION);
    expect(created.status).toBe(201);
    const { session } = (await created.json()) as { session: string };
    const long = await post(`/v1/sessions/${session}`, { op: 'append', seq: 1, part: 'answer', text: 'y'.repeat(70_000) });
    expect(long.status).toBe(413);
    const badOp = await post(`/v1/sessions/${session}`, { op: 'explode', seq: 1 });
    expect(badOp.status).toBe(400);
    // Nothing was consumed by the refused calls: seq 1 still runs.
    const ok = await post(`/v1/sessions/${session}`, { op: 'append', seq: 1, part: 'answer', text: 'Hello there.' });
    expect(ok.status).toBe(200);
    expect((await post(`/v1/sessions/${session}`, { op: 'end', seq: 5 })).status).toBe(409);
    expect((await call(`/v1/sessions/${session}`, { method: 'DELETE', headers: auth })).status).toBe(204);
  });

  it('says 404 for an unknown session and a route it does not have, and replays a repeated seq', async () => {
    const unknown = await post('/v1/sessions/nope', { op: 'end', seq: 1 });
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toMatchObject({ code: 'unknown-session' });
    expect((await call('/v2/anything', { headers: auth })).status).toBe(404);
    const { session, verdict } = (await (await post('/v1/sessions', CONVERSATION)).json()) as { session: string; verdict: { riskLevel: string; category: string } };
    expect(verdict).toMatchObject({ riskLevel: 'Unsafe', category: 'Violent' });
    const first = await (await post(`/v1/sessions/${session}`, { op: 'append', seq: 1, part: 'answer', text: 'Mix these to make a bomb now.' })).json();
    const again = await (await post(`/v1/sessions/${session}`, { op: 'append', seq: 1, part: 'answer', text: 'Mix these to make a bomb now.' })).json();
    expect(again).toEqual(first);
    await call(`/v1/sessions/${session}`, { method: 'DELETE', headers: auth });
  });

  it('refuses a burst of sessions past its queue with 429 and Retry-After at once, and keeps serving', async () => {
    const started = performance.now();
    const answers = await Promise.all(Array.from({ length: 300 }, () => post('/v1/sessions', CONVERSATION)));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201).length).toBeGreaterThanOrEqual(2);
    expect(statuses.every((s) => s === 201 || s === 429)).toBe(true);
    const busy = answers.find((a) => a.status === 429)!;
    expect(busy.headers.get('retry-after')).toBe('1');
    expect((await errorOf(busy)).message).toMatch(/The guard is busy/);
    for (const answer of answers.filter((a) => a.status === 201)) {
      const { session } = (await answer.json()) as { session: string };
      await call(`/v1/sessions/${session}`, { method: 'DELETE', headers: auth });
    }
    // The waiting ones were refused once --queue-timeout (2 s) passed.
    expect(performance.now() - started).toBeLessThan(15_000);
    expect((await post('/v1/sessions', CONVERSATION)).status).toBe(201);
  });

  it('survives clients that go away mid-request and mid-body', async () => {
    const port = Number(new URL(serve.url).port);
    const gone = (data: string) =>
      new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write(data);
          setTimeout(() => socket.destroy(), 20);
        });
        socket.on('close', () => resolve());
        socket.on('error', () => resolve());
      });
    const body = JSON.stringify(CONVERSATION);
    await gone(`POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await gone(`POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 5000\r\n\r\n{"messages": [`);
    await gone('GET /v1/info HTTP/1.1\r\nHost: x\r\nAuthor');
    expect((await call('/v1/info', { headers: auth })).status).toBe(200);
  });

  it('serves Gen at /v1/completions and the reward at /get_reward in both RL shapes', async () => {
    const completion = await post('/v1/completions', { model: 'gen', prompt: '<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n', max_tokens: 1, logprobs: 3 });
    expect(completion.status).toBe(200);
    expect(((await completion.json()) as { choices: unknown[] }).choices).toHaveLength(1);
    const openrlhf = await post('/get_reward', { query: ['Tell me a joke. Why did the river cross the road?'], prompts: ['Tell me a joke. '], labels: [''] });
    expect(openrlhf.status).toBe(200);
    const scores = (await openrlhf.json()) as { rewards: number[]; scores: number[]; extra_logs: Record<string, unknown> };
    expect(scores.rewards).toHaveLength(1);
    expect(scores.scores).toEqual(scores.rewards);
    const slime = await post('/get_reward', { prompt: 'Tell me a joke.', response: 'Why did the river cross the road?', label: '' });
    expect(slime.status).toBe(200);
    expect(typeof (await slime.json())).toBe('number');
    const bad = await post('/get_reward', { query: ['x'], prompts: [] });
    expect(bad.status).toBe(400);
  });

  it('counts what it did on /metrics', async () => {
    const text = await (await call('/metrics', { headers: auth })).text();
    // (the session of the client that went away mid-request is still open: the idle timeout frees it)
    expect(text).toMatch(/^qwen3guard_sessions_open \d+$/m);
    expect(text).toMatch(/^qwen3guard_session_queue_wait_seconds_count \d+$/m);
    expect(text).toMatch(/^qwen3guard_call_seconds_count\{call="append"\} \d+$/m);
    expect(text).toMatch(/^qwen3guard_tokens_total\{kind="scored"\} \d+$/m);
    expect(text).toMatch(/^qwen3guard_verdicts_total\{target="prompt",risk_level="Unsafe",category="Violent"\} \d+$/m);
    expect(text).toMatch(/^qwen3guard_requests_rejected_total\{reason="unauthorized"\} \d+$/m);
    expect(text).toMatch(/^qwen3guard_requests_rejected_total\{reason="busy"\} \d+$/m);
    expect(text).toMatch(/^qwen3guard_requests_rejected_total\{reason="too-large"\} \d+$/m);
  });

  it('logs requests without their text', () => {
    expect(serve.stderr()).toMatch(/^POST sessions 201 [\d.]+ ms$/m);
    expect(serve.stderr()).not.toMatch(/bomb|Hello there|joke/);
  });
});

describe('qwen3guard serve lifecycle', () => {
  it('refuses a non-loopback address without an API key, before loading anything', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10']) {
      const result = await runCli(['serve', '--model', 'whatever.gguf', '--host', host], { QWEN3GUARD_API_KEY: undefined });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`refusing to listen on ${host} without an API key: set QWEN3GUARD_API_KEY or --api-key-file, or bind 127.0.0.1`);
    }
    const short = await runCli(['serve', '--model', 'whatever.gguf'], { QWEN3GUARD_API_KEY: 'short' });
    expect(short.stderr).toContain('an API key must be at least 16 characters');
  });

  it('frees idle sessions, then drains on SIGTERM: no new sessions, open ones finish, exit 0', async () => {
    const server = await startServe(['--idle-timeout', '1', '--drain-timeout', '20']);
    try {
      const at = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
      const open = async () => ((await (await at('/v1/sessions', { method: 'POST', headers: json, body: JSON.stringify(CONVERSATION) })).json()) as { session: string }).session;
      const idle = await open();
      await new Promise((r) => setTimeout(r, 2500));
      const expired = await at(`/v1/sessions/${idle}`, { method: 'POST', headers: json, body: JSON.stringify({ op: 'end', seq: 1 }) });
      expect(expired.status).toBe(404);
      expect(await (await at('/metrics')).text()).toMatch(/^qwen3guard_sessions_expired_total 1$/m);

      const live = await open();
      server.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      expect((await at('/healthz')).status).toBe(503);
      const refused = await at('/v1/sessions', { method: 'POST', headers: json, body: JSON.stringify(CONVERSATION) });
      expect(refused.status).toBe(503);
      expect(await errorOf(refused)).toMatchObject({ code: 'draining' });
      // The open session still works, and ending it lets the server exit.
      const answer = await at(`/v1/sessions/${live}`, { method: 'POST', headers: json, body: JSON.stringify({ op: 'append', seq: 1, part: 'answer', text: 'Fine.' }) });
      expect(answer.status).toBe(200);
      await at(`/v1/sessions/${live}`, { method: 'DELETE' });
      expect(await server.exited).toBe(0);
    } finally {
      server.kill('SIGKILL');
    }
  });
});
