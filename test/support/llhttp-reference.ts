// llhttp, strict (no lenient flags), as node:http runs it: node's own HTTPParser binding driven
// directly, so a differential test can compare our codec with it byte for byte without sockets.
// process.binding is deprecated but is the only way to reach the exact parser node:http uses.

interface HTTPParserInstance {
  [key: number]: unknown;
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  finish(): undefined | Error;
  close(): void;
}
interface HTTPParserClass {
  new (): HTTPParserInstance;
  REQUEST: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
  kLenientNone: number;
}

const binding = (() => {
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    return (process as unknown as { binding(name: string): { HTTPParser: HTTPParserClass; methods: string[] } }).binding('http_parser');
  } finally {
    process.noDeprecation = quiet;
  }
})();

export interface ReferenceMessage {
  readonly method: string;
  readonly target: string;
  readonly rawHeaders: string[];
  readonly body: string;
  readonly keepAlive: boolean;
  readonly upgrade: boolean;
}

export interface ReferenceOutcome {
  /** messages llhttp completed, in order */
  readonly messages: ReferenceMessage[];
  /** llhttp refused the input (after `messages`) */
  readonly error: string | undefined;
}

/** Run llhttp (strict, 16 KiB head limit) over `input` as one request stream. */
export function llhttpParseRequests(input: Buffer, maxHeaderSize = 16 * 1024): ReferenceOutcome {
  const { HTTPParser, methods } = binding;
  const parser = new HTTPParser();
  const messages: ReferenceMessage[] = [];
  let headers: string[] = [];
  let url = '';
  let current: { method: string; target: string; rawHeaders: string[]; keepAlive: boolean; upgrade: boolean } | undefined;
  let body: Buffer[] = [];
  let stop = false;
  parser[HTTPParser.kOnHeaders] = (h: string[], u: string): void => {
    headers.push(...h);
    url += u;
  };
  parser[HTTPParser.kOnHeadersComplete] = (_maj: number, _min: number, h: string[] | undefined, method: number, u: string | undefined,
    _status: number, _msg: string, upgrade: boolean, keepAlive: boolean): number => {
    const all = h === undefined ? headers : [...headers, ...h];
    current = { method: methods[method], target: url + (u ?? ''), rawHeaders: all, keepAlive, upgrade };
    headers = [];
    url = '';
    body = [];
    return 0;
  };
  parser[HTTPParser.kOnBody] = (chunk: Buffer): void => { body.push(Buffer.from(chunk)); };
  parser[HTTPParser.kOnMessageComplete] = (): void => {
    // trailers arrive through kOnHeaders before completion: they are not part of the head
    headers = [];
    url = '';
    if (current !== undefined && !stop) {
      messages.push({ ...current, body: Buffer.concat(body).toString('latin1') });
      if (!current.keepAlive || current.upgrade) stop = true;
    }
    current = undefined;
  };
  parser[HTTPParser.kOnExecute] = (): void => undefined;
  parser.initialize(HTTPParser.REQUEST, {}, maxHeaderSize, HTTPParser.kLenientNone);
  let error: string | undefined;
  const r = parser.execute(input);
  if (r instanceof Error) error = (r as Error & { code?: string }).code ?? r.message;
  parser.close();
  // bytes after a message that closes or upgrades the connection are not HTTP any more
  if (stop && error === 'HPE_CLOSED_CONNECTION') error = undefined;
  return { messages, error };
}
