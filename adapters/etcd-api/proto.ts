// Loads meshkv's etcd .proto files once, and maps messages to and from etcd's JSON gateway form
// (grpc-gateway's jsonpb with original field names): int64 as decimal strings, bytes as
// base64, enums by name, and fields holding proto3's zero value left out.
//
// Wire objects are what @grpc/proto-loader hands out with the options below: snake_case field
// names, 64-bit integers as decimal strings (exact beyond 2^53), bytes as Buffers, enums as
// numbers, absent messages as null.

import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

export const protoDir = fileURLToPath(new URL('./proto/', import.meta.url));

export const loaderOptions: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [protoDir],
};

export const packageDefinition = protoLoader.loadSync(['rpc.proto'], loaderOptions);

/** A JSON value in a message that failed to convert; the gateway answers 400 with it. */
export class JsonMappingError extends Error {}

type FieldKind = 'int64' | 'uint64' | 'uint32' | 'int32' | 'bool' | 'string' | 'bytes' | 'enum' | 'message';

interface FieldSchema {
  name: string;
  /** lowerCamelCase: jsonpb accepts it on input as well as the original name. */
  jsonName: string;
  kind: FieldKind;
  repeated: boolean;
  /** The full name of the message or enum type, for message and enum fields. */
  typeName: string;
}

interface MessageSchema {
  fields: FieldSchema[];
  byInputName: Map<string, FieldSchema>;
}

interface DescriptorField {
  name: string;
  type: string;
  typeName: string;
  label: string;
}
interface DescriptorEnum {
  name: string;
  value: { name: string; number: number }[];
}
interface DescriptorMessage {
  field: DescriptorField[];
  enumType: DescriptorEnum[];
}

const scalarKinds: Record<string, FieldKind> = {
  TYPE_INT64: 'int64',
  TYPE_UINT64: 'uint64',
  TYPE_INT32: 'int32',
  TYPE_UINT32: 'uint32',
  TYPE_BOOL: 'bool',
  TYPE_STRING: 'string',
  TYPE_BYTES: 'bytes',
  TYPE_ENUM: 'enum',
  TYPE_MESSAGE: 'message',
};

const enums = new Map<string, { byName: Map<string, number>; byNumber: Map<number, string> }>();
const messages = new Map<string, MessageSchema>();

function toCamel(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

function addEnum(fullName: string, e: DescriptorEnum): void {
  enums.set(fullName, {
    byName: new Map(e.value.map((v) => [v.name, v.number])),
    byNumber: new Map(e.value.map((v) => [v.number, v.name])),
  });
}

// Enums first, so message fields can resolve their type names against them.
for (const [fullName, def] of Object.entries(packageDefinition)) {
  const d = def as { format?: string; type?: DescriptorMessage & DescriptorEnum };
  if (d.format?.endsWith('EnumDescriptorProto')) addEnum(fullName, d.type!);
  else if (d.format?.endsWith('DescriptorProto')) for (const e of d.type!.enumType) addEnum(`${fullName}.${e.name}`, e);
}

/** proto-loader keeps type names as written in the .proto: resolve them as protoc does, innermost scope first. */
function resolve(scope: string, typeName: string): string {
  const name = typeName.replace(/^\./, '');
  const parts = scope.split('.');
  for (let i = parts.length; i >= 0; i--) {
    const candidate = [...parts.slice(0, i), name].join('.');
    if (enums.has(candidate) || (packageDefinition[candidate] as { format?: string } | undefined)?.format?.endsWith('DescriptorProto')) {
      return candidate;
    }
  }
  throw new Error(`etcd-api proto: cannot resolve type ${typeName} from ${scope}`);
}

for (const [fullName, def] of Object.entries(packageDefinition)) {
  const d = def as { format?: string; type?: DescriptorMessage };
  if (!d.format?.endsWith('DescriptorProto') || d.format.endsWith('EnumDescriptorProto')) continue;
  const fields = d.type!.field.map((f): FieldSchema => {
    const kind = scalarKinds[f.type];
    if (kind === undefined) throw new Error(`etcd-api proto: ${fullName}.${f.name}: unsupported type ${f.type}`);
    return {
      name: f.name,
      jsonName: toCamel(f.name),
      kind,
      repeated: f.label === 'LABEL_REPEATED',
      typeName: kind === 'enum' || kind === 'message' ? resolve(fullName, f.typeName) : '',
    };
  });
  const byInputName = new Map<string, FieldSchema>();
  for (const f of fields) {
    byInputName.set(f.name, f);
    byInputName.set(f.jsonName, f);
  }
  messages.set(fullName, { fields, byInputName });
}

function schemaOf(typeName: string): MessageSchema {
  const s = messages.get(typeName);
  if (s === undefined) throw new Error(`etcd-api proto: unknown message ${typeName}`);
  return s;
}

// ---- wire object → gateway JSON ----

function isZero(f: FieldSchema, v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (f.repeated) return (v as unknown[]).length === 0;
  switch (f.kind) {
    case 'int64':
    case 'uint64':
      return String(v) === '0';
    case 'bytes':
      return (v as Uint8Array).length === 0;
    case 'message':
      return false;
    default:
      return v === 0 || v === false || v === '';
  }
}

function scalarToJson(f: FieldSchema, v: unknown): unknown {
  switch (f.kind) {
    case 'int64':
    case 'uint64':
      return String(v);
    case 'bytes':
      return Buffer.from(v as Uint8Array).toString('base64');
    case 'enum':
      return enums.get(f.typeName)!.byNumber.get(v as number) ?? v;
    case 'message':
      return messageToJson(f.typeName, v as Record<string, unknown>);
    default:
      return v;
  }
}

/** A wire object as etcd's gateway prints it. */
export function messageToJson(typeName: string, wire: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of schemaOf(typeName).fields) {
    const v = wire[f.name];
    if (isZero(f, v)) continue;
    out[f.name] = f.repeated ? (v as unknown[]).map((x) => scalarToJson(f, x)) : scalarToJson(f, v);
  }
  return out;
}

// ---- gateway JSON → wire object ----

function fail(path: string, what: string): never {
  throw new JsonMappingError(`${path}: ${what}`);
}

/**
 * Messages nested deeper than this are refused, as protobuf decoders refuse them on the gRPC
 * side (protoc's and protobufjs's recursion limit); the mapping below recurses per level.
 */
export const jsonMessageDepthMax = 100;
/** How much of an offending value an error message quotes: the body may be megabytes. */
const quotedCharsMax = 64;

/** An offending JSON value for an error message: scalars as JSON, cut short; objects and arrays by kind. */
function quote(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v !== null && typeof v === 'object') return 'an object';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > quotedCharsMax ? `${text.slice(0, quotedCharsMax)}... (${text.length} characters)` : text;
}

const integerRanges: Record<'int64' | 'uint64' | 'int32' | 'uint32', [bigint, bigint]> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
};

function scalarFromJson(f: FieldSchema, v: unknown, path: string, depth: number): unknown {
  switch (f.kind) {
    case 'int64':
    case 'uint64':
    case 'int32':
    case 'uint32': {
      const text = typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : typeof v === 'string' && /^-?\d+$/.test(v) ? v : null;
      if (text === null) return fail(path, `expected an integer, got ${quote(v)}`);
      const n = BigInt(text);
      const [min, max] = integerRanges[f.kind];
      if (n < min || n > max) return fail(path, `${text} does not fit in ${f.kind}`);
      return f.kind === 'int64' || f.kind === 'uint64' ? n.toString() : Number(n);
    }
    case 'bool':
      if (typeof v === 'boolean') return v;
      return fail(path, `expected a boolean, got ${quote(v)}`);
    case 'string':
      if (typeof v === 'string') return v;
      return fail(path, `expected a string, got ${quote(v)}`);
    case 'bytes':
      if (typeof v === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) return Buffer.from(v, 'base64');
      return fail(path, `expected base64 bytes, got ${quote(v)}`);
    case 'enum': {
      const e = enums.get(f.typeName)!;
      if (typeof v === 'number' && e.byNumber.has(v)) return v;
      if (typeof v === 'string' && e.byName.has(v)) return e.byName.get(v);
      return fail(path, `unknown value ${quote(v)} for enum ${f.typeName}`);
    }
    case 'message':
      return messageFromJson(f.typeName, v, path, depth + 1);
  }
}

/** Parses one gateway request body (already JSON-decoded) into a wire object; `depth` counts enclosing messages. */
export function messageFromJson(typeName: string, json: unknown, path = typeName, depth = 0): Record<string, unknown> {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail(path, 'expected a JSON object');
  if (depth >= jsonMessageDepthMax) fail(path, `messages nested deeper than ${jsonMessageDepthMax}`);
  const schema = schemaOf(typeName);
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    const f = schema.byInputName.get(name);
    if (f === undefined) fail(path, `unknown field ${quote(name)}`);
    if (v === null) continue;
    if (f.repeated) {
      if (!Array.isArray(v)) fail(`${path}.${name}`, 'expected an array');
      out[f.name] = v.map((x, i) => scalarFromJson(f, x, `${path}.${name}[${i}]`, depth));
    } else {
      out[f.name] = scalarFromJson(f, v, `${path}.${name}`, depth);
    }
  }
  return out;
}
