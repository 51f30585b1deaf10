/**
 * Environment names a job may not set where a queue says `shell: false`: each one changes which code runs behind
 * an allowed program (a library preloaded before its `main`, a file a shell sources, a module an interpreter
 * imports, a command a tool spawns), which would turn an allow-list of programs into an allow-list of nothing.
 *
 * The core is glibc's list of variables it strips for setuid programs (sysdeps/generic/unsecvars.h), then shells,
 * common interpreters and tools that run commands named by a variable. Linux names are case-sensitive, so only
 * the exact spelling counts (`ld_preload` is an ordinary variable). No list can know every program's variables:
 * a queue that allows programs reading others should also name the variables it permits (`env` in the policy).
 */

interface Denied {
  names: readonly string[];
  /** Names starting with one of these. */
  prefixes?: readonly string[];
  why: string;
}

const DENIED: readonly Denied[] = [
  {
    names: ['GCONV_PATH', 'GETCONF_DIR', 'GLIBC_TUNABLES', 'HOSTALIASES', 'LOCALDOMAIN', 'LOCPATH', 'NIS_PATH', 'NLSPATH',
      'RESOLV_HOST_CONF', 'RES_OPTIONS', 'TMPDIR', 'TZDIR'],
    prefixes: ['LD_', 'MALLOC_', 'DYLD_'],
    why: 'the dynamic loader or the C library reads it (glibc strips it for setuid programs)',
  },
  {
    names: ['PATH', 'BASH_ENV', 'ENV', 'SHELLOPTS', 'BASHOPTS', 'PS4', 'IFS', 'CDPATH', 'GLOBIGNORE', 'PROMPT_COMMAND', 'SHELL'],
    prefixes: ['BASH_FUNC_'],
    why: 'it changes which program a name finds or what a shell runs before or while it runs its script',
  },
  {
    names: ['HOME'],
    prefixes: ['XDG_'],
    why: 'programs load start-up files and modules from there (a job could point it at its own files)',
  },
  {
    names: ['NODE_OPTIONS', 'NODE_PATH', 'NODE_REPL_EXTERNAL_MODULE', 'PERL5OPT', 'PERL5LIB', 'PERLLIB', 'PERL5DB', 'PERLIO',
      'RUBYOPT', 'RUBYLIB', 'JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS', 'JDK_JAVA_OPTIONS', 'CLASSPATH', 'PHPRC', 'PHP_INI_SCAN_DIR',
      'TCLLIBPATH', 'OPENSSL_CONF', 'OPENSSL_ENGINES', 'OPENSSL_MODULES'],
    prefixes: ['PYTHON', 'LUA_'],
    why: 'an interpreter or library loads code or options from it at start-up',
  },
  {
    names: ['GIT_DIR', 'GIT_EXEC_PATH', 'GIT_SSH', 'GIT_SSH_COMMAND', 'GIT_ASKPASS', 'SSH_ASKPASS', 'GIT_EDITOR', 'GIT_PAGER',
      'GIT_EXTERNAL_DIFF', 'GIT_PROXY_COMMAND', 'GIT_TEMPLATE_DIR', 'EDITOR', 'VISUAL', 'PAGER', 'MANPAGER', 'LESSOPEN', 'LESSCLOSE', 'BROWSER'],
    prefixes: ['GIT_CONFIG'],
    why: 'a tool runs the command or reads the configuration it names',
  },
];

/** Python flags that load nothing: refusing them would only get in the way. */
const INERT = new Set(['PYTHONUNBUFFERED', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED', 'PYTHONUTF8']);

/** Why a job under `shell: false` may not set `name`, or null when it may. */
export function deniedEnvReason(name: string): string | null {
  if (INERT.has(name)) return null;
  for (const d of DENIED) {
    if (d.names.includes(name) || d.prefixes?.some((p) => name.startsWith(p))) return d.why;
  }
  return null;
}

/** Why `pattern` is not a valid entry of a policy's `env` list (names with `*` wildcards), or null. */
export function envPatternProblem(pattern: unknown): string | null {
  if (typeof pattern !== 'string') return 'is not a string';
  if (!/^[A-Za-z0-9_*]{1,128}$/.test(pattern)) return 'is not a variable name (letters, digits, "_", "*" wildcards)';
  return null;
}

const compiled = new Map<string, RegExp>();

/** True when `name` matches the `env` list entry `pattern` (`*`: any characters; case-sensitive, like Linux). */
export function envNameMatches(pattern: string, name: string): boolean {
  let re = compiled.get(pattern);
  if (!re) {
    re = envPatternProblem(pattern) ? /(?!)/ : new RegExp(`^${pattern.split('*').join('.*')}$`);
    compiled.set(pattern, re);
  }
  return re.test(name);
}
