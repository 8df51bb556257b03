//! [`Announcement`] × webhook subscriber → one POST: Atlassian
//! Statuspage's webhook JSON (`meta`, `page`, `incident`), or a chat
//! message ([`super::chat`]). Pure: the same inputs give the same bytes.
//!
//! Every post carries its update's identity as its idempotency key
//! (`INCIDENT/YYYYMMDDTHHMMSSZ`, a maintenance notice's with its kind),
//! the same for every receiver, so a receiver that sees a key again (a
//! delivery retried after a crash) can drop it. The transport signs the
//! body (`crate::token::signature`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::Composer;
use super::chat::{self, Message};
use super::variant::{TOKEN_SLOT, is_plain_token, mentions_slot, notice_text, status_word};
use crate::announce::Announcement;
use crate::config::Config;
use crate::model::one_line;
use crate::model::{Confirmation, Follows, Format, Kind, Language, Subscriber};
use crate::render::api::{Indicator, component_status, page_id, statuspage_status};
use crate::render::{i18n, incident_url, update_url};

/// Where a receiver reads about herald's webhooks: its manual page.
pub const DOCUMENTATION: &str = "man:herald(1)";

/// One request's body and idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// JSON.
    pub body: Vec<u8>,
    /// The `Idempotency-Key` header.
    pub key: String,
}

/// The identity of the `component_update` for `component` that
/// `announcement` makes: `INCIDENT/INSTANT/component/ID`.
pub fn component_identity(announcement: &Announcement, component: &str) -> String {
    format!("{}/component/{component}", identity(announcement))
}

/// An announcement's identity: `INCIDENT/INSTANT`, and a notice's kind.
pub fn identity(announcement: &Announcement) -> String {
    let instant = announcement.instant.format("%Y%m%dT%H%M%SZ");
    match announcement.notice {
        None => format!("{}/{instant}", announcement.incident),
        Some(notice) => format!("{}/{instant}/{}", announcement.incident, notice.kind.code()),
    }
}

fn time(config: &Config, instant: DateTime<Utc>) -> String {
    instant
        .with_timezone(&config.site.timezone)
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// A post's body for every subscriber of one language in one format, the
/// unsubscribe token left as a slot: a fan-out builds the JSON once, not
/// once per subscriber.
#[derive(Debug)]
pub struct RenderedPost {
    body: String,
    key: String,
    /// False when the incident or the configuration contains the slot's
    /// text: then every post is rendered whole.
    slot: bool,
}

impl RenderedPost {
    /// The post with `token` in its slot; `None` when it must be
    /// rendered whole ([`Composer::post`]).
    pub fn fill(&self, token: &str) -> Option<Post> {
        (self.slot && is_plain_token(token)).then(|| Post {
            body: self.body.replace(TOKEN_SLOT, token).into_bytes(),
            key: self.key.clone(),
        })
    }
}

impl Composer {
    /// The post of `announcement` in `language` and `format`, the token
    /// left as a slot.
    pub fn render_post(
        &self,
        config: &Config,
        announcement: &Announcement,
        language: Language,
        format: Format,
    ) -> RenderedPost {
        let slot = !mentions_slot(config, announcement);
        let post = self.post_with(config, announcement, language, TOKEN_SLOT, format);
        RenderedPost {
            body: String::from_utf8(post.body).unwrap_or_default(),
            key: post.key,
            slot,
        }
    }

    /// The post of `announcement` to `subscriber`, in `format`.
    pub fn post(
        &self,
        config: &Config,
        announcement: &Announcement,
        subscriber: &Subscriber,
        format: Format,
    ) -> Post {
        self.post_with(
            config,
            announcement,
            subscriber.language,
            &subscriber.token,
            format,
        )
    }

    fn post_with(
        &self,
        config: &Config,
        announcement: &Announcement,
        language: Language,
        token: &str,
        format: Format,
    ) -> Post {
        let site = &config.site;
        let unsubscribe = format!("{}unsubscribe/{token}", site.base_url);
        let body = match &announcement.notice {
            None => announcement.body_markdown.trim().to_owned(),
            Some(notice) => notice_text(&self.strings, config, language, notice),
        };
        let value = match format {
            Format::Json => statuspage(config, announcement, &body, &unsubscribe),
            chat => {
                let message = Message {
                    site_title: one_line(&site.title),
                    site_url: site.base_url.clone(),
                    title: one_line(&announcement.title),
                    url: if announcement.notice.is_some() {
                        incident_url(&site.base_url, &announcement.incident)
                    } else {
                        update_url(&site.base_url, &announcement.incident, announcement.instant)
                    },
                    status: status_word(&self.strings, language, announcement),
                    components_label: self.strings.string(language, "components", ""),
                    components: announcement
                        .components
                        .iter()
                        .map(|(id, status)| {
                            (
                                one_line(config.component_name(id, config.site.language())),
                                i18n::component_status_label(language, *status).to_owned(),
                            )
                        })
                        .collect(),
                    body,
                    links: vec![
                        (
                            self.strings.string(language, "read_more", ""),
                            incident_url(&site.base_url, &announcement.incident),
                        ),
                        (
                            self.strings.string(language, "unsubscribe", ""),
                            unsubscribe,
                        ),
                    ],
                    timestamp: announcement.instant,
                    color: Indicator::of_components(announcement).color(),
                };
                chat::render(chat, &message)
            }
        };
        Post {
            body: value.to_string().into_bytes(),
            key: identity(announcement),
        }
    }

    /// Statuspage's component webhook for `component`, whose status
    /// `announcement` changed, to `subscriber` (a JSON webhook): `meta`,
    /// `page`, `component_update` (old and new status) and `component`.
    /// `None` when the announcement did not change that component.
    pub fn component_post(
        &self,
        config: &Config,
        announcement: &Announcement,
        component: &str,
        subscriber: &Subscriber,
    ) -> Option<Post> {
        self.component_post_with(config, announcement, component, &subscriber.token)
    }

    /// The `component_update` post of `component`, the token left as a
    /// slot; `None` as for [`Composer::component_post`].
    pub fn render_component_post(
        &self,
        config: &Config,
        announcement: &Announcement,
        component: &str,
    ) -> Option<RenderedPost> {
        let post = self.component_post_with(config, announcement, component, TOKEN_SLOT)?;
        Some(RenderedPost {
            body: String::from_utf8(post.body).unwrap_or_default(),
            key: post.key,
            slot: !mentions_slot(config, announcement),
        })
    }

    fn component_post_with(
        &self,
        config: &Config,
        announcement: &Announcement,
        component: &str,
        token: &str,
    ) -> Option<Post> {
        let (_, old) = announcement
            .changed
            .iter()
            .find(|(id, _)| id == component)?;
        let (_, new) = announcement
            .components
            .iter()
            .find(|(id, _)| id == component)?;
        let site = &config.site;
        let page = page_id(&site.base_url);
        let indicator = Indicator::of_components(announcement);
        let at = time(config, announcement.instant);
        let key = component_identity(announcement, component);
        let value = json!({
            "meta": {
                "unsubscribe": format!("{}unsubscribe/{token}", site.base_url),
                "documentation": DOCUMENTATION,
            },
            "page": {
                "id": page,
                "status_indicator": indicator.as_str(),
                "status_description": indicator.description(),
            },
            "component_update": {
                "created_at": at,
                "new_status": component_status(*new),
                "old_status": component_status(*old),
                "id": key.replace('/', "-"),
                "component_id": component,
            },
            "component": {
                // herald does not know when a component was first
                // configured: null rather than a made-up time.
                "created_at": Value::Null,
                "updated_at": at,
                "id": component,
                "name": config.component_name(component, config.site.language()),
                "status": component_status(*new),
                "page_id": page,
            },
        });
        Some(Post {
            body: value.to_string().into_bytes(),
            key,
        })
    }

    /// The post asking to confirm a subscription asked for over HTTP: the
    /// confirmation link, what it follows, until when the link works.
    pub fn post_confirmation(
        &self,
        config: &Config,
        confirmation: &Confirmation,
        format: Format,
    ) -> Post {
        let site = &config.site;
        let language = confirmation.language;
        let site_title = one_line(&site.title);
        let string = |key| self.strings.string(language, key, &site_title);
        let confirm_url = format!("{}confirm/{}", site.base_url, confirmation.token);
        let follows: Vec<String> = match &confirmation.follows {
            Follows::All => vec![string("confirm_all")],
            Follows::Incident(id) => {
                vec![
                    string("confirm_incident")
                        .replace("{incident}", &incident_url(&site.base_url, id)),
                ]
            }
            Follows::Components(ids) => ids
                .iter()
                .map(|id| one_line(config.component_name(id, config.site.language())))
                .collect(),
        };
        let expires = i18n::date_time(language, confirmation.expires, site.timezone);
        let value = match format {
            Format::Json => json!({
                "meta": { "documentation": DOCUMENTATION },
                "page": { "id": page_id(&site.base_url), "name": site_title, "url": site.base_url },
                "confirmation": {
                    "confirm_url": confirm_url,
                    // Told once, to the URL's owner only (chat messages
                    // are read by a channel, and chats do not verify).
                    "signing_secret": confirmation.signing,
                    "expires_at": time(config, confirmation.expires),
                    "follows": follows,
                    "text": format!("{} {}", string("hook_confirm_intro"), follows.join(", ")),
                },
            }),
            chat => chat::render(
                chat,
                &Message {
                    site_title: site_title.clone(),
                    site_url: site.base_url.clone(),
                    title: string("confirm_subject"),
                    url: confirm_url.clone(),
                    status: string("confirm_action"),
                    components_label: string("hook_confirm_intro"),
                    components: follows.into_iter().map(|f| (f, String::new())).collect(),
                    body: format!(
                        "{}\n\n{}",
                        string("confirm_expires").replace("{date}", &expires),
                        string("hook_confirm_ignore")
                    ),
                    links: vec![(string("confirm_action"), confirm_url)],
                    timestamp: confirmation.expires,
                    color: Indicator::None.color(),
                },
            ),
        };
        Post {
            body: value.to_string().into_bytes(),
            key: format!("confirm/{}", confirmation.id),
        }
    }

    /// `herald send-test --webhook URL`: a message saying posts arrive.
    pub fn post_test(&self, config: &Config, format: Format, now: DateTime<Utc>) -> Post {
        let site = &config.site;
        let language = site.language();
        let site_title = one_line(&site.title);
        let text = self.strings.string(language, "hook_test_body", &site_title);
        let value = match format {
            Format::Json => json!({
                "meta": { "documentation": DOCUMENTATION },
                "page": { "id": page_id(&site.base_url), "name": site_title, "url": site.base_url },
                "test": { "text": text, "created_at": time(config, now) },
            }),
            chat => chat::render(
                chat,
                &Message {
                    site_title: site_title.clone(),
                    site_url: site.base_url.clone(),
                    title: self.strings.string(language, "test_subject", &site_title),
                    url: site.base_url.clone(),
                    status: String::new(),
                    components_label: String::new(),
                    components: Vec::new(),
                    body: text,
                    links: Vec::new(),
                    timestamp: now,
                    color: Indicator::None.color(),
                },
            ),
        };
        Post {
            body: value.to_string().into_bytes(),
            key: format!("test/{}", now.format("%Y%m%dT%H%M%S%.3fZ")),
        }
    }
}

impl Indicator {
    /// The worst of what `announcement` holds its components at; none
    /// once it closes.
    fn of_components(announcement: &Announcement) -> Indicator {
        if announcement.status.is_closing() {
            return Indicator::None;
        }
        announcement
            .components
            .iter()
            .map(|(_, status)| Indicator::of_component(*status))
            .max()
            .unwrap_or(Indicator::None)
    }

    /// A chat message's side colour.
    fn color(self) -> u32 {
        match self {
            Indicator::None => 0x2e_a0_43,
            Indicator::Maintenance => 0x1f_6f_eb,
            Indicator::Minor => 0xd2_9a_22,
            Indicator::Major => 0xdb_6d_28,
            Indicator::Critical => 0xcf_22_2e,
        }
    }
}

/// Statuspage's webhook body for an incident update: `meta`, `page`
/// (its indicator as this incident holds it) and `incident` with this
/// update in `incident_updates` and the components it affects.
fn statuspage(
    config: &Config,
    announcement: &Announcement,
    body: &str,
    unsubscribe: &str,
) -> Value {
    let site = &config.site;
    let page = page_id(&site.base_url);
    let indicator = Indicator::of_components(announcement);
    let at = time(config, announcement.instant);
    let status = statuspage_status(announcement.kind, announcement.status);
    let components: Vec<Value> = announcement
        .components
        .iter()
        .map(|(id, status)| {
            json!({
                "id": id,
                "name": config.component_name(id, config.site.language()),
                "status": component_status(*status),
                "page_id": page,
            })
        })
        .collect();
    let affected: Vec<Value> = announcement
        .components
        .iter()
        .map(|(id, status)| {
            json!({
                "code": id,
                "name": config.component_name(id, config.site.language()),
                "new_status": component_status(*status),
            })
        })
        .collect();
    let impact = match announcement.kind {
        Kind::Maintenance => "maintenance",
        Kind::Incident => match Indicator::of_components(announcement) {
            Indicator::None | Indicator::Maintenance => "none",
            Indicator::Minor => "minor",
            Indicator::Major => "major",
            Indicator::Critical => "critical",
        },
    };
    let mut incident = json!({
        "id": announcement.incident.as_str(),
        "name": announcement.title,
        "status": status,
        "impact": impact,
        "created_at": at,
        "updated_at": at,
        "monitoring_at": (status == "monitoring").then(|| at.clone()),
        "resolved_at": announcement.status.is_closing().then(|| at.clone()),
        "shortlink": incident_url(&site.base_url, &announcement.incident),
        "page_id": page,
        "incident_updates": [{
            "id": identity(announcement).replace('/', "-"),
            "incident_id": announcement.incident.as_str(),
            "status": status,
            "body": body,
            "created_at": at,
            "updated_at": at,
            "display_at": at,
            "affected_components": affected,
        }],
        "components": components,
    });
    if let (Some(notice), Some(object)) = (announcement.notice, incident.as_object_mut()) {
        object.insert(
            "scheduled_for".into(),
            time(config, notice.window.starts).into(),
        );
        object.insert(
            "scheduled_until".into(),
            time(config, notice.window.ends).into(),
        );
    }
    json!({
        "meta": {
            "unsubscribe": unsubscribe,
            "documentation": DOCUMENTATION,
        },
        "page": {
            "id": page,
            "status_indicator": indicator.as_str(),
            "status_description": indicator.description(),
        },
        "incident": incident,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::fixtures::{STORAGE, announcement, config, subscriber};

    #[test]
    fn the_json_is_statuspages_webhook_with_this_update() {
        let config = config();
        let announcement = announcement(&config, STORAGE);
        let subscriber = subscriber(Language::En);
        let post = Composer::new().post(&config, &announcement, &subscriber, Format::Json);
        let value: Value = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(post.key, identity(&announcement));
        assert_eq!(
            value["meta"]["unsubscribe"],
            format!(
                "https://status.example.com/unsubscribe/{}",
                subscriber.token
            )
        );
        assert_eq!(value["meta"]["documentation"], DOCUMENTATION);
        assert_eq!(value["page"]["id"], "status.example.com");
        let incident = &value["incident"];
        assert_eq!(incident["id"], announcement.incident.as_str());
        assert_eq!(incident["name"], announcement.title);
        assert_eq!(
            incident["shortlink"],
            incident_url("https://status.example.com/", &announcement.incident)
        );
        let update = &incident["incident_updates"][0];
        assert_eq!(update["body"], announcement.body_markdown.trim());
        assert_eq!(update["incident_id"], announcement.incident.as_str());
        assert_eq!(
            incident["components"].as_array().map(Vec::len),
            Some(announcement.components.len())
        );
    }

    #[test]
    fn a_component_update_says_the_old_and_new_status_under_its_own_key() {
        use crate::model::ComponentStatus;
        let config = config();
        let mut announcement = announcement(&config, STORAGE);
        let (id, new) = announcement.components[0].clone();
        announcement.changed = vec![(id.clone(), ComponentStatus::Operational)];
        let subscriber = subscriber(Language::En);
        let composer = Composer::new();
        let post = composer
            .component_post(&config, &announcement, &id, &subscriber)
            .unwrap();
        assert_eq!(
            post.key,
            format!("{}/component/{id}", identity(&announcement))
        );
        let value: Value = serde_json::from_slice(&post.body).unwrap();
        let update = &value["component_update"];
        assert_eq!(update["component_id"], id.as_str());
        assert_eq!(update["old_status"], "operational");
        assert_eq!(update["new_status"], component_status(new));
        assert_eq!(update["created_at"], time(&config, announcement.instant));
        assert_eq!(value["component"]["id"], id.as_str());
        assert_eq!(value["component"]["status"], component_status(new));
        assert_eq!(value["component"]["created_at"], Value::Null);
        assert_eq!(
            value["meta"]["unsubscribe"],
            format!(
                "https://status.example.com/unsubscribe/{}",
                subscriber.token
            )
        );
        // A component the update did not change has none.
        let (other, _) = announcement.components.last().unwrap().clone();
        if other != id {
            assert_eq!(
                composer.component_post(&config, &announcement, &other, &subscriber),
                None
            );
        }
        announcement.changed.clear();
        assert_eq!(
            composer.component_post(&config, &announcement, &id, &subscriber),
            None
        );
    }

    #[test]
    fn a_rendered_post_filled_is_the_post_rendered_whole() {
        let config = config();
        let subscriber = subscriber(Language::En);
        let composer = Composer::new();
        for format in Format::ALL {
            let announcement = announcement(&config, STORAGE);
            let rendered = composer.render_post(&config, &announcement, Language::En, format);
            let whole = composer.post(&config, &announcement, &subscriber, format);
            assert_eq!(rendered.fill(&subscriber.token), Some(whole), "{format:?}");
            // An incident quoting the slot is rendered whole.
            let quoting = announcement_quoting_the_slot(&config);
            let rendered = composer.render_post(&config, &quoting, Language::En, format);
            assert_eq!(rendered.fill(&subscriber.token), None);
        }
    }

    #[test]
    fn a_rendered_component_post_filled_is_the_component_post_rendered_whole() {
        use crate::model::ComponentStatus;
        let config = config();
        let subscriber = subscriber(Language::En);
        let composer = Composer::new();
        let mut announcement = announcement(&config, STORAGE);
        let (id, _) = announcement.components[0].clone();
        announcement.changed = vec![(id.clone(), ComponentStatus::Operational)];
        let rendered = composer
            .render_component_post(&config, &announcement, &id)
            .unwrap();
        let whole = composer
            .component_post(&config, &announcement, &id, &subscriber)
            .unwrap();
        let text = String::from_utf8(whole.body.clone()).unwrap();
        assert!(text.contains(&subscriber.token), "{text}");
        assert_eq!(rendered.fill(&subscriber.token), Some(whole));
        // A component the update did not change has no post, rendered or
        // whole; an incident quoting the slot is rendered whole.
        assert!(
            composer
                .render_component_post(&config, &announcement, "no-such")
                .is_none()
        );
        let mut quoting = announcement_quoting_the_slot(&config);
        quoting.changed = announcement.changed.clone();
        let rendered = composer
            .render_component_post(&config, &quoting, &id)
            .unwrap();
        assert_eq!(rendered.fill(&subscriber.token), None);
    }

    fn announcement_quoting_the_slot(config: &Config) -> Announcement {
        let mut quoting = announcement(config, STORAGE);
        quoting.body_markdown = format!("See {TOKEN_SLOT}.");
        quoting
    }

    #[test]
    fn a_maintenance_notice_posts_herald_s_sentence_and_the_window() {
        use crate::model::{Kind, Notice, NoticeKind, Status, Window};
        let config = config();
        let mut announcement = announcement(&config, STORAGE);
        announcement.kind = Kind::Maintenance;
        announcement.status = Status::Scheduled;
        announcement.body_markdown = String::new();
        let window = Window {
            starts: announcement.instant + chrono::Duration::hours(2),
            ends: announcement.instant + chrono::Duration::hours(3),
        };
        announcement.notice = Some(Notice {
            kind: NoticeKind::Reminder {
                lead: std::time::Duration::from_secs(3600),
            },
            window,
            previous: None,
        });
        let subscriber = subscriber(Language::En);
        let composer = Composer::new();
        let post = composer.post(&config, &announcement, &subscriber, Format::Json);
        assert!(post.key.ends_with("/reminder-3600s"), "{}", post.key);
        let value: Value = serde_json::from_slice(&post.body).unwrap();
        let incident = &value["incident"];
        assert_eq!(incident["impact"], "maintenance");
        assert_eq!(incident["status"], "scheduled");
        assert_eq!(incident["scheduled_for"], time(&config, window.starts));
        assert_eq!(incident["scheduled_until"], time(&config, window.ends));
        let body = incident["incident_updates"][0]["body"].as_str().unwrap();
        assert!(body.starts_with("The maintenance begins "), "{body}");
        // A chat gets the same sentence, and the reminder as its status.
        let slack = composer.post(&config, &announcement, &subscriber, Format::Slack);
        let text = String::from_utf8(slack.body).unwrap();
        assert!(text.contains("*Reminder*"), "{text}");
        assert!(text.contains("The maintenance begins "), "{text}");
    }
}
