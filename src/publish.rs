//! `[publish]`: copies the outputs elsewhere by running the operator's
//! command after each build that changed something. Does I/O (processes).
//!
//! The command runs in its own task, so neither the event loop nor the
//! mailer ever waits for it. One run at a time: a change while it runs
//! asks for exactly one more run after it. A run that fails (non-zero
//! exit, a timeout, a command that cannot start) is logged with the
//! command and the reason, and tried again at the next change or after
//! [`RETRY`], whichever comes first.
//!
//! The command is started in a process group of its own. At its timeout,
//! or when herald stops, the whole group is killed (so an `ssh` started by
//! `rsync` goes too) and the command is reaped: nothing is left behind.

use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::Config;

/// A failed run is tried again this long after it, unless a change comes
/// first.
pub const RETRY: Duration = Duration::from_secs(60);

/// When herald stops during a run, the command gets this long to finish
/// after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// At most this much of the command's stderr is kept for the log.
const STDERR_TAIL: usize = 2048;

/// What to run: `[publish]` with the output directory filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The program and its arguments, `{output}` already replaced.
    pub argv: Vec<String>,
    pub timeout: Duration,
}

impl Job {
    /// The job `config` asks for, if it has a `[publish]` section.
    pub fn from_config(config: &Config) -> Option<Job> {
        let publish = config.publish.as_ref()?;
        let output = config.paths.output.display().to_string();
        Some(Job {
            argv: publish
                .command
                .iter()
                .map(|argument| argument.replace("{output}", &output))
                .collect(),
            timeout: publish.timeout,
        })
    }

    /// The command line for messages: arguments with spaces are quoted.
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|argument| {
                if argument.is_empty() || argument.contains(char::is_whitespace) {
                    format!("'{argument}'")
                } else {
                    argument.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Failure {
    #[error("cannot start `{program}`: {reason}")]
    Spawn { program: String, reason: String },
    #[error("{status}{}", stderr_suffix(.stderr))]
    Exit { status: String, stderr: String },
    #[error("did not finish within {}; killed", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("stopped because herald is stopping")]
    Stopped,
}

fn stderr_suffix(stderr: &str) -> String {
    match stderr.lines().rev().find(|line| !line.trim().is_empty()) {
        Some(line) => format!(": {}", line.trim()),
        None => String::new(),
    }
}

/// Runs `job` once, to its end, its timeout, or until `stop` completes.
pub async fn run(job: &Job, stop: impl Future<Output = ()>) -> Result<(), Failure> {
    let Some((program, arguments)) = job.argv.split_first() else {
        return Err(Failure::Spawn {
            program: String::new(),
            reason: "the command is empty".into(),
        });
    };
    let mut child = tokio::process::Command::new(program)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Not systemd's business: only herald itself talks to it.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| Failure::Spawn {
            program: program.clone(),
            reason: error.to_string(),
        })?;
    // The group id is the child's pid; the child is not reaped before the
    // group is signalled, so the id cannot have been reused.
    let group = child.id().and_then(|id| i32::try_from(id).ok());
    let stderr = child.stderr.take();
    enum End {
        Exited(std::io::Result<std::process::ExitStatus>, String),
        TimedOut,
        Stopped,
    }
    let end = {
        let finished = async { tokio::join!(child.wait(), read_tail(stderr)) };
        tokio::select! {
            (status, stderr) = finished => End::Exited(status, stderr),
            () = tokio::time::sleep(job.timeout) => End::TimedOut,
            () = stop => End::Stopped,
        }
    };
    match end {
        End::Exited(Ok(status), _) if status.success() => Ok(()),
        End::Exited(Ok(status), stderr) => Err(Failure::Exit {
            status: describe(status),
            stderr,
        }),
        End::Exited(Err(error), _) => Err(Failure::Exit {
            status: format!("cannot wait for it: {error}"),
            stderr: String::new(),
        }),
        End::TimedOut => {
            signal_group(group, libc::SIGKILL);
            let _ = child.wait().await;
            Err(Failure::Timeout(job.timeout))
        }
        End::Stopped => {
            signal_group(group, libc::SIGTERM);
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                signal_group(group, libc::SIGKILL);
                let _ = child.wait().await;
            }
            Err(Failure::Stopped)
        }
    }
}

/// `exited with status 23` or `killed by signal 9`.
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => format!("ended with {status}"),
    }
}

fn signal_group(group: Option<i32>, signal: i32) {
    let Some(group) = group else { return };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    // A negative pid names the process group that the child leads.
    unsafe {
        libc::kill(-group, signal);
    }
}

/// Reads the command's stderr to its end, keeping the last
/// [`STDERR_TAIL`] bytes.
async fn read_tail(stderr: Option<tokio::process::ChildStderr>) -> String {
    let Some(mut stderr) = stderr else {
        return String::new();
    };
    let mut tail: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stderr.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        tail.extend_from_slice(&buffer[..read]);
        if tail.len() > STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

/// The publishing task of `herald run`.
pub struct Publisher {
    job: watch::Sender<Option<Job>>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Starts the task; it runs nothing until [`Publisher::request`].
    pub fn start(job: Option<Job>) -> Publisher {
        Publisher::with_retry(job, RETRY)
    }

    fn with_retry(job: Option<Job>, retry: Duration) -> Publisher {
        let (job, jobs) = watch::channel(job);
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(worker(jobs, Arc::clone(&wake), stopped, retry));
        Publisher {
            job,
            wake,
            stop,
            task,
        }
    }

    /// Asks for a run: now if none is running, else once after it.
    pub fn request(&self) {
        if self.job.borrow().is_some() {
            self.wake.notify_one();
        }
    }

    /// A new `[publish]` (after a reload); the next run uses it.
    pub fn configure(&self, job: Option<Job>) {
        self.job.send_replace(job);
    }

    /// Stops the task; a run in progress gets SIGTERM, and SIGKILL
    /// `STOP_GRACE` (3 s) later.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!("the publisher stopped abnormally: {error}");
        }
    }
}

async fn worker(
    jobs: watch::Receiver<Option<Job>>,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
    retry: Duration,
) {
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let due = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wake.notified() => {}
            () = due => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        retry_at = None;
        let Some(job) = jobs.borrow().clone() else {
            continue;
        };
        let command = job.display();
        tracing::debug!(%command, "publishing");
        let stop = async {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        match run(&job, stop).await {
            Ok(()) => tracing::info!(%command, "publish command finished"),
            Err(Failure::Stopped) => {
                tracing::warn!("publish command `{command}` stopped: herald is stopping");
                return;
            }
            Err(failure) => {
                tracing::error!(
                    "publish command `{command}` failed: {failure}; retrying after the next change or in {}",
                    humantime::format_duration(retry)
                );
                retry_at = Some(tokio::time::Instant::now() + retry);
            }
        }
    }
}

/// Runs `job` once for `herald build`, to its end or its timeout.
pub fn run_blocking(job: &Job) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::Spawn {
            program: job.argv.first().cloned().unwrap_or_default(),
            reason: format!("cannot start the async runtime: {error}"),
        })?;
    runtime.block_on(run(job, std::future::pending()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::Path;

    fn job(argv: &[&str], timeout: Duration) -> Job {
        Job {
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            timeout,
        }
    }

    #[test]
    fn job_fills_in_the_output_directory_everywhere() {
        let text = "[site]\ntitle = \"T\"\nbase_url = \"https://s.example/\"\n\n[paths]\noutput = \"/srv/out put\"\n\n[publish]\ncommand = [\"rsync\", \"-a\", \"{output}/\", \"--log-file={output}.log\", \"host:/x/\"]\ntimeout = \"5s\"\n";
        let config = crate::config::parse(Path::new("/etc/herald/herald.toml"), text).unwrap();
        let job = Job::from_config(&config).unwrap();
        assert_eq!(
            job.argv,
            [
                "rsync",
                "-a",
                "/srv/out put/",
                "--log-file=/srv/out put.log",
                "host:/x/"
            ]
        );
        assert_eq!(job.timeout, Duration::from_secs(5));
        assert_eq!(
            job.display(),
            "rsync -a '/srv/out put/' '--log-file=/srv/out put.log' host:/x/"
        );
    }

    #[test]
    fn failures_say_what_happened() {
        let run = |argv: &[&str]| run_blocking(&job(argv, Duration::from_secs(20)));
        assert_eq!(run(&["true"]), Ok(()));
        assert_eq!(
            run(&[
                "sh",
                "-c",
                "echo first >&2; echo 'last words' >&2; echo; exit 7"
            ])
            .unwrap_err()
            .to_string(),
            "exited with status 7: last words"
        );
        assert_eq!(
            run(&["sh", "-c", "kill -9 $$"]).unwrap_err().to_string(),
            "killed by signal 9"
        );
        assert_eq!(
            run(&[]).unwrap_err().to_string(),
            "cannot start ``: the command is empty"
        );
        let timeout = run_blocking(&job(&["sleep", "30"], Duration::from_millis(100)));
        assert_eq!(
            timeout.unwrap_err().to_string(),
            "did not finish within 100ms; killed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_run_is_retried_without_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("publish.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\nhere=$(dirname \"$0\")\necho run >> \"$here/runs\"\n[ -e \"$here/failed\" ] && exec touch \"$here/done\"\ntouch \"$here/failed\"\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let command = script.display().to_string();
        let publisher = Publisher::with_retry(
            Some(job(&[&command], Duration::from_secs(20))),
            Duration::from_millis(200),
        );
        publisher.request();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !dir.path().join("done").exists() {
            assert!(tokio::time::Instant::now() < deadline, "no retry");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        publisher.stop().await;
        let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
        assert_eq!(runs, "run\nrun\n");
    }
}
