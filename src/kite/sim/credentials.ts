/**
 * The credentials the simulator accepts: on the ticker socket as `api_key` and `access_token` in
 * the query, on REST as Kite's `Authorization: token api_key:access_token`; and Kite's answer to
 * wrong ones (HTTP 403 with this body, both places).
 */

/** Kite's body for missing or wrong credentials. */
export const KITE_TOKEN_ERROR = JSON.stringify({
  status: 'error',
  message: 'Incorrect `api_key` or `access_token`.',
  data: null,
  error_type: 'TokenException',
});

export class Credentials {
  /** Either left out: any non-empty value is accepted for it. */
  constructor(
    private readonly apiKey?: string,
    private readonly accessToken?: string,
  ) {}

  accepts(apiKey: string, accessToken: string): boolean {
    return (
      apiKey !== '' &&
      accessToken !== '' &&
      (this.apiKey === undefined || this.apiKey === apiKey) &&
      (this.accessToken === undefined || this.accessToken === accessToken)
    );
  }

  /** REST auth as Kite: `Authorization: token api_key:access_token`. */
  acceptsHeader(authorization: string): boolean {
    return this.keyOf(authorization) !== null;
  }

  /** The api_key of an accepted `Authorization: token api_key:access_token`; null when refused. */
  keyOf(authorization: string): string | null {
    const m = /^token ([^:]+):(.+)$/.exec(authorization ?? '');
    return m !== null && this.accepts(m[1], m[2]) ? m[1] : null;
  }
}
