/**
 * Typed errors. Each has a stable `code` and a message that says what to do next; callers switch
 * on `code`, never on message text.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

/** A bad setting. Names the variable, what it got and the form it wants. */
export class ConfigError extends AppError {
  constructor(readonly variable: string, problem: string, example: string) {
    super('CONFIG_INVALID', `${variable}: ${problem}. Expected e.g. ${variable}=${example}`, { variable });
    this.name = 'ConfigError';
  }
}

/** Kite refused our credentials: retrying will not help. */
export class KiteAuthError extends AppError {
  constructor(status: number) {
    super(
      'KITE_AUTH_REFUSED',
      `Kite refused the WebSocket upgrade (HTTP ${status}): KITE_API_KEY or KITE_ACCESS_TOKEN is wrong or expired. ` +
        'Regenerate the access token (it expires daily at 06:00 IST) and restart.',
      { status },
    );
    this.name = 'KiteAuthError';
  }
}
