//! Watches the incidents directory and turns notify's many event kinds into
//! one small message: "these paths may have changed". Does I/O.
//!
//! Debouncing happens in [`settle`], awaited by the daemon's event loop,
//! on a tokio timer, not in notify-debouncer-*: those crates wake a thread every tick even when
//! nothing happens, and an idle herald should use no CPU at all.
//!
//! Which paths are incident files, and whether they still exist, is
//! decided by the reader, not here: editors produce too many different
//! event sequences (vim writes a temp file and renames it over, `sed -i`
//! does the same, others truncate and write twice) for event kinds to be
//! trusted. The reader just looks at the file system again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc::{self, UnboundedSender};

/// What the watcher reports.
#[derive(Debug)]
pub enum Change {
    /// These paths (files or directories) may have changed. `complete`
    /// when the event ends a save (a file closed after writing, renamed
    /// into place, or removed): nothing more of it needs to be waited for.
    Paths { paths: Vec<PathBuf>, complete: bool },
    /// Events were lost (queue overflow) or the watcher failed; everything
    /// must be re-read.
    Rescan,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot watch {}; if the cause mentions a limit, raise fs.inotify.max_user_watches", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// A running watcher; dropping it stops watching.
pub struct Handle {
    /// Held only so that it keeps watching.
    _watcher: Box<dyn Watcher + Send>,
    polling: bool,
    alive: Arc<AtomicBool>,
}

impl Handle {
    pub fn is_polling(&self) -> bool {
        self.polling
    }

    /// Whether notify's thread still runs the event handler. The handler
    /// owns a `Liveness` guard, so this turns false when that thread ends
    /// for any reason, including a panic inside notify.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }
}

/// Owned by the event handler; clears the flag when the handler is dropped.
struct Liveness(Arc<AtomicBool>);

impl Drop for Liveness {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Starts watching `root` recursively. Falls back to polling every two
/// seconds when the native watcher cannot start (inotify limits, some
/// network file systems).
pub fn watch(root: &Path, sender: UnboundedSender<Change>) -> Result<Handle, Error> {
    let alive = Arc::new(AtomicBool::new(true));
    let native_sender = sender.clone();
    let guard = Liveness(Arc::clone(&alive));
    let native = notify::RecommendedWatcher::new(
        move |result: notify::Result<notify::Event>| {
            let _owned = &guard;
            if let Some(change) = classify(result) {
                let _ = native_sender.send(change);
            }
        },
        notify::Config::default(),
    )
    .and_then(|mut watcher| {
        watcher.watch(root, RecursiveMode::Recursive)?;
        Ok(watcher)
    });
    match native {
        Ok(watcher) => Ok(Handle {
            _watcher: Box::new(watcher),
            polling: false,
            alive,
        }),
        Err(error) => {
            tracing::warn!(%error, "native file watching failed, polling every 2 s instead");
            let config = notify::Config::default().with_poll_interval(Duration::from_secs(2));
            // The failed native watcher dropped its guard; start afresh.
            alive.store(true, Ordering::Relaxed);
            let guard = Liveness(Arc::clone(&alive));
            let handler = move |result: notify::Result<notify::Event>| {
                let _owned = &guard;
                if let Some(change) = classify(result) {
                    let _ = sender.send(change);
                }
            };
            let mut watcher =
                notify::PollWatcher::new(handler, config).map_err(|source| Error::Watch {
                    path: root.to_owned(),
                    source,
                })?;
            watcher
                .watch(root, RecursiveMode::Recursive)
                .map_err(|source| Error::Watch {
                    path: root.to_owned(),
                    source,
                })?;
            Ok(Handle {
                _watcher: Box::new(watcher),
                polling: true,
                alive,
            })
        }
    }
}

/// `None` for events that cannot change a file's content: opening,
/// reading and closing without writing. herald's own reads produce those,
/// and reacting to them would make it re-read forever.
fn classify(result: notify::Result<notify::Event>) -> Option<Change> {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    match result {
        Ok(event) if event.need_rescan() => Some(Change::Rescan),
        Ok(event) => {
            let complete = match event.kind {
                // A file closed after writing is a save finishing.
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                EventKind::Access(_) => return None,
                // Renamed into place (`mv`, editors, `herald post`) or gone.
                EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
                | EventKind::Remove(_) => true,
                // Created, written to, renamed away: more is coming.
                _ => false,
            };
            Some(Change::Paths {
                paths: event.paths,
                complete,
            })
        }
        Err(error) => {
            tracing::warn!(%error, "file watcher error; re-reading everything");
            Some(Change::Rescan)
        }
    }
}

/// After an event that leaves a save unfinished (a file created or written
/// to but not yet closed), wait until the tree has been quiet this long
/// before re-reading (one save can be several writes). An event that ends
/// a save (see [`Change::Paths`]) is acted on at once, with whatever else
/// has arrived by then: a burst that goes on meanwhile is collected by the
/// next round.
pub const SETTLE: Duration = Duration::from_millis(30);
/// But never wait longer than this for a burst to end.
pub const SETTLE_MAX: Duration = Duration::from_millis(500);

/// Collects the rest of a burst: takes what has already arrived, then, as
/// long as the last event left a save unfinished, waits until no event came
/// for [`SETTLE`], at most [`SETTLE_MAX`] in all.
pub async fn settle(first: Change, receiver: &mut mpsc::UnboundedReceiver<Change>) -> Change {
    let deadline = tokio::time::Instant::now() + SETTLE_MAX;
    let mut complete = matches!(first, Change::Paths { complete: true, .. });
    let mut batch = first;
    loop {
        let next = match receiver.try_recv() {
            Ok(change) => Some(change),
            Err(_) if complete => None,
            Err(_) => {
                let quiet = tokio::time::Instant::now() + SETTLE;
                tokio::time::timeout_at(quiet.min(deadline), receiver.recv())
                    .await
                    .ok()
                    .flatten()
            }
        };
        let Some(change) = next else { break };
        complete = matches!(change, Change::Paths { complete: true, .. });
        batch = match (batch, change) {
            (Change::Paths { mut paths, .. }, Change::Paths { paths: more, .. }) => {
                paths.extend(more);
                Change::Paths { paths, complete }
            }
            _ => Change::Rescan,
        };
    }
    if let Change::Paths { paths, .. } = &mut batch {
        paths.sort();
        paths.dedup();
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, Flag, ModifyKind, RemoveKind, RenameMode,
    };
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn event(kind: EventKind) -> notify::Result<notify::Event> {
        Ok(notify::Event::new(kind).add_path(PathBuf::from("incidents/a.md")))
    }

    #[test]
    fn liveness_ends_with_the_handler_that_owns_it() {
        let directory = tempfile::tempdir().unwrap();
        let (sender, _receiver) = tokio::sync::mpsc::unbounded_channel();
        let handle = watch(directory.path(), sender).unwrap();
        assert!(handle.is_alive());

        let flag = Arc::new(AtomicBool::new(true));
        let guard = Liveness(Arc::clone(&flag));
        let handler = move || {
            let _owned = &guard;
        };
        handler();
        assert!(flag.load(Ordering::Relaxed));
        drop(handler);
        assert!(!flag.load(Ordering::Relaxed));
    }

    #[test]
    fn reads_are_not_changes() {
        assert!(classify(event(EventKind::Access(AccessKind::Open(AccessMode::Any)))).is_none());
        assert!(
            classify(event(EventKind::Access(AccessKind::Close(
                AccessMode::Read
            ))))
            .is_none()
        );
        let Some(Change::Paths { paths, complete }) = classify(event(EventKind::Access(
            AccessKind::Close(AccessMode::Write),
        ))) else {
            panic!("a close after writing is a change");
        };
        assert_eq!(paths, vec![PathBuf::from("incidents/a.md")]);
        assert!(complete, "a close after writing ends a save");
        assert!(matches!(
            classify(event(EventKind::Create(CreateKind::File))),
            Some(Change::Paths {
                complete: false,
                ..
            })
        ));
        let overflow = notify::Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(matches!(classify(Ok(overflow)), Some(Change::Rescan)));
    }

    /// Which events end a save (the daemon rebuilds at once) and which
    /// announce more to come (it waits for the burst to end).
    #[test]
    fn saves_end_with_a_close_a_rename_into_place_or_a_removal() {
        let complete = |kind| match classify(event(kind)) {
            Some(Change::Paths { complete, .. }) => complete,
            other => panic!("{kind:?} gave {other:?}"),
        };
        assert!(complete(EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(complete(EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        ))));
        assert!(complete(EventKind::Remove(RemoveKind::File)));
        assert!(!complete(EventKind::Modify(ModifyKind::Name(
            RenameMode::From
        ))));
        assert!(!complete(EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(!complete(EventKind::Create(CreateKind::File)));
        assert!(!complete(EventKind::Any));
    }

    fn paths(names: &[&str], complete: bool) -> Change {
        Change::Paths {
            paths: names.iter().map(PathBuf::from).collect(),
            complete,
        }
    }

    /// Polls `settle` once, as the event loop's first poll would.
    fn first_poll(first: Change, receiver: &mut mpsc::UnboundedReceiver<Change>) -> Poll<Change> {
        let mut future = pin!(settle(first, receiver));
        future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn a_finished_save_is_taken_at_once_with_what_already_arrived() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        sender.send(paths(&["b.md", "a.md"], true)).unwrap();
        let Poll::Ready(Change::Paths { paths, .. }) =
            first_poll(paths(&["a.md"], true), &mut receiver)
        else {
            panic!("a save that ended waits for nothing");
        };
        assert_eq!(paths, [PathBuf::from("a.md"), PathBuf::from("b.md")]);
    }

    #[tokio::test]
    async fn an_unfinished_save_waits_for_the_burst() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        // A file created, then renamed away: more is coming.
        sender.send(paths(&["a.md"], false)).unwrap();
        assert!(first_poll(paths(&["a.md"], false), &mut receiver).is_pending());
        // Once the save ends the burst is taken whole.
        sender.send(paths(&["a.md"], false)).unwrap();
        sender.send(paths(&["b.md"], true)).unwrap();
        let Change::Paths { paths, .. } = settle(paths(&["c.md"], false), &mut receiver).await
        else {
            panic!("paths stay paths");
        };
        assert_eq!(
            paths,
            [
                PathBuf::from("a.md"),
                PathBuf::from("b.md"),
                PathBuf::from("c.md")
            ]
        );
    }

    #[tokio::test]
    async fn lost_events_make_the_batch_a_rescan() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        sender.send(Change::Rescan).unwrap();
        sender.send(paths(&["b.md"], true)).unwrap();
        let batch = settle(paths(&["a.md"], false), &mut receiver).await;
        assert!(matches!(batch, Change::Rescan), "{batch:?}");
    }
}
