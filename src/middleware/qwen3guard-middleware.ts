import type { LanguageModelV4, LanguageModelV4CallOptions, LanguageModelV4Middleware, LanguageModelV4Prompt } from '@ai-sdk/provider';
import type { PromptVerdict } from '../guard/types.js';
import { checkCategories } from '../policy/categories.js';
import { PolicyFailures, resolvePromptPolicy, resolveResponsePolicy } from '../policy/resolve.js';
import { requestOverrideSchema } from '../policy/schema.js';
import { anySignal } from '../shared/abort.js';
import { OptionsError, parseOptions } from '../shared/validation.js';
import { GuardTelemetry } from '../telemetry/guard-telemetry.js';
import { genGenerated, GenLoader, genStream, type GenResponseContext } from './gen-check.js';
import { blockedResult, moderateGenerated } from './guard-generate.js';
import { GuardLoader, type RetryOptions } from './guard-loader.js';
import { GuardedStream } from './guarded-stream.js';
import { middlewareOptionsSchema, type Qwen3GuardMiddlewareOptions, type RequestHooks } from './options.js';
import { safeCall } from './callbacks.js';
import { blocksRequest, checkPrompt, type PromptCheck, type PromptCheckContext } from './prompt-check.js';
import { toGuardMessages } from './prompt-messages.js';
import { genComponent, streamComponent } from './telemetry-checks.js';
import { promptCheckEnd } from './telemetry-hooks.js';
import { LruCache } from './verdict-cache.js';

/**
 * Runs Qwen3Guard-Stream alongside any language model (and/or Qwen3Guard-Gen, option `gen`, for the prompt
 * verdict and whole-response checks): the prompt is checked (in parallel with the upstream
 * call unless `prompt.waitForVerdict`), the response is classified token by token as it streams, and the
 * policy lets it through, holds it, redacts, rewrites or aborts it. Works with `wrapLanguageModel` for both
 * `streamText` and `generateText`; per-request overrides come through `providerOptions.qwen3guard`.
 * `internal` is not public API: tests set the load-retry clock and delays through it.
 */
export function qwen3GuardMiddleware(options: Qwen3GuardMiddlewareOptions, internal: { retry?: RetryOptions } = {}): LanguageModelV4Middleware {
  const resolved = parseOptions(middlewareOptionsSchema, options, 'qwen3GuardMiddleware');
  // Validate the policies now, not deep in a stream: a replacement function and the like are checked here.
  resolvePromptPolicy(resolved.prompt);
  resolveResponsePolicy(resolved.response);
  // A loaded guard's category names are checked here too; a promise's or a modelPath's when it loads.
  // With Gen alone there is no Stream guard: no token-by-token moderation of the response.
  const streamGuard = resolved.guard ?? resolved.modelPath ?? resolved.model;
  const loader = streamGuard === undefined ? null : new GuardLoader(resolved, internal.retry);
  const guard = loader && (() => loader.get());
  const gen = resolved.gen && new GenLoader(resolved.gen.classifier);
  const cache = new LruCache<PromptVerdict>(resolved.promptCacheSize);
  const telemetry = resolved.telemetry.enabled ? new GuardTelemetry(resolved.telemetry) : null;

  /** Everything one request needs: the merged policy and a prompt check already running. */
  async function setup(params: LanguageModelV4CallOptions) {
    const override = parseOptions(requestOverrideSchema, params.providerOptions?.qwen3guard ?? {}, 'providerOptions.qwen3guard');
    if (override.enabled === false) return null;
    // Before any await: the model call's span is the active one now.
    const hooks: RequestHooks | null = telemetry && {
      telemetry: telemetry.request(override.conversationId),
      stream: () => streamComponent(loader, resolved.guard),
      gen: () => genComponent(gen?.loaded ?? null),
    };
    if (override.prompt?.categories || override.response?.categories) {
      // Checked against the guard's labels (a guard that fails to load is reported by the prompt check).
      const known = loader && (loader.loaded ?? (await loader.get().catch(() => null)));
      if (known) checkCategories(known.info, override, 'providerOptions.qwen3guard.');
    }
    const fail = override.fail ?? resolved.fail;
    const failures = new PolicyFailures((error, fn) => safeCall(resolved.onError, error, { phase: 'policy', function: fn, fail }));
    const promptPolicy = resolvePromptPolicy(resolved.prompt, override.prompt, failures);
    const responsePolicy = resolveResponsePolicy(resolved.response, override.response, failures);
    const startedAt = performance.now();
    const abort = new AbortController();
    const signal = anySignal(params.abortSignal, abort.signal);
    const context: PromptCheckContext = {
      guard,
      gen: resolved.gen?.prompt ? gen! : undefined,
      policy: promptPolicy,
      fail,
      cache,
      onPromptVerdict: resolved.onPromptVerdict,
      onError: resolved.onError,
      trackSession: hooks ? (session, ready) => hooks.telemetry.trackSession(session, ready.info.model) : undefined,
    };
    const messages = toGuardMessages(params.prompt, promptPolicy.includeSystem);
    // With Gen alone and no gen.prompt, the prompt is not checked: no span.
    const byGen = context.gen !== undefined;
    const promptSpan = hooks && (guard || byGen) ? hooks.telemetry.check('input', byGen ? hooks.gen() : hooks.stream()) : null;
    const check = checkPrompt(context, messages, signal, startedAt, override.conversationId).then((c) => {
      promptSpan?.end(promptCheckEnd(c, signal.aborted, fail, messages, byGen ? hooks!.gen().model : (c.guard?.info.model ?? null)));
      return c;
    });
    // Gen on the complete response, after the Stream guard's moderation of it (if any).
    const genResponse = resolved.gen && resolved.gen.response !== 'off' ? resolved.gen.response : null;
    const genContext: GenResponseContext | null = genResponse && {
      gen: gen!,
      mode: genResponse,
      policy: responsePolicy,
      fail,
      messages,
      startedAt,
      signal,
      onGenVerdict: resolved.onGenVerdict,
      onError: resolved.onError,
      telemetry: hooks,
    };
    const refusal = (c: PromptCheck) => promptPolicy.refusal(c.verdict);
    const callbacks = {
      onResponseFlag: resolved.onResponseFlag,
      onResponseVerdict: resolved.onResponseVerdict,
      onError: resolved.onError,
      onIntervention: resolved.onIntervention,
      telemetry: hooks,
    };
    return { promptPolicy, responsePolicy, fail, startedAt, abort, signal, check, refusal, callbacks, genContext };
  }

  /** Calls the upstream with our abort signal; with a blocked prompt, it is never called or is cancelled. */
  async function upstream<T>(request: NonNullable<Awaited<ReturnType<typeof setup>>>, call: () => PromiseLike<T>): Promise<{ result: T } | { blocked: PromptCheck }> {
    if (request.promptPolicy.waitForVerdict) {
      const check = await request.check;
      if (blocksRequest(check)) return { blocked: check };
    } else {
      void request.check.then((check) => blocksRequest(check) && request.abort.abort(new Error('qwen3guard: prompt blocked')));
    }
    try {
      return { result: await call() };
    } catch (error) {
      const check = await request.check;
      if (blocksRequest(check)) return { blocked: check };
      await check.session?.dispose().catch(() => undefined);
      throw error;
    }
  }

  return {
    specificationVersion: 'v4',

    async wrapStream({ doStream, params, model }) {
      const request = await setup(params);
      if (!request) return doStream();
      // With the continue action every upstream call has its own signal too: a rollback aborts only its call.
      const first = request.responsePolicy.continues ? new AbortController() : null;
      const signal = anySignal(request.signal, first?.signal);
      const outcome = await upstream(request, () => (model as LanguageModelV4).doStream({ ...params, abortSignal: signal }));
      if ('blocked' in outcome) {
        const refused = new GuardedStream(
          { policy: request.responsePolicy, fail: request.fail, refusal: request.refusal, startedAt: request.startedAt, ...request.callbacks },
          new ReadableStream({ start: (c) => c.close() }),
          Promise.resolve(outcome.blocked),
          () => undefined,
        );
        return { stream: refused.stream };
      }
      // The continue action calls the wrapped model again, with this attempt's signal and the request's.
      const continuation = first
        ? {
            prompt: params.prompt,
            first,
            call: (prompt: LanguageModelV4Prompt, signal: AbortSignal) => (model as LanguageModelV4).doStream({ ...params, prompt, abortSignal: anySignal(request.signal, signal) }),
          }
        : undefined;
      const guarded = new GuardedStream(
        { policy: request.responsePolicy, fail: request.fail, refusal: request.refusal, startedAt: request.startedAt, continuation, ...request.callbacks },
        outcome.result.stream,
        request.check,
        (reason) => request.abort.abort(reason),
      );
      return { ...outcome.result, stream: request.genContext ? genStream(guarded.stream, request.genContext) : guarded.stream };
    },

    async wrapGenerate({ doGenerate, params, model }) {
      const request = await setup(params);
      if (!request) return doGenerate();
      if (request.responsePolicy.continues) {
        await request.check.then((c) => c.session?.dispose()).catch(() => undefined);
        throw new OptionsError(
          "Invalid options: response: the 'continue' action needs a stream (streamText): with generateText, set another action per request, e.g. providerOptions.qwen3guard.response.actions.Unsafe = 'rewrite'",
        );
      }
      const outcome = await upstream(request, () => (model as LanguageModelV4).doGenerate({ ...params, abortSignal: request.signal }));
      const check = 'blocked' in outcome ? outcome.blocked : await request.check;
      if ('blocked' in outcome || blocksRequest(check)) {
        await check.session?.dispose().catch(() => undefined);
        return blockedResult(check, check.action === 'rewrite' ? request.refusal(check) : '', request.responsePolicy);
      }
      const moderated = await moderateGenerated({ policy: request.responsePolicy, fail: request.fail, startedAt: request.startedAt, ...request.callbacks }, check, outcome.result);
      return request.genContext ? genGenerated(moderated, request.genContext) : moderated;
    },
  };
}

