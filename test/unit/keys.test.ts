// Curve25519 keys: our public keys must be the ones `wg pubkey` computes (fixed vectors made once
// with wireguard-tools, plus a live cross-check when `wg` is installed), secrets must never show up
// in any implicit conversion, and malformed text must be refused with EINVAL.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { format, inspect } from 'node:util';
import { isPeerpodError } from '../../src/errors.js';
import { realExec } from '../../src/exec.js';
import { PublicKey, SecretKey, generateKeyPair, generatePresharedKey } from '../../src/wireguard/keys.js';

// Tests run from dist/test/unit; fixtures stay in the source tree.
const fixtures = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

interface Vector {
  note: string;
  private: string;
  clampedPrivate?: string;
  public: string;
}
const vectors = (JSON.parse(readFileSync(`${fixtures}keys/wg-pubkey-vectors.json`, 'utf8')) as { pairs: Vector[] }).pairs;

function expectEinval(fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(isPeerpodError(thrown, 'EINVAL')).toBe(true);
}

describe('keys agree with wg pubkey', () => {
  it.each(vectors.map((v) => [v.note, v] as const))('%s', (_note, v) => {
    const priv = SecretKey.fromBase64('private key', v.private);
    expect(priv.publicKey().toBase64()).toBe(v.public);
    // A private key is held clamped, as wg, the kernel and wireguard-go hold it.
    expect(priv.reveal()).toBe(v.clampedPrivate ?? v.private);
  });

  it('keeps an unclamped private key equal to its clamped form', () => {
    const v = vectors.find((x) => x.clampedPrivate !== undefined && x.clampedPrivate !== x.private);
    expect(v).toBeDefined();
    const a = SecretKey.fromBase64('private key', v!.private);
    const b = SecretKey.fromBase64('private key', v!.clampedPrivate!);
    expect(a.equals(b)).toBe(true);
    expect(a.publicKey().equals(b.publicKey())).toBe(true);
  });

  it('round-trips public keys through base64 and hex', () => {
    for (const v of vectors) {
      const pub = PublicKey.fromBase64(v.public);
      expect(PublicKey.fromHex(pub.toHex()).toBase64()).toBe(v.public);
      expect(pub.toHex()).toBe(Buffer.from(v.public, 'base64').toString('hex'));
    }
  });
});

describe('secrets stay hidden', () => {
  const priv = SecretKey.fromBase64('private key', vectors[0]!.private);
  const psk = generatePresharedKey();
  const forms = (k: SecretKey): string[] => [k.reveal(), k.revealHex(), Buffer.from(k.reveal(), 'base64').toString('base64url')];

  it.each([
    ['private key', priv],
    ['preshared key', psk],
  ] as const)('a %s never appears in toString, JSON, inspect or format', (_kind, key) => {
    const holder = { key, nested: { list: [key] } };
    const outputs = [
      String(key),
      `${key as unknown as string}`,
      key.toString(),
      JSON.stringify(key),
      JSON.stringify(holder),
      inspect(key),
      inspect(holder, { depth: 10, showHidden: true }),
      format('%s %o %O %j', key, holder, holder, holder),
    ];
    for (const out of outputs) {
      for (const secret of forms(key)) expect(out).not.toContain(secret);
      expect(out).toMatch(/hidden/);
    }
  });

  it('never quotes the input in the error for a malformed secret', () => {
    const almost = `${vectors[0]!.private.slice(0, 42)}Z=`; // the last character is impossible
    try {
      SecretKey.fromBase64('private key', almost);
      throw new Error('accepted a malformed key');
    } catch (e) {
      expect(isPeerpodError(e, 'EINVAL')).toBe(true);
      expect(format('%s %o', e, e)).not.toContain(almost.slice(0, 20));
    }
  });
});

describe('malformed keys are EINVAL', () => {
  const good = vectors[0]!.public;
  it.each([
    ['empty', ''],
    ['too short', 'abc='],
    ['no padding', good.slice(0, 43)],
    ['padding char impossible for 32 bytes', `${good.slice(0, 42)}B=`],
    ['url-safe alphabet', good.replace(/[+/]/g, '-').replace(/^(.)/, '-')],
    ['trailing newline', `${good}\n`],
    ['33 bytes', Buffer.alloc(33, 1).toString('base64')],
    ['31 bytes', Buffer.alloc(31, 1).toString('base64')],
  ])('base64 %s', (_what, text) => {
    expectEinval(() => PublicKey.fromBase64(text));
    expectEinval(() => SecretKey.fromBase64('private key', text));
    expectEinval(() => SecretKey.fromBase64('preshared key', text));
  });

  it.each([
    ['upper-case hex', 'A'.repeat(64)],
    ['63 digits', 'a'.repeat(63)],
    ['non-hex', 'g'.repeat(64)],
  ])('hex %s', (_what, text) => {
    expectEinval(() => PublicKey.fromHex(text));
    expectEinval(() => SecretKey.fromHex('preshared key', text));
  });

  it('a preshared key has no public key', () => {
    expectEinval(() => generatePresharedKey().publicKey());
  });
});

async function wgInstalled(): Promise<boolean> {
  try {
    await realExec(['wg', '--version'], { timeoutMs: 5_000 });
    return true;
  } catch {
    return false;
  }
}

const haveWg = await wgInstalled();
if (!haveWg) console.warn('keys.test: `wg` is not installed; the live cross-check against wg pubkey is SKIPPED');

(haveWg ? describe : describe.skip)('live cross-check against wg pubkey', () => {
  it('agrees on 20 freshly generated key pairs', async () => {
    const pairs = Array.from({ length: 20 }, () => generateKeyPair());
    const answers = await Promise.all(
      pairs.map((p) => realExec(['wg', 'pubkey'], { input: `${p.privateKey.reveal()}\n`, timeoutMs: 10_000 })),
    );
    answers.forEach((a, i) => expect(a.stdout.trim()).toBe(pairs[i]!.publicKey.toBase64()));
  });
});
