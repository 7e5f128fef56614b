//! `traptor-supervisor` as the process under test: started from the release build with a
//! config file, its output kept in the run directory, stopped with SIGTERM.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::procfs::ProcSample;

/// The release binary next to this one (`target/release/traptor-supervisor`).
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("traptor-supervisor")))
        .unwrap_or_else(|| PathBuf::from("target/release/traptor-supervisor"))
}

/// A running supervisor; killed on drop if a scenario fails before stopping it.
pub struct SupervisorProcess {
    child: Child,
    log: PathBuf,
}

impl SupervisorProcess {
    /// Writes `config` to `<dir>/<name>.toml` and starts `binary --config` on it, with
    /// standard output and error in `<dir>/<name>.log`.
    pub fn start(
        binary: &Path,
        dir: &Path,
        name: &str,
        config: &str,
    ) -> anyhow::Result<SupervisorProcess> {
        if !binary.exists() {
            bail!(
                "{} does not exist: build it with `cargo build --release -p traptor --bin traptor-supervisor` \
                 or pass --supervisor PATH",
                binary.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        // The config holds (made-up) API secrets: readable by its owner only, as traptor asks.
        std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", config_path.display()))?;
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(SupervisorProcess { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its output goes (named in errors so a failure can be looked at).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The process's CPU and memory counters now.
    pub fn sample(&mut self) -> anyhow::Result<ProcSample> {
        self.ensure_running()?;
        ProcSample::read(self.pid())
    }

    /// An error naming the exit status and the log if the process has ended.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "traptor-supervisor exited ({status}); see {}:\n{}",
                self.log.display(),
                self.log_tail(20)
            );
        }
        Ok(())
    }

    /// The last `lines` lines of its output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Freezes the process (SIGSTOP): the throughput scenario runs its baseline in the gaps,
    /// so both share the machine's load of the moment.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.ensure_running()?;
        self.signal(libc::SIGSTOP)
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGCONT)
    }

    fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        // SAFETY: kill only sends a signal to our own child.
        if unsafe { libc::kill(self.pid() as i32, signal) } != 0 {
            bail!(
                "signal {signal} to traptor-supervisor failed: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// SIGTERM, then waits for the exit at most `limit` (then SIGKILL and an error).
    pub fn terminate(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        // A paused process would only see the TERM once resumed.
        let _ = self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM)?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "traptor-supervisor did not exit within {limit:?} of SIGTERM; see {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SupervisorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
