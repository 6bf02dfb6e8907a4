// Pure checks of what a container may put into Consul through SERVICE_* values. A service name is also
// the balancer's Host route and a DNS label, so it is held to that. Tags and meta values are registered
// as given whenever Consul takes them: Consul checks no tag (agent/structs only warns about DNS), and a
// meta value only for its length (validateMetaPair: 512 bytes). Renderers, not the registrator, make
// values safe for the files they write (balancer/src/render). A bad value is a warning for that
// container; only the bad service (name), tag or meta key is dropped.

/** Consul DNS answers names up to a label's 63 characters; longer is legal in the catalog but unroutable. */
export const MAX_SERVICE_NAME = 63;
/** agent/structs validateMetaPair: metaValueMaxLength, counted in bytes (Go's len of a string) */
export const MAX_META_VALUE_BYTES = 512;

// letters, digits, "-", "_", "." (dotted names route by Host); starts and ends with a letter or digit
const SERVICE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** undefined when the name is usable, else the reason. */
export function serviceNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'service name is empty';
  if (name.length > MAX_SERVICE_NAME) return `service name longer than ${MAX_SERVICE_NAME} characters (a DNS label)`;
  if (!SERVICE_NAME.test(name)) return 'service name may only hold letters, digits, "-", "_" and "." and must start and end with a letter or digit';
  return undefined;
}

/**
 * undefined when the tag can be registered as given, else the reason. Consul accepts every string; what
 * cannot be carried is text that is not well-formed Unicode (a lone surrogate: JSON would send it as a
 * replacement character, so Consul would hold another tag than the one given).
 */
export function tagProblem(tag: string): string | undefined {
  return carriableProblem(tag, 'tag');
}

/** undefined when the meta value can be registered as given, else the reason. */
export function metaValueProblem(value: string): string | undefined {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_META_VALUE_BYTES) return `meta value longer than ${MAX_META_VALUE_BYTES} bytes (${bytes}): Consul refuses it`;
  return carriableProblem(value, 'meta value');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function carriableProblem(text: string, what: string): string | undefined {
  if (LONE_SURROGATE.test(text)) return `${what} is not well-formed Unicode (a lone surrogate): it cannot reach Consul as given`;
  return undefined;
}
