import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Checks `Authorization: Bearer <key>` against the keys, in time independent of where a wrong key differs (the
 * digests have one length, every key is compared). No keys: everything passes (a loopback server).
 */
export function keyChecker(keys: readonly string[]): (header: string | undefined) => boolean {
  const digests = keys.map(digest);
  return (header) => {
    if (digests.length === 0) return true;
    const match = /^Bearer (.+)$/i.exec(header ?? '');
    const given = digest(match ? match[1].trim() : '');
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, given) || ok;
    return ok && match !== null;
  };
}

/** Hosts a server may bind without an API key: loopback only. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
