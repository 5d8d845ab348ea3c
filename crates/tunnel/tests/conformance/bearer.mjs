// Preloaded into the conformance CLI (`node --import ./bearer.mjs`): the suite
// has no option for request headers, but the airlock gateway and `airlock mcp`
// want an agent key. Adds `Authorization: Bearer $AIRLOCK_CONFORMANCE_KEY`
// (unless the suite set Authorization itself) and, for `airlock mcp` behind
// the tunnel, `Airlock-Key: $AIRLOCK_CONFORMANCE_GATEWAY_KEY` to every request
// the suite sends to the host of $AIRLOCK_CONFORMANCE_URL, over fetch,
// undici.request and node:http(s).
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';

const key = process.env.AIRLOCK_CONFORMANCE_KEY;
const gatewayKey = process.env.AIRLOCK_CONFORMANCE_GATEWAY_KEY;
const target = process.env.AIRLOCK_CONFORMANCE_URL;

if ((key || gatewayKey) && target) {
  const host = new URL(target).hostname.replace(/^\[|\]$/g, '');
  const bearer = key ? `Bearer ${key}` : undefined;
  // [name, value] pairs to add when absent.
  const extra = [
    ...(bearer ? [['authorization', bearer]] : []),
    ...(gatewayKey ? [['airlock-key', gatewayKey]] : []),
  ];

  const plainFetch = globalThis.fetch;
  globalThis.fetch = (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.hostname.replace(/^\[|\]$/g, '') === host) {
      const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
      for (const [name, value] of extra) if (!headers.has(name)) headers.set(name, value);
      init = { ...init, headers };
    }
    return plainFetch(input, init);
  };

  // The suite imports undici's `request` (for raw Host/Origin probes); patch the
  // shared CommonJS exports before the suite's import binds them.
  const undici = createRequire(import.meta.url)('undici');
  const plainUndici = undici.request;
  undici.request = (url, opts = {}, ...rest) => {
    if (new URL(String(url)).hostname.replace(/^\[|\]$/g, '') === host) {
      const headers = { ...(opts.headers ?? {}) };
      for (const [name, value] of extra) {
        if (!Object.keys(headers).some((h) => h.toLowerCase() === name)) headers[name] = value;
      }
      opts = { ...opts, headers };
    }
    return plainUndici(url, opts, ...rest);
  };

  for (const mod of [http, https]) {
    const plainRequest = mod.request;
    mod.request = function (...args) {
      const req = plainRequest.apply(this, args);
      if (String(req.host).replace(/^\[|\]$/g, '') === host) {
        for (const [name, value] of extra) if (!req.hasHeader(name)) req.setHeader(name, value);
      }
      return req;
    };
    mod.get = function (...args) {
      const req = mod.request(...args);
      req.end();
      return req;
    };
  }
}
