// The one error family of the project. Every failure carries a stable `code`, the context in which it
// happened (operation, netns, interface, peer, field) and the original error as `cause`. Callers
// branch on `code`, humans read `message`. Formatting for people lives here too, so every entry
// point prints errors the same way.

export type ErrorCode =
  | 'EINVAL' // bad input: a field, flag or document is malformed
  | 'ENOTFOUND' // something asked for does not exist (netns, device, pod state)
  | 'EEXEC' // a child process failed or timed out
  | 'ENETNS' // a netns/link/route operation failed
  | 'EUAPI' // the WireGuard UAPI answered with an error or spoke nonsense
  | 'EBACKEND' // a WireGuard backend could not start or manage a device
  | 'ESTATE' // durable state is missing or unreadable
  | 'ESETUP' // a tunnel setup failed (and was rolled back)
  | 'ETEARDOWN' // a tunnel teardown failed
  | 'ECLOUD' // a cloud API refused or failed (throttling, permission, server error)
  | 'EUNSUPPORTED'; // a tunnel type or feature we do not have

export interface ErrorContext {
  op?: string | undefined;
  netns?: string | undefined;
  iface?: string | undefined;
  peer?: string | undefined;
  field?: string | undefined;
  [key: string]: string | number | undefined;
}

export class PeerpodError extends Error {
  override readonly name = 'PeerpodError';
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  /** Errors met while cleaning up after this one. They never replace it. */
  readonly cleanupErrors: unknown[] = [];

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.context = context;
  }

  /** The message with its context, as one line for a terminal or a log. */
  describe(): string {
    const where = Object.entries(this.context)
      .filter(([, v]) => v !== undefined && v !== '')
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(' ');
    let text = where ? `${this.message} [${where}]` : this.message;
    if (this.cause instanceof Error && !this.message.includes(this.cause.message)) {
      text += `: ${this.cause.message}`;
    }
    for (const c of this.cleanupErrors) {
      text += `\n  (while rolling back: ${c instanceof PeerpodError ? c.describe() : String(c)})`;
    }
    return text;
  }
}

export function isPeerpodError(e: unknown, code?: ErrorCode): e is PeerpodError {
  return e instanceof PeerpodError && (code === undefined || e.code === code);
}

export function describeError(e: unknown): string {
  if (e instanceof PeerpodError) return `${e.code}: ${e.describe()}`;
  if (e instanceof Error) return e.message;
  return String(e);
}
