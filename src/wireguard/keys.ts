// Curve25519 keys as WireGuard uses them: 32 bytes, printed as standard base64 (as `wg` prints
// them) and as hex on the UAPI wire. Private and preshared keys are secrets: their toString/toJSON
// and util.inspect hide them, and printing one takes a deliberate `reveal()`. X25519 comes from
// node:crypto (60 µs a key pair here, against 431 µs for @noble/curves; see docs/decisions.md).
import { createPrivateKey, createPublicKey, randomBytes, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';
import { PeerpodError } from '../errors.js';

const KEY_LEN = 32;
// DER of an X25519 PKCS#8 private key up to its 32 key bytes (RFC 8410), and the SPKI length.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_LEN = 44;

function decodeBase64Key(text: string, what: string): Buffer {
  // Strict: exactly 44 characters of standard base64 ending in one '='.
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text)) {
    throw new PeerpodError(
      'EINVAL',
      `invalid ${what}: expected 44 characters of base64 encoding 32 bytes (as "wg genkey" prints)`,
      { op: 'parse-key' },
    );
  }
  return Buffer.from(text, 'base64');
}

function decodeHexKey(text: string, what: string): Buffer {
  if (!/^[0-9a-f]{64}$/.test(text)) {
    throw new PeerpodError('EINVAL', `invalid ${what}: expected 64 lowercase hex characters`, {
      op: 'parse-key',
    });
  }
  return Buffer.from(text, 'hex');
}

export class PublicKey {
  readonly #bytes: Buffer;
  private constructor(bytes: Buffer) {
    this.#bytes = Buffer.from(bytes);
  }
  static fromBytes(bytes: Uint8Array): PublicKey {
    if (bytes.length !== KEY_LEN) throw new PeerpodError('EINVAL', `public key must be 32 bytes, got ${bytes.length}`);
    return new PublicKey(Buffer.from(bytes));
  }
  static fromBase64(text: string): PublicKey {
    return new PublicKey(decodeBase64Key(text, 'public key'));
  }
  static fromHex(text: string): PublicKey {
    return new PublicKey(decodeHexKey(text, 'public key'));
  }
  toBase64(): string {
    return this.#bytes.toString('base64');
  }
  toHex(): string {
    return this.#bytes.toString('hex');
  }
  equals(other: PublicKey): boolean {
    return timingSafeEqual(this.#bytes, other.#bytes);
  }
  toString(): string {
    return this.toBase64();
  }
  toJSON(): string {
    return this.toBase64();
  }
}

export type SecretKind = 'private key' | 'preshared key';

/** A private or preshared key. Hidden from every implicit conversion. */
export class SecretKey {
  readonly kind: SecretKind;
  readonly #bytes: Buffer;
  private constructor(kind: SecretKind, bytes: Buffer) {
    this.kind = kind;
    this.#bytes = Buffer.from(bytes);
  }
  static fromBytes(kind: SecretKind, bytes: Uint8Array): SecretKey {
    if (bytes.length !== KEY_LEN) throw new PeerpodError('EINVAL', `${kind} must be 32 bytes, got ${bytes.length}`);
    return new SecretKey(kind, kind === 'private key' ? clamp(Buffer.from(bytes)) : Buffer.from(bytes));
  }
  static fromBase64(kind: SecretKind, text: string): SecretKey {
    return SecretKey.fromBytes(kind, decodeBase64Key(text, kind));
  }
  static fromHex(kind: SecretKind, text: string): SecretKey {
    return SecretKey.fromBytes(kind, decodeHexKey(text, kind));
  }
  /** The base64 text. Call only to hand the key to its one legitimate consumer (a 0600 file, apf.json). */
  reveal(): string {
    return this.#bytes.toString('base64');
  }
  /** The hex text, for the UAPI wire. */
  revealHex(): string {
    return this.#bytes.toString('hex');
  }
  isZero(): boolean {
    return this.#bytes.every((b) => b === 0);
  }
  equals(other: SecretKey): boolean {
    return this.kind === other.kind && timingSafeEqual(this.#bytes, other.#bytes);
  }
  /** The public key of a private key. */
  publicKey(): PublicKey {
    if (this.kind !== 'private key') throw new PeerpodError('EINVAL', 'only a private key has a public key');
    // PKCS#8 DER, not JWK: Node 20 refuses a private OKP JWK without its public `x`.
    const priv = createPrivateKey({
      key: Buffer.concat([X25519_PKCS8_PREFIX, this.#bytes]),
      format: 'der',
      type: 'pkcs8',
    });
    const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
    if (spki.length !== X25519_SPKI_LEN) throw new PeerpodError('EINVAL', 'X25519 public key derivation failed');
    return PublicKey.fromBytes(spki.subarray(spki.length - KEY_LEN));
  }
  toString(): string {
    return `[${this.kind} hidden]`;
  }
  toJSON(): string {
    return `[${this.kind} hidden]`;
  }
  [inspect.custom](): string {
    return `SecretKey <${this.kind} hidden>`;
  }
}

/** Curve25519 clamping, as `wg pubkey`, the kernel and wireguard-go apply it. */
function clamp(b: Buffer): Buffer {
  b[0] = b[0]! & 248;
  b[31] = (b[31]! & 127) | 64;
  return b;
}

export function generatePrivateKey(): SecretKey {
  return SecretKey.fromBytes('private key', randomBytes(KEY_LEN));
}

export function generatePresharedKey(): SecretKey {
  return SecretKey.fromBytes('preshared key', randomBytes(KEY_LEN));
}

export interface KeyPair {
  privateKey: SecretKey;
  publicKey: PublicKey;
}

export function generateKeyPair(): KeyPair {
  const privateKey = generatePrivateKey();
  return { privateKey, publicKey: privateKey.publicKey() };
}
