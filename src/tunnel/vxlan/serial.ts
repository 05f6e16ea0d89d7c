// One thing at a time: the VNI choice (look, then write a record) and the iptables chains (look,
// then create) are check-then-act, so a driver runs them one after another, as CAA guards its
// iptables calls with a mutex. Only within one process: two processes driving the same worker are
// not supported (the sidecar is the only one).
export class Serial {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}
