// Preloaded (node --import) into Node MCP clients that have no option for request headers (the
// conformance suite): every request to AGENTLS_TEST_BEARER_ORIGIN gets
// "Authorization: Bearer $AGENTLS_TEST_BEARER_TOKEN", as an MCP host configured with the token
// sends it. Node's fetch and undici's request() both go through the global dispatcher.
import { Agent, setGlobalDispatcher } from 'undici';

const token = process.env.AGENTLS_TEST_BEARER_TOKEN;
const origin = process.env.AGENTLS_TEST_BEARER_ORIGIN;

function hasAuthorization(headers) {
  if (!headers) return false;
  if (Array.isArray(headers)) {
    const flat = headers.flat();
    for (let i = 0; i < flat.length; i += 2) {
      if (String(flat[i]).toLowerCase() === 'authorization') return true;
    }
    return false;
  }
  if (typeof headers[Symbol.iterator] === 'function') {
    for (const [name] of headers) if (String(name).toLowerCase() === 'authorization') return true;
    return false;
  }
  return Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
}

function withToken(headers) {
  const value = `Bearer ${token}`;
  if (!headers) return { authorization: value };
  if (Array.isArray(headers)) {
    return Array.isArray(headers[0]) ? [...headers, ['authorization', value]] : [...headers, 'authorization', value];
  }
  if (typeof headers[Symbol.iterator] === 'function') return [...headers, ['authorization', value]];
  return { ...headers, authorization: value };
}

if (token && origin) {
  const bearer = (dispatch) => (opts, handler) => {
    const target = new URL(String(opts.origin)).origin;
    if (target === origin && !hasAuthorization(opts.headers)) {
      return dispatch({ ...opts, headers: withToken(opts.headers) }, handler);
    }
    return dispatch(opts, handler);
  };
  setGlobalDispatcher(new Agent().compose(bearer));
}
