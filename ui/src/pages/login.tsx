import { useState } from 'preact/hooks';
import { api, setToken, type Principal } from '../api';
import { ErrorBox } from '../ui';

/** Token login: checked against /v1/whoami, then kept in this tab's sessionStorage only. */
export function LoginPage({ onLogin }: { onLogin: (p: Principal) => void }) {
  const [token, setValue] = useState('');
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    try {
      const me = await api<Principal>('GET', '/v1/whoami', undefined, token.trim());
      setToken(token.trim());
      onLogin(me);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <main class="login">
      <form class="card" onSubmit={(e) => void submit(e)}>
        <h1>Drover</h1>
        <label>
          API token
          <input name="token" type="password" autocomplete="current-password" value={token} onInput={(e) => setValue(e.currentTarget.value)} required />
        </label>
        <button type="submit">Log in</button>
        <ErrorBox error={error} />
        <p class="muted">The token stays in this browser tab (session storage) and is sent only to this API.</p>
      </form>
    </main>
  );
}
