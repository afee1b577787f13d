/**
 * A real OTLP/HTTP receiver for tests: `Deno.serve` on 127.0.0.1 at a random port, accepting
 * `POST /v1/traces`, `/v1/metrics` and `/v1/logs`. JSON bodies (`application/json`, what the
 * `exporter-*-otlp-http` packages send) are decoded and flattened into spans, metric points
 * and log records; other bodies (protobuf, e.g. from Deno's built-in exporter) are counted in
 * `requests` but not decoded.
 *
 * @example
 * ```ts ignore
 * await using receiver = await startOtlpReceiver();
 * const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint };
 * // ... export something ...
 * const span = await receiver.waitFor((r) => r.spans.find((s) => s.name === "send t"), 5000);
 * ```
 *
 * @module
 */

/** An OTLP attribute value, decoded to plain JS. */
export type AttributeValue =
  | string
  | number
  | boolean
  | null
  | AttributeValue[]
  | { [key: string]: AttributeValue };

/** Decoded attributes. */
export type DecodedAttributes = Record<string, AttributeValue>;

/** A received span, flattened. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  /** OTLP span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: DecodedAttributes;
  readonly links: ReadonlyArray<{ traceId: string; spanId: string }>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  readonly events: ReadonlyArray<{ name: string; attributes: DecodedAttributes }>;
  readonly resource: DecodedAttributes;
  readonly scope: string;
}

/** One data point of a received metric. */
export interface ReceivedPoint {
  readonly attributes: DecodedAttributes;
  /** Sum and gauge points. */
  readonly value?: number;
  /** Histogram points. */
  readonly count?: number;
  readonly sum?: number;
  readonly bucketCounts?: number[];
  readonly explicitBounds?: number[];
  readonly exemplars?: unknown[];
}

/** A received metric, one per metric in each export. */
export interface ReceivedMetric {
  readonly name: string;
  readonly unit: string;
  readonly description: string;
  readonly type: "sum" | "gauge" | "histogram" | "exponentialHistogram" | "unknown";
  /** For sums. */
  readonly isMonotonic?: boolean;
  readonly points: ReceivedPoint[];
  readonly resource: DecodedAttributes;
}

/** A received log record. */
export interface ReceivedLog {
  readonly body: AttributeValue;
  readonly severityText?: string;
  readonly severityNumber?: number;
  readonly attributes: DecodedAttributes;
  readonly traceId?: string;
  readonly spanId?: string;
  readonly resource: DecodedAttributes;
  readonly scope: string;
}

/** A request as it arrived. */
export interface ReceivedRequest {
  readonly path: string;
  readonly contentType: string;
  readonly headers: Record<string, string>;
  readonly bytes: number;
}

/** A running receiver. */
export interface OtlpReceiver extends AsyncDisposable {
  /** The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`: `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  readonly metrics: ReceivedMetric[];
  readonly logs: ReceivedLog[];
  readonly requests: ReceivedRequest[];
  /**
   * Polls `predicate` until it returns a truthy value, and returns that value; rejects once
   * `deadlineMs` passed, with `what` in the message.
   */
  waitFor<T>(
    predicate: (receiver: OtlpReceiver) => T | undefined | null | false,
    deadlineMs: number,
    what?: string,
  ): Promise<T>;
  /** Stops the server. */
  close(): Promise<void>;
}

// deno-lint-ignore no-explicit-any -- OTLP/JSON is decoded structurally, field by field.
type Json = any;

function decodeValue(v: Json): AttributeValue {
  if (v === undefined || v === null) return null;
  if ("stringValue" in v) return v.stringValue;
  if ("boolValue" in v) return v.boolValue;
  if ("intValue" in v) return Number(v.intValue);
  if ("doubleValue" in v) return Number(v.doubleValue);
  if ("arrayValue" in v) return (v.arrayValue.values ?? []).map(decodeValue);
  if ("kvlistValue" in v) return decodeAttributes(v.kvlistValue.values);
  if ("bytesValue" in v) return v.bytesValue;
  return null;
}

function decodeAttributes(list: Json[] | undefined): DecodedAttributes {
  const out: DecodedAttributes = {};
  for (const kv of list ?? []) out[kv.key] = decodeValue(kv.value);
  return out;
}

function num(v: Json): number | undefined {
  return v === undefined || v === null ? undefined : Number(v);
}

/** Starts a receiver on 127.0.0.1 at a free port. */
export function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const metrics: ReceivedMetric[] = [];
  const logs: ReceivedLog[] = [];
  const requests: ReceivedRequest[] = [];

  function collectTraces(body: Json): void {
    for (const rs of body.resourceSpans ?? []) {
      const resource = decodeAttributes(rs.resource?.attributes);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          spans.push({
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId || undefined,
            name: s.name,
            kind: Number(s.kind),
            attributes: decodeAttributes(s.attributes),
            links: (s.links ?? []).map((l: Json) => ({ traceId: l.traceId, spanId: l.spanId })),
            statusCode: Number(s.status?.code ?? 0),
            events: (s.events ?? []).map((e: Json) => ({
              name: e.name,
              attributes: decodeAttributes(e.attributes),
            })),
            resource,
            scope: ss.scope?.name ?? "",
          });
        }
      }
    }
  }

  function collectMetrics(body: Json): void {
    for (const rm of body.resourceMetrics ?? []) {
      const resource = decodeAttributes(rm.resource?.attributes);
      for (const sm of rm.scopeMetrics ?? []) {
        for (const m of sm.metrics ?? []) {
          const type = m.sum
            ? "sum"
            : m.gauge
            ? "gauge"
            : m.histogram
            ? "histogram"
            : m.exponentialHistogram
            ? "exponentialHistogram"
            : "unknown";
          const data = m.sum ?? m.gauge ?? m.histogram ?? m.exponentialHistogram ?? {};
          const points: ReceivedPoint[] = (data.dataPoints ?? []).map((p: Json) => ({
            attributes: decodeAttributes(p.attributes),
            value: num(p.asDouble ?? p.asInt),
            count: num(p.count),
            sum: num(p.sum),
            bucketCounts: p.bucketCounts?.map(Number),
            explicitBounds: p.explicitBounds?.map(Number),
            exemplars: p.exemplars,
          }));
          metrics.push({
            name: m.name,
            unit: m.unit ?? "",
            description: m.description ?? "",
            type,
            isMonotonic: m.sum?.isMonotonic,
            points,
            resource,
          });
        }
      }
    }
  }

  function collectLogs(body: Json): void {
    for (const rl of body.resourceLogs ?? []) {
      const resource = decodeAttributes(rl.resource?.attributes);
      for (const sl of rl.scopeLogs ?? []) {
        for (const l of sl.logRecords ?? []) {
          logs.push({
            body: decodeValue(l.body),
            severityText: l.severityText,
            severityNumber: num(l.severityNumber),
            attributes: decodeAttributes(l.attributes),
            traceId: l.traceId || undefined,
            spanId: l.spanId || undefined,
            resource,
            scope: sl.scope?.name ?? "",
          });
        }
      }
    }
  }

  const collectors: Record<string, (body: Json) => void> = {
    "/v1/traces": collectTraces,
    "/v1/metrics": collectMetrics,
    "/v1/logs": collectLogs,
  };

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async function handleOtlp(request) {
      const path = new URL(request.url).pathname;
      const collect = collectors[path];
      if (request.method !== "POST" || collect === undefined) {
        return new Response("not found", { status: 404 });
      }
      const contentType = request.headers.get("content-type") ?? "";
      const raw = new Uint8Array(await request.arrayBuffer());
      requests.push({
        path,
        contentType,
        headers: Object.fromEntries(request.headers),
        bytes: raw.byteLength,
      });
      if (!contentType.includes("json")) {
        return new Response(new Uint8Array(0), {
          headers: { "content-type": "application/x-protobuf" },
        });
      }
      try {
        collect(JSON.parse(new TextDecoder().decode(raw)));
      } catch (error) {
        return new Response(`bad OTLP/JSON: ${error}`, { status: 400 });
      }
      return Response.json({});
    },
  );
  const { port } = server.addr;

  const receiver: OtlpReceiver = {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    metrics,
    logs,
    requests,
    async waitFor(predicate, deadlineMs, what = "the expected telemetry") {
      const until = Date.now() + deadlineMs;
      for (;;) {
        const found = predicate(receiver);
        if (found) return found;
        if (Date.now() > until) {
          throw new Error(
            `Timed out after ${deadlineMs} ms waiting for ${what}: received ${spans.length} ` +
              `spans, ${metrics.length} metrics, ${logs.length} logs`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async close() {
      await server.shutdown();
    },
    [Symbol.asyncDispose]() {
      return receiver.close();
    },
  };
  return Promise.resolve(receiver);
}
