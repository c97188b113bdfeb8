import { OpenTelemetry } from '@ai-sdk/otel';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { registerTelemetry } from 'ai';

/**
 * QWEN3GUARD_OTEL=console: every span on the server's console, the guard's (`run_guardrail Qwen3Guard-Stream`)
 * under the AI SDK's model call (`chat {model}`). In production, register an OTLP exporter instead (see the
 * package README). The guard package only uses @opentelemetry/api: this is the one place an SDK is set up.
 */
export function registerConsoleTelemetry(): void {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())] }));
  registerTelemetry(new OpenTelemetry());
}
