//! Runs the real `clew` binary, for benchmarks and end-to-end tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A `clew serve` process on free loopback ports, killed when dropped.
pub struct ClewProcess {
    bin: PathBuf,
    data_dir: PathBuf,
    /// Deleted with the server when the server made it.
    _temp: Option<tempfile::TempDir>,
    child: Option<Child>,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    pub http: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
}

impl ClewProcess {
    /// Starts `bin serve` with a fresh data directory.
    pub fn start(bin: impl Into<PathBuf>) -> Result<Self, String> {
        let temp = tempfile::tempdir().map_err(|e| format!("create data dir: {e}"))?;
        let mut server = Self::start_in(bin, temp.path(), &[])?;
        server._temp = Some(temp);
        Ok(server)
    }

    /// Starts `bin serve --data-dir data_dir` plus `extra_args`.
    pub fn start_in(bin: impl Into<PathBuf>, data_dir: &Path, extra_args: &[&str]) -> Result<Self, String> {
        Self::start_with(bin, data_dir, extra_args, &[])
    }

    /// Starts `bin serve --data-dir data_dir` plus `extra_args`, with `env` set.
    pub fn start_with(
        bin: impl Into<PathBuf>,
        data_dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let unbound: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut server = Self {
            bin: bin.into(),
            data_dir: data_dir.to_owned(),
            _temp: None,
            child: None,
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            http: unbound,
            otlp_grpc: unbound,
            otlp_http: unbound,
        };
        server.launch()?;
        Ok(server)
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))
            .map_err(|e| format!("open server log: {e}"))?;
        let mut child = Command::new(&self.bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args([
                "--listen-http",
                "127.0.0.1:0",
                "--listen-otlp-grpc",
                "127.0.0.1:0",
                "--listen-otlp-http",
                "127.0.0.1:0",
            ])
            .args(&self.extra_args)
            .env_remove("CLEW_CONFIG")
            .env_remove("CLEW_AUTH")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("clew listening") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                return Err(format!("clew did not start (exit {status:?}); log: {}", self.log()));
            }
        };
        for field in line.split_whitespace() {
            let Some((key, value)) = field.split_once('=') else { continue };
            let addr: SocketAddr = value.parse().map_err(|e| format!("bad address in {line:?}: {e}"))?;
            match key {
                "http" => self.http = addr,
                "otlp_grpc" => self.otlp_grpc = addr,
                "otlp_http" => self.otlp_http = addr,
                _ => {}
            }
        }
        self.child = Some(child);
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        child.wait().ok()
    }

    /// Starts the binary again on the same data directory (new ports).
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill9();
        self.launch()
    }
}

impl Drop for ClewProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
