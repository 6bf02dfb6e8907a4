// Pure checks of what a container may put into Consul through SERVICE_* values, against what Consul and
// the balancer accept: a service name is also the balancer's Host route and a DNS label, a tag is parsed
// by the balancer (weight=, check=, urlprefix-...) and pasted into rendered configs. A bad value is a
// warning for that container; only the bad service (name) or tag is dropped.

/** Consul DNS answers names up to a label's 63 characters; longer is legal in the catalog but unroutable. */
export const MAX_SERVICE_NAME = 63;
export const MAX_TAG = 255;

// letters, digits, "-", "_", "." (dotted names route by Host); starts and ends with a letter or digit
const SERVICE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
// no whitespace, no control characters, no quotes or braces that could break a rendered config
const TAG_FORBIDDEN = /[\s\u0000-\u001f\u007f"'`{};#\\]/;

/** undefined when the name is usable, else the reason. */
export function serviceNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'service name is empty';
  if (name.length > MAX_SERVICE_NAME) return `service name longer than ${MAX_SERVICE_NAME} characters (a DNS label)`;
  if (!SERVICE_NAME.test(name)) return 'service name may only hold letters, digits, "-", "_" and "." and must start and end with a letter or digit';
  return undefined;
}

/** undefined when the tag is usable, else the reason. */
export function tagProblem(tag: string): string | undefined {
  if (tag.length > MAX_TAG) return `tag longer than ${MAX_TAG} characters`;
  const bad = TAG_FORBIDDEN.exec(tag);
  if (bad) return `tag contains ${JSON.stringify(bad[0])} (whitespace, control characters, quotes, braces, ";", "#" and "\\" are refused)`;
  return undefined;
}
