/**
 * Sign-in: an API key (`npm run keys -- create NAME`, or the dev key `npm start` prints), checked
 * against the service before anything else starts; kept in sessionStorage, so it lives as long as
 * the tab and never reaches disk. A refusal shows the server's own message.
 */
import { useSignal } from '@preact/signals';
import { apiKey, signIn, signInError, signingIn, theme } from '../store.ts';

export function SignIn() {
  const key = useSignal(apiKey.peek() ?? '');
  const submit = (e: Event) => {
    e.preventDefault();
    const k = key.value.trim();
    if (!k) {
      signInError.value = 'Enter an API key: npm start prints a development key (n50_dev_…) on its first start.';
      return;
    }
    void signIn(k);
  };
  return (
    <div class="signin-page">
      <form class="signin" onSubmit={submit}>
        <div class="signin-head">
          <div class="brand big">N50</div>
          <button type="button" class="icon" data-testid="theme" title="Light / dark" onClick={() => (theme.value = theme.value === 'dark' ? 'light' : 'dark')}>
            {theme.value === 'dark' ? '☀' : '☾'}
          </button>
        </div>
        <h1>NIFTY 50 terminal</h1>
        <label for="key">API key</label>
        <input
          id="key"
          data-testid="key-input"
          type="password"
          autocomplete="off"
          spellcheck={false}
          placeholder="n50_…"
          value={key.value}
          onInput={(e) => (key.value = (e.target as HTMLInputElement).value)}
        />
        {signInError.value && <p class="error" data-testid="sign-in-error" role="alert">{signInError.value}</p>}
        <button type="submit" class="primary" data-testid="sign-in" disabled={signingIn.value}>
          {signingIn.value ? 'Checking…' : 'Sign in'}
        </button>
        <p class="muted small">The key stays in this tab only (sessionStorage).</p>
      </form>
    </div>
  );
}
