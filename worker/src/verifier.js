// wacht:admin/verifier on Workers: WebCrypto verifies, natively, what the component decided to
// check. The component keeps the policy (the key type decides the algorithm, signature lengths,
// the RSA key policy); this only answers whether a signature verifies.
//
// Both functions are async (WebCrypto is), so build.mjs lists them as JSPI imports and fails the
// build unless the glue awaits them: a Promise handed back to a synchronous import would read as
// `true`.

const ES256 = { import: { name: "ECDSA", namedCurve: "P-256" }, verify: { name: "ECDSA", hash: "SHA-256" } };
const ES384 = { import: { name: "ECDSA", namedCurve: "P-384" }, verify: { name: "ECDSA", hash: "SHA-384" } };
const RS256 = {
  import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
  verify: { name: "RSASSA-PKCS1-v1_5" },
};

// One imported key (a resource of the component): kept as long as the component keeps its JWKS.
export class VerifyingKey {
  constructor(key, algorithm) {
    this.key = key;
    this.algorithm = algorithm;
  }

  async verify(message, signature) {
    return crypto.subtle.verify(this.algorithm, this.key, signature, message);
  }
}

// `public-key` variant → an imported CryptoKey. A refused key throws: the glue turns that into
// the `err` the component skips.
export async function importKey({ tag, val }) {
  switch (tag) {
    case "es256":
    case "es384": {
      const alg = tag === "es256" ? ES256 : ES384;
      // SEC1 uncompressed point: 0x04 ‖ x ‖ y. WebCrypto checks that it is on the curve.
      const point = new Uint8Array(1 + val.x.length + val.y.length);
      point[0] = 4;
      point.set(val.x, 1);
      point.set(val.y, 1 + val.x.length);
      const key = await crypto.subtle.importKey("raw", point, alg.import, false, ["verify"]);
      return new VerifyingKey(key, alg.verify);
    }
    case "rs256": {
      const jwk = { kty: "RSA", n: base64url(val.n), e: base64url(val.e), alg: "RS256", ext: true };
      const key = await crypto.subtle.importKey("jwk", jwk, RS256.import, false, ["verify"]);
      return new VerifyingKey(key, RS256.verify);
    }
    default:
      throw new TypeError("unknown key type");
  }
}

function base64url(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
