//! The `.eml` file transport: `smtp = "file"`, and the default without
//! `[email]`. Does I/O (files).
//!
//! Each message is written whole to a file of its own under
//! `state/outbox-files/`, named by the caller after what the message is,
//! so that writing the same message again replaces its file.

use std::path::{Path, PathBuf};

use lettre::Message;

use super::{Error, SendError};
use crate::fsio;

/// The directory for messages under the state directory `state`, created
/// if missing.
pub(super) fn create(state: &Path) -> Result<PathBuf, Error> {
    let dir = state.join("outbox-files");
    std::fs::create_dir_all(&dir).map_err(|source| Error::CreateDir {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// Writes `message` to `dir/file_name`, replacing any file there; `Ok`
/// once it is on disk.
pub(super) async fn write(dir: &Path, message: &Message, file_name: &str) -> Result<(), SendError> {
    let path = dir.join(file_name);
    let bytes = message.formatted();
    tokio::task::spawn_blocking(move || fsio::replace_file(&path, &bytes))
        .await
        .map_err(|error| SendError::Retry(error.to_string()))?
        .map_err(|error| SendError::Retry(format!("{:#}", anyhow::Error::from(error))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_is_a_file_that_writing_again_replaces() {
        let state = tempfile::tempdir().unwrap();
        let dir = create(&state.path().join("state")).unwrap();
        assert_eq!(dir, state.path().join("state/outbox-files"));
        let message = |subject: &str| {
            Message::builder()
                .from("status@example.com".parse().unwrap())
                .to("ops@example.org".parse().unwrap())
                .subject(subject)
                .body(String::from("text"))
                .unwrap()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            write(&dir, &message("first"), "a.eml").await.unwrap();
            write(&dir, &message("second"), "a.eml").await.unwrap();
            write(&dir, &message("third"), "b.eml").await.unwrap();
        });
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.eml", "b.eml"]);
        let text = std::fs::read_to_string(dir.join("a.eml")).unwrap();
        assert!(text.contains("Subject: second\r\n"), "{text}");
        assert!(!text.contains("first"), "{text}");
    }
}
