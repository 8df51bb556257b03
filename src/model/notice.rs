//! What herald says by itself about a maintenance window.

use super::Window;

/// A notice herald sends by itself about a maintenance window, on no
/// operator's word: before it, at its edges, or when it moved. It says
/// what happened, not how to say it, so any channel (email today) can
/// word it in the reader's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The window as it now stands.
    pub window: Window,
    /// The window before it moved; set exactly for
    /// [`NoticeKind::Rescheduled`].
    pub previous: Option<Window>,
}

/// Which [`Notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeKind {
    /// The window starts in `lead`.
    Reminder { lead: std::time::Duration },
    /// The window began.
    Started,
    /// The window ended.
    Completed,
    /// The window moved after subscribers were told of it.
    Rescheduled,
}

impl NoticeKind {
    /// How the state database names it: `reminder-3600s`, `started`,
    /// `completed`, `rescheduled`.
    pub fn code(self) -> String {
        match self {
            NoticeKind::Reminder { lead } => format!("reminder-{}s", lead.as_secs()),
            NoticeKind::Started => "started".into(),
            NoticeKind::Completed => "completed".into(),
            NoticeKind::Rescheduled => "rescheduled".into(),
        }
    }

    /// The inverse of [`NoticeKind::code`].
    pub fn parse(code: &str) -> Option<NoticeKind> {
        match code {
            "started" => Some(NoticeKind::Started),
            "completed" => Some(NoticeKind::Completed),
            "rescheduled" => Some(NoticeKind::Rescheduled),
            _ => {
                let seconds = code.strip_prefix("reminder-")?.strip_suffix('s')?;
                Some(NoticeKind::Reminder {
                    lead: std::time::Duration::from_secs(seconds.parse().ok()?),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_codes_read_back() {
        let kinds = [
            NoticeKind::Reminder {
                lead: std::time::Duration::from_secs(86400),
            },
            NoticeKind::Started,
            NoticeKind::Completed,
            NoticeKind::Rescheduled,
        ];
        let codes: Vec<String> = kinds.iter().map(|kind| kind.code()).collect();
        assert_eq!(
            codes,
            ["reminder-86400s", "started", "completed", "rescheduled"]
        );
        for (kind, code) in kinds.iter().zip(&codes) {
            assert_eq!(NoticeKind::parse(code), Some(*kind));
        }
        for bad in ["", "reminder-", "reminder-xs", "reminder-60", "cancelled"] {
            assert_eq!(NoticeKind::parse(bad), None, "{bad}");
        }
    }
}
