// A real `clew serve` for the end-to-end suites: started in a temporary directory on ports the
// kernel picks, read from its listening line, stopped with SIGTERM (SIGKILL after 30 s).
//
// CLEW_BIN names the binary (default: <repo root>/target/debug/clew).

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLEW_BIN = process.env.CLEW_BIN || path.join(REPO_ROOT, 'target', 'debug', 'clew');
const STARTUP_TIMEOUT_MS = 30_000;
export const SHUTDOWN_TIMEOUT_MS = 30_000;
const LISTENING_LINE = /^clew listening http=(\S+) otlp_grpc=(\S+) otlp_http=(\S+)$/;

/**
 * Starts clew; resolves once it listens. `args` are added to `clew serve`; `config` is the text
 * of a configuration file to start with; `env` is added to its environment.
 */
export async function startClew({ name = 'clew-e2e', args = [], config, env = {} } = {}) {
  const workDir = mkdtempSync(path.join(tmpdir(), `${name}-`));
  if (config !== undefined) {
    writeFileSync(path.join(workDir, 'clew.toml'), config);
    args = ['--config', path.join(workDir, 'clew.toml'), ...args];
  }
  const logPath = path.join(workDir, 'clew.stderr.log');
  const logFd = openSync(logPath, 'w');
  const proc = spawn(
    CLEW_BIN,
    [
      'serve',
      '--data-dir', path.join(workDir, 'data'),
      '--listen-http', '127.0.0.1:0',
      '--listen-otlp-grpc', '127.0.0.1:0',
      '--listen-otlp-http', '127.0.0.1:0',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', logFd], env: { ...process.env, ...env } },
  );
  closeSync(logFd);
  const exit = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').slice(-80).join('\n') : '');

  // Clew may print other lines first (the first admin it created); the listening line counts.
  const printed = [];
  const match = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout });
    const timer = setTimeout(() => reject(new Error(`clew printed no listening line within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    exit.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`clew exited before listening (code ${code}, signal ${signal})`));
    });
    lines.on('line', (line) => {
      const listening = LISTENING_LINE.exec(line.trim());
      if (!listening) return printed.push(line);
      clearTimeout(timer);
      resolve(listening);
    });
  }).catch((err) => {
    throw new Error(`${err.message}\nclew binary: ${CLEW_BIN}\nclew stdout:\n${printed.join('\n')}\nclew stderr:\n${log()}`);
  });

  return {
    http: match[1],
    otlpGrpc: match[2],
    otlpHttp: match[3],
    log,
    /** SIGTERM, then SIGKILL after 30 s; resolves to the exit ({code, signal}) or null if killed. */
    async stop({ keep = false } = {}) {
      if (proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      let timer;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), SHUTDOWN_TIMEOUT_MS);
      });
      const result = await Promise.race([exit, timeout]);
      clearTimeout(timer);
      if (result === null) proc.kill('SIGKILL');
      if (!keep) rmSync(workDir, { recursive: true, force: true });
      return result;
    },
  };
}
