// A real OpenID provider (panva's certified oidc-provider) for palisade's interop tests
// (tests/interop): client-credentials access tokens, as JWTs or opaque, RFC 7662 introspection,
// RFC 7009 revocation, OpenID discovery and a JWKS whose keys the test chooses.
//
//   node provider.mjs --port 4000 [--keys kid:ALG,kid:ALG,...] [--key-dir DIR]
//
// (or PORT, PROVIDER_KEYS and PROVIDER_KEY_DIR in the environment). The issuer is
// http://127.0.0.1:<port>. Each key is read from DIR/<kid>.jwk.json, or generated and written
// there, so a provider restarted with another --keys list keeps the keys it shares with the
// last one (key rotation). Without --key-dir keys live in memory only. ALG is RS256, ES256 or
// EdDSA (Ed25519). Default keys: rs256:RS256,es256:ES256,eddsa:EdDSA.
//
// Resource indicators (RFC 8707) choose the token format, its audience and its signing key:
//
//   https://<name>.palisade.test/jwt/<ALG>[/<kid>]  a JWT (typ at+jwt), aud "<name>-api"
//   https://<name>.palisade.test/opaque             an opaque token, aud "<name>-api"
//
// Clients (client_secret_basic):
//   worker / worker-secret-0123456789abcdef        client_credentials, scopes orders:read
//                                                  orders:write; may not introspect
//   orders-api / orders-api-secret-0123456789abcd  the resource server: introspects only
//
// Prints "READY <port>" on stdout once it listens.

import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT },
    keys: { type: 'string', default: process.env.PROVIDER_KEYS ?? 'rs256:RS256,es256:ES256,eddsa:EdDSA' },
    'key-dir': { type: 'string', default: process.env.PROVIDER_KEY_DIR },
  },
});

const port = Number.parseInt(args.port, 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node provider.mjs --port PORT [--keys kid:ALG,...] [--key-dir DIR]');
  process.exit(2);
}

const SCOPES = 'orders:read orders:write';

function generate(kid, alg) {
  let pair;
  switch (alg) {
    case 'RS256': pair = generateKeyPairSync('rsa', { modulusLength: 2048 }); break;
    case 'ES256': pair = generateKeyPairSync('ec', { namedCurve: 'P-256' }); break;
    case 'EdDSA': pair = generateKeyPairSync('ed25519'); break;
    default: throw new Error(`unsupported algorithm ${alg} for key ${kid}`);
  }
  return { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

function loadKey(spec) {
  const [kid, alg] = spec.split(':');
  if (!kid || !alg) throw new Error(`bad key "${spec}": expected kid:ALG`);
  const dir = args['key-dir'];
  const file = dir && join(dir, `${kid}.jwk.json`);
  if (file && existsSync(file)) {
    const jwk = JSON.parse(readFileSync(file, 'utf8'));
    if (jwk.alg !== alg) throw new Error(`key ${kid} is ${jwk.alg}, not ${alg}`);
    return jwk;
  }
  const jwk = generate(kid, alg);
  if (file) writeFileSync(file, JSON.stringify(jwk), { mode: 0o600 });
  return jwk;
}

const keys = args.keys.split(',').filter(Boolean).map(loadKey);

// https://<name>.palisade.test/jwt/<ALG>[/<kid>] or /opaque → the resource server's settings.
function resourceServer(indicator) {
  const url = new URL(indicator);
  const host = /^([a-z]+)\.palisade\.test$/.exec(url.hostname);
  const [format, alg, kid, ...rest] = url.pathname.split('/').slice(1);
  if (url.protocol !== 'https:' || !host || rest.length) return undefined;
  const info = { scope: SCOPES, audience: `${host[1]}-api`, accessTokenTTL: 600 };
  if (format === 'opaque' && !alg) return { ...info, accessTokenFormat: 'opaque' };
  if (format === 'jwt' && alg) {
    return { ...info, accessTokenFormat: 'jwt', jwt: { sign: kid ? { alg, kid } : { alg } } };
  }
  return undefined;
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: 'worker',
      client_secret: 'worker-secret-0123456789abcdef',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: SCOPES,
    },
    {
      client_id: 'orders-api',
      client_secret: 'orders-api-secret-0123456789abcd',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys },
  // Clients' ID token algorithm must be one the key set can sign with.
  clientDefaults: { id_token_signed_response_alg: keys[0].alg },
  scopes: SCOPES.split(' '),
  // Development-only cookie keys (no interaction happens here).
  cookies: { keys: ['palisade-interop-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // RFC 7662 §2.1: only the resource server may introspect.
      allowedPolicy: async (ctx, client) => client.clientId === 'orders-api',
    },
    revocation: { enabled: true },
    dPoP: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (ctx, indicator) => {
        const info = resourceServer(indicator);
        if (!info) throw new Provider.errors.InvalidTarget(`unknown resource ${indicator}`);
        return info;
      },
    },
  },
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256', 'ES256', 'EdDSA'],
    dPoPSigningAlgValues: ['ES256', 'EdDSA', 'RS256'],
  },
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${port}\n`);
});
server.on('error', (err) => {
  console.error(err);
  process.exit(1);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
