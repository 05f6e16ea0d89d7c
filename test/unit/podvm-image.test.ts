// The pure parts of the pod VM image builder and the local provider: the newc cpio encoder against
// bytes from the format's documentation, the parsers of apt-cache / modprobe / ldd output, the
// generated /init, the qemu command line and the seed's meta-data.
import { describe, expect, it } from '@jest/globals';
import { PeerpodError } from '../../src/errors.js';
import { cpioEntryHead, cpioTrailer, pad4, parentDirs } from '../../tools/podvm-image/cpio.js';
import { parseLdd } from '../../tools/podvm-image/image.js';
import { AGENT_READY, CONTROL_PROTOCOL, MARK, initScript } from '../../tools/podvm-image/init-script.js';
import { kernelReleaseOf, mergeLoadOrders, parseAptDepends, parseShowDepends } from '../../tools/podvm-image/kernel.js';
import { prefixToMask } from '../../src/provider/local/local-provider.js';
import { qemuArgv } from '../../src/provider/local/qemu.js';
import { metaData } from '../../src/provider/local/seed.js';

describe('cpio (newc)', () => {
  it('a file header: magic, 13 hex fields, name, padding to 4', () => {
    const h = cpioEntryHead({ kind: 'file', path: 'init', size: 5, mode: 0o755 }, 3);
    const text = h.toString('latin1');
    expect(text.slice(0, 6)).toBe('070701');
    const fields = text.slice(6, 110).match(/.{8}/g)!;
    expect(fields).toEqual([
      '00000003', // ino
      '000081ed', // S_IFREG | 0755
      '00000000',
      '00000000',
      '00000001', // nlink
      '00000000', // mtime 0: reproducible
      '00000005', // filesize
      '00000000',
      '00000000',
      '00000000',
      '00000000',
      '00000005', // namesize, NUL included
      '00000000',
    ]);
    expect(text.slice(110, 115)).toBe('init\0');
    expect(h.length).toBe(116); // 110 + 5 → 115, padded to 116
  });

  it('symlinks carry their target as data; device nodes their rdev; the trailer closes', () => {
    const l = cpioEntryHead({ kind: 'symlink', path: 'bin/sh', target: 'busybox' }, 1).toString('latin1');
    expect(l.slice(14, 22)).toBe('0000a1ff');
    expect(l.slice(54, 62)).toBe('00000007');
    expect(l.endsWith('busybox\0')).toBe(true);
    const c = cpioEntryHead({ kind: 'chardev', path: 'dev/console', major: 5, minor: 1 }, 2).toString('latin1');
    expect(c.slice(14, 22)).toBe('00002180');
    expect(c.slice(78, 94)).toBe('0000000500000001');
    expect(cpioTrailer().toString('latin1')).toContain('TRAILER!!!\0');
    expect(cpioTrailer().length % 4).toBe(0);
    expect([pad4(0), pad4(1), pad4(3), pad4(4)]).toEqual([0, 3, 1, 0]);
  });

  it('refuses paths that escape the root; lists parents first', () => {
    for (const p of ['/etc/x', '../x', 'a//b', 'a/../b']) {
      expect(() => cpioEntryHead({ kind: 'dir', path: p }, 1)).toThrow(PeerpodError);
    }
    expect(parentDirs(['usr/sbin/ip', 'bin/sh', 'usr/lib/x/y.so'])).toEqual(['bin', 'usr', 'usr/lib', 'usr/sbin', 'usr/lib/x']);
  });
});

describe('tool output parsers', () => {
  it('apt-cache depends of the cloud meta-package', () => {
    const text = 'linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n';
    expect(parseAptDepends(text)).toEqual(['linux-image-6.1.0-56-cloud-amd64']);
    expect(kernelReleaseOf('linux-image-6.1.0-56-cloud-amd64')).toBe('6.1.0-56-cloud-amd64');
    expect(kernelReleaseOf('linux-image-6.12.117+deb12-cloud-amd64-unsigned')).toBe('6.12.117+deb12-cloud-amd64');
    expect(kernelReleaseOf('linux-image-amd64')).toBeNull();
  });

  it('modprobe --show-depends, merged without repeats', () => {
    const wg = parseShowDepends('insmod /k/lib/crypto/libchacha.ko \ninsmod /k/net/ipv4/udp_tunnel.ko\ninsmod /k/drivers/net/wireguard/wireguard.ko\n');
    const vn = parseShowDepends('builtin virtio\ninsmod /k/net/ipv4/udp_tunnel.ko\ninsmod /k/drivers/net/virtio_net.ko.xz opt=1\n');
    expect(mergeLoadOrders([wg, vn])).toEqual([
      '/k/lib/crypto/libchacha.ko',
      '/k/net/ipv4/udp_tunnel.ko',
      '/k/drivers/net/wireguard/wireguard.ko',
      '/k/drivers/net/virtio_net.ko.xz',
    ]);
    expect(() => parseShowDepends('modprobe: FATAL: Module nope not found')).toThrow(/unexpected modprobe/);
  });

  it('ldd: libraries with and without "=>", nothing for a static binary', () => {
    const text = [
      '\tlinux-vdso.so.1 (0x00007ffd)',
      '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f36c6e1e000)',
      '\t/lib64/ld-linux-x86-64.so.2 (0x00007f36c7342000)',
    ].join('\n');
    expect(parseLdd(text)).toEqual(['/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2']);
    expect(parseLdd('\tnot a dynamic executable\n')).toEqual([]);
  });
});

describe('the generated /init', () => {
  const text = initScript({ modules: ['lib/modules/6.1/kernel/a.ko', "lib/modules/6.1/kernel/it's.ko"], agentDir: 'opt/peerpod-wg-agent' });

  it('loads the modules in order, quoted, and prints every marker the host waits for', () => {
    expect(text.startsWith('#!/bin/busybox sh\n')).toBe(true);
    expect(text).toContain(`for m in '/lib/modules/6.1/kernel/a.ko' '/lib/modules/6.1/kernel/it'\\''s.ko'; do`);
    for (const step of ['init', 'modules', 'network', 'podns', 'seed', 'userdata', 'agent']) expect(text).toContain(`mark ${step}`);
    expect(text).toContain(`mark() { echo "${MARK} $1`);
    expect(text).toContain(AGENT_READY);
  });

  it('runs the CAA steps in their order, with WG_BACKEND=auto and iproute2 by full path', () => {
    const order = ['ip netns add podns', 'mount -t iso9660', 'process-user-data.mjs', 'WG_BACKEND=auto /opt/peerpod-wg-agent/bin/peerpod-wg-agent setup'];
    const at = order.map((s) => text.indexOf(s));
    expect(at.every((i) => i > 0)).toBe(true);
    expect([...at].sort((x, y) => x - y)).toEqual(at);
    expect(text).not.toMatch(/^\s*ip /m);
    expect(text).toContain(CONTROL_PROTOCOL.ready);
  });
});

describe('qemu and the seed', () => {
  const opts = {
    netns: 'pw00-vm',
    tap: 'pwq0011223344',
    mac: '52:54:00:aa:bb:cc',
    kernel: '/k/vmlinuz',
    initrd: '/k/initrd.cpio',
    append: 'console=ttyS0',
    seedIso: '/s/seed.iso',
  };

  it('TCG with qemu64 (not max), a small translation cache, the TAP, the seed on virtio-scsi', () => {
    const argv = qemuArgv(opts, 'tcg');
    const joined = argv.join(' ');
    expect(joined).toContain('-accel tcg,tb-size=32 -cpu qemu64');
    expect(joined).toContain(`-netdev tap,id=n0,ifname=${opts.tap},script=no,downscript=no`);
    expect(joined).toContain('-device scsi-cd,drive=seed');
    expect(joined).toContain('media=cdrom,readonly=on');
    expect(joined).not.toContain('virtserialport');
    expect(qemuArgv({ ...opts, controlSocket: '/s/c.sock' }, 'kvm').join(' ')).toMatch(/-accel kvm -cpu host.*virtserialport.*name=peerpod\.ctl/);
  });

  it('meta-data and masks', () => {
    expect(metaData('podvm-1')).toBe('instance-id: podvm-1\nlocal-hostname: podvm-1\n');
    expect([prefixToMask(24), prefixToMask(0), prefixToMask(32), prefixToMask(20)]).toEqual(['255.255.255.0', '0.0.0.0', '255.255.255.255', '255.255.240.0']);
    expect(() => prefixToMask(33)).toThrow(PeerpodError);
  });
});
